"""What the resume journal costs a large batch: ``resume=True`` against
``resume=False``, side by side in one run.

2,000 jobs (``--quick``: 500), renders uniform 1-3 s from seed 7, concurrency
50, adaptive polling; the client in a child process, the simulator in this
one. Reported for each: wall time against the ideal (the renders' schedule
at that concurrency, from the exports the simulator recorded and their
planned times, plus one poll), client CPU per request the simulator served,
bytes the client process wrote to storage (``/proc/self/io`` write_bytes,
videos included) and the most polls the simulator saw in any 1-s window.

The journal's share of wall time is (wall with it - wall without) / wall
with it; target < 5 %.

    python benchmarks/journal.py [--quick]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as common

CONCURRENCY = 50
TARGET_SHARE = 0.05


def main() -> int:
    flags = common.options(__doc__)
    count = 500 if flags.quick else 2000
    results = {}
    for resume in (True, False):
        common.log(f"journal: {count} jobs, concurrency {CONCURRENCY}, resume={resume}")
        results[resume] = common.batch_against_ideal(count, CONCURRENCY, resume=resume)
    stopped = [f"resume={resume}" for resume, r in results.items() if "stopped" in r]
    if stopped:
        print(f"### Journal: {count} jobs at concurrency {CONCURRENCY}\n")
        limit = f"{common.GIVE_UP:g}x its ideal"
        print(f"Not measured: {' and '.join(stopped)} still ran after {limit} and were stopped (target: **MISSED**).")
        return 0
    rows = []
    for resume, r in results.items():
        rows.append(
            [
                f"resume={resume}",
                f"{r['wall']:.2f}",
                f"{r['ideal']:.2f}",
                f"{r['wall'] / r['ideal']:.3f}x",
                f"{r['cpu']:.2f}",
                r["served"],
                f"{1000 * r['cpu_per_request']:.3f}",
                f"{r['written'] / common.MB:.1f}",
                r["peak_polls"],
            ]
        )
    headers = ["batch", "wall s", "ideal s", "wall / ideal", "client CPU s", "requests served"]
    headers += ["CPU ms per request", "written MB", "peak polls/s"]
    print(f"### Journal: {count} jobs at concurrency {CONCURRENCY}\n")
    print(common.table(headers, rows))
    on, off = results[True], results[False]
    share = (on["wall"] - on["ideal"] - (off["wall"] - off["ideal"])) / on["wall"]
    raw = (on["wall"] - off["wall"]) / on["wall"]
    cpu = (on["cpu"] - off["cpu"]) / on["cpu"]
    journal_bytes = on["written"] - off["written"]
    print()
    print(
        common.table(
            ["measure", "measured", "target"],
            [
                ["journal's share of wall time", f"{100 * raw:.1f} %", f"< 5 %: {common.verdict(raw < TARGET_SHARE)}"],
                ["the same, each wall less its own ideal", f"{100 * share:.1f} %", ""],
                ["journal's share of client CPU", f"{100 * cpu:.1f} %", ""],
                ["bytes the journal wrote", f"{journal_bytes / common.MB:.1f} MB", ""],
                ["peak polls/s (resume=True)", str(on["peak_polls"]), "capped (no figure set yet)"],
            ],
        )
    )
    print(
        f"\nIdeal: the planned renders in the order they were accepted, each started as soon as one of "
        f"{CONCURRENCY} slots is free, plus one poll ({common.ONE_POLL:g} s). The two batches have the same "
        "renders; the second line removes what differs between their ideals. Bytes the journal wrote: "
        "write_bytes with the journal less write_bytes without (the videos are the same)."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
