"""What polling costs: fixed 3 s polls (the tutorial's) against adaptive
polling (the library's default).

One batch of 12 renders lasting 1 to 30 s (seed 11; ``--quick``: 6 renders of
1 to 6 s), all at once (concurrency = batch size) so that only the polling
differs: ``poll_interval=3`` against ``poll_interval=None``. Reported: progress
requests per job, and the delay from each render's end (its acceptance plus
its planned length, by the simulator's clock) to the first request for its
video. Target: adaptive makes fewer requests and starts downloads sooner.

    python benchmarks/polling.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aistudios_chromakey import export_chromakeys
from benchmarks import _common as common


def measure(renders: List[float], poll_interval: Optional[float]) -> Dict[str, List[float]]:
    """Wall time, polls per job and render-end-to-download delays."""
    with common.Simulator() as sim, tempfile.TemporaryDirectory(prefix="bench-polling-") as out:
        sim.plan(*[common.RenderPlan(seconds=seconds) for seconds in renders])
        started = time.perf_counter()
        export_chromakeys(
            common.jobs(len(renders)),
            sim.token,
            base_url=sim.base_url,
            out_dir=out,
            concurrency=len(renders),
            poll_interval=poll_interval,
        )
        wall = time.perf_counter() - started
        downloads = sim.requests("download")
        polls, delays = [], []
        for export in sim.exports:
            polls.append(float(len(sim.polls(export.key))))
            first = min(r.time for r in downloads if f"/{export.key}/" in r.path)
            delays.append(first - (export.accepted + export.render_seconds))
    return {"wall": [wall], "polls": polls, "delays": delays}


def main() -> int:
    flags = common.options(__doc__)
    count, longest = (6, 6.0) if flags.quick else (12, 30.0)
    renders = common.render_times(count, seed=11, low=1, high=longest)
    rows, summary = [], {}
    for name, interval in (("fixed 3 s (the tutorial's)", 3.0), ("adaptive (the default)", None)):
        common.log(f"polling: {name}")
        r = measure(renders, interval)
        summary[name] = (statistics.mean(r["polls"]), statistics.median(r["delays"]))
        rows.append(
            [
                name,
                f"{r['wall'][0]:.1f}",
                f"{summary[name][0]:.2f}",
                f"{max(r['polls']):.0f}",
                f"{summary[name][1]:.2f}",
                f"{max(r['delays']):.2f}",
            ]
        )
    print(f"### Polling: {count} renders of {min(renders):.1f}-{max(renders):.1f} s (seed 11), all at once\n")
    headers = ["polling", "wall s", "polls per job", "max", "render done -> download, median s", "max s"]
    print(common.table(headers, rows))
    fixed, adaptive = summary.values()
    better = adaptive[0] < fixed[0] and adaptive[1] < fixed[1]
    print(
        f"\nadaptive / fixed: polls per job **{adaptive[0] / fixed[0]:.2f}x**, median delay "
        f"**{adaptive[1] / fixed[1]:.2f}x** (target: both below 1: {common.verdict(better)})."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
