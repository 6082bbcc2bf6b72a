"""How batch wall time scales with jobs and concurrency, against the ideal.

Batches of jobs/concurrency 100/50, 500/200, 2,000/50, 2,000/200 and
10,000/500, renders uniform 1-3 s from seed 7, through
``Client(token, base_url=..., max_polls_per_second=None)`` (no cap on polls,
so that they measure the scheduler) with the library's defaults otherwise
(adaptive polling, the resume journal); the client in a child process, the
simulator in this one. ``--quick``: 100/50 only. Then 500/200 once more
with the default client (``max_polls_per_second=50``), for the peak polls/s
the cap allows and what it costs that batch.

Ideal: the renders' schedule at that concurrency (each planned render, in the
order the simulator accepted them, started as soon as a slot is free) plus
one poll. Targets: wall within 1.15x of the ideal; client CPU < 1.5 ms per
request the simulator served (exports, polls, downloads); client peak memory
flat (within 20 % of the smallest batch's).

    python benchmarks/scale.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as common

FULL = [(100, 50), (500, 200), (2000, 50), (2000, 200), (10000, 500)]
QUICK = [(100, 50)]
CAPPED = (500, 200)
TARGET_RATIO, TARGET_CPU_MS, TARGET_RSS = 1.15, 1.5, 1.2


def main() -> int:
    flags = common.options(__doc__)
    rows, rss = [], []
    batches = [(count, concurrency, common.UNCAPPED) for count, concurrency in (QUICK if flags.quick else FULL)]
    batches.append((*CAPPED, {}))
    for count, concurrency, client in batches:
        cap = "none" if client else "50 (default)"
        common.log(f"scale: {count} jobs at concurrency {concurrency}, poll cap {cap}")
        r = common.batch_against_ideal(count, concurrency, client=client)
        row = [f"{count:,}", concurrency, cap]
        if "stopped" in r:
            stopped = f"> {r['stopped']:.0f} (stopped)"
            row += [stopped, f"{r['ideal']:.2f}", f"> {common.GIVE_UP:g}x", common.verdict(False)]
            rows.append([*row, "-", "-", "-", "-", "-", r["peak_polls"]])
            continue
        ratio, cpu_ms, mb = r["wall"] / r["ideal"], 1000 * r["cpu_per_request"], r["rss"] / common.MB
        aim = bool(client)
        row += [f"{r['wall']:.2f}", f"{r['ideal']:.2f}", f"{ratio:.3f}x"]
        row.append(f"<= {TARGET_RATIO}x: {common.verdict(ratio <= TARGET_RATIO)}" if aim else "")
        row += [r["served"], f"{cpu_ms:.3f}"]
        row.append(f"< {TARGET_CPU_MS} ms: {common.verdict(cpu_ms < TARGET_CPU_MS)}" if aim else "")
        if client:
            rss.append(mb)
        flat = mb <= TARGET_RSS * rss[0]
        row += [f"{mb:.1f}", f"{mb / rss[0] - 1:+.0%}: {common.verdict(flat)}" if aim else "", r["peak_polls"]]
        rows.append(row)
    headers = ["jobs", "concurrency", "poll cap /s", "wall s", "ideal s", "wall / ideal", "target"]
    headers += ["requests served", "client CPU ms per request", "target", "client peak RSS MB"]
    headers += ["vs the first batch", "peak polls/s"]
    print("### Scale\n")
    print(common.table(headers, rows, left=0))
    print(
        f"\nIdeal: planned renders started as soon as a slot is free, plus one poll ({common.ONE_POLL:g} s). "
        "CPU: the client process's user + system time over the batch. Peak RSS: the client process's VmHWM; "
        f"flat: within {TARGET_RSS - 1:.0%} of the first batch's. Peak polls/s: the simulator's `stats()`, the most "
        f"polls in any 1-s window. A batch still running after {common.GIVE_UP:g}x its ideal is stopped. The last "
        f"row is {CAPPED[0]:,}/{CAPPED[1]} with the default client (at most 50 polls/s): the targets are for "
        "the scheduler, so they apply to the uncapped rows only."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
