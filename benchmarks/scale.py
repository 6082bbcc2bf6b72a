"""How batch wall time scales with jobs and concurrency, against the ideal.

Batches of jobs/concurrency 100/50, 500/200, 2,000/50, 2,000/200 and
10,000/500, renders uniform 1-3 s from seed 7, the library's defaults
otherwise (adaptive polling, the resume journal); the client in a child
process, the simulator in this one. ``--quick``: 100/50, 500/200 and
2,000/500 (in place of 10,000/500); the other large batches are skipped.

Ideal: the renders' schedule at that concurrency (each planned render, in the
order the simulator accepted them, started as soon as a slot is free) plus
one poll. Targets: wall within 1.15x of the ideal; client CPU < 1.5 ms per
request the simulator served (exports, polls, downloads).

    python benchmarks/scale.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as common

FULL = [(100, 50), (500, 200), (2000, 50), (2000, 200), (10000, 500)]
QUICK = [(100, 50), (500, 200), (2000, 500)]
TARGET_RATIO, TARGET_CPU_MS = 1.15, 1.5


def main() -> int:
    flags = common.options(__doc__)
    rows = []
    for count, concurrency in QUICK if flags.quick else FULL:
        common.log(f"scale: {count} jobs at concurrency {concurrency}")
        r = common.batch_against_ideal(count, concurrency)
        if "stopped" in r:
            stopped = f"> {r['stopped']:.0f} (stopped)"
            rows.append([f"{count:,}", concurrency, stopped, f"{r['ideal']:.2f}", f"> {common.GIVE_UP:g}x"])
            rows[-1] += [common.verdict(False), "-", "-", "-", "-", r["peak_polls"]]
            continue
        ratio, cpu_ms = r["wall"] / r["ideal"], 1000 * r["cpu_per_request"]
        rows.append([f"{count:,}", concurrency, f"{r['wall']:.2f}", f"{r['ideal']:.2f}", f"{ratio:.3f}x"])
        rows[-1] += [f"<= {TARGET_RATIO}x: {common.verdict(ratio <= TARGET_RATIO)}", r["served"], f"{cpu_ms:.3f}"]
        rows[-1] += [f"< {TARGET_CPU_MS} ms: {common.verdict(cpu_ms < TARGET_CPU_MS)}", f"{r['rss'] / common.MB:.1f}"]
        rows[-1].append(r["peak_polls"])
    headers = ["jobs", "concurrency", "wall s", "ideal s", "wall / ideal", "target"]
    headers += ["requests served", "client CPU ms per request", "target", "client peak RSS MB", "peak polls/s"]
    print("### Scale\n")
    print(common.table(headers, rows, left=0))
    print(
        f"\nIdeal: planned renders started as soon as a slot is free, plus one poll ({common.ONE_POLL:g} s). "
        "CPU: the client process's user + system time over the batch. Peak RSS: the client process's VmHWM. "
        f"A batch still running after {common.GIVE_UP:g}x its ideal is stopped."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
