"""What the resume journal costs a large batch: ``resume=True`` against
``resume=False``, side by side in one run.

500, 1,000 and 2,000 jobs (``--quick``: 50 and 100), renders uniform
1-3 s from seed 7, concurrency 50, adaptive polling, through
``Client(token, base_url=..., max_polls_per_second=None)``: no cap on polls,
so that the batches measure the scheduler and its journal, not the cap. The
client in a child process, the simulator in this one. Reported for each:
wall time with and without the journal against the ideal (the renders'
schedule at that concurrency, from the exports the simulator recorded and
their planned times, plus one poll), client CPU, and the bytes the journal
wrote: the client process's ``/proc/self/io`` write_bytes with the journal
less without it (the videos are the same).

The journal's share of wall time is (wall with it - wall without) / wall
with it; target < 5 % at 2,000 jobs, concurrency 50.

    python benchmarks/journal.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as common

CONCURRENCY = 50
FULL, QUICK = (500, 1000, 2000), (50, 100)
TARGET_JOBS, TARGET_SHARE = 2000, 0.05


def main() -> int:
    flags = common.options(__doc__)
    rows, headline = [], ""
    for count in QUICK if flags.quick else FULL:
        results = {}
        for resume in (True, False):
            common.log(f"journal: {count} jobs, concurrency {CONCURRENCY}, resume={resume}")
            results[resume] = common.batch_against_ideal(count, CONCURRENCY, client=common.UNCAPPED, resume=resume)
        on, off = results[True], results[False]
        if "stopped" in on or "stopped" in off:
            stopped = " and ".join(f"resume={r}" for r in results if "stopped" in results[r])
            rows.append([f"{count:,}", f"{stopped}: stopped after {common.GIVE_UP:g}x its ideal"] + [""] * 9)
            continue
        raw = (on["wall"] - off["wall"]) / on["wall"]
        net = (on["wall"] - on["ideal"] - (off["wall"] - off["ideal"])) / on["wall"]
        cpu = (on["cpu"] - off["cpu"]) / on["cpu"]
        target = ""
        if count == TARGET_JOBS:
            target = f"< 5 %: {common.verdict(raw < TARGET_SHARE)}"
            headline = f"journal's share of wall at {count:,} jobs: **{100 * raw:.1f} %** ({target})."
        rows.append(
            [
                f"{count:,}",
                f"{on['wall']:.2f}",
                f"{off['wall']:.2f}",
                f"{on['ideal']:.2f}",
                f"{on['wall'] / on['ideal']:.3f}x",
                f"{100 * raw:.1f} %",
                f"{100 * net:.1f} %",
                target,
                f"{(on['written'] - off['written']) / common.MB:.1f}",
                f"{on['cpu']:.2f} / {off['cpu']:.2f} ({100 * cpu:.0f} %)",
                f"{on['peak_polls']} / {off['peak_polls']}",
            ]
        )
    headers = ["jobs", "wall s, resume=True", "wall s, resume=False", "ideal s", "wall / ideal (resume)"]
    headers += ["journal's share of wall", "the same, less each ideal", "target", "bytes the journal wrote, MB"]
    headers += ["client CPU s, with / without (journal's share)", "peak polls/s, with / without"]
    print(f"### Journal: concurrency {CONCURRENCY}, no poll cap\n")
    print(common.table(headers, rows, left=0))
    if flags.quick:
        headline = f"The target is set at {TARGET_JOBS:,} jobs; this quick run stops at {QUICK[-1]:,}."
    print(
        f"\n{headline} Ideal: the planned renders in the order they were accepted, each started as soon as one of "
        f"{CONCURRENCY} slots is free, plus one poll ({common.ONE_POLL:g} s). The two batches of a size have the "
        'same renders; "less each ideal" removes what differs between their ideals. Bytes the journal wrote: '
        "the client's write_bytes with the journal less without it (MB = 10^6 bytes)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
