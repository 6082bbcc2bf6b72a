"""What polling costs: fixed 3 s polls (the tutorial's) against adaptive polling.

One batch of renders lasting 1 to 30 s (drawn from a fixed seed) runs against
the simulator twice, side by side in one run, all jobs at once
(``concurrency`` = batch size) so that only the polling differs:

- ``poll_interval=3``: the tutorial's schedule (a poll at once, then every 3 s);
- ``poll_interval=None``: the library's default, adaptive polling.

For each it reports the progress requests per job and the delay from each
render's end (its acceptance plus its planned length, as the simulator
records them) to the first request for its video.

    python benchmarks/polling.py [--jobs 12] [--seed 11] [--max-render 30]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aistudios_chromakey import export_chromakeys
from aistudios_chromakey.simulator import RenderPlan, Simulator


def _jobs(count: int) -> List[Dict[str, Any]]:
    return [
        {"language": "ko", "text": f"안녕하세요, {n}번째 작업입니다.", "model": "M000004017", "clothes": "BG00006160"}
        for n in range(1, count + 1)
    ]


def measure(renders: List[float], poll_interval: Optional[float]) -> Tuple[float, List[int], List[float]]:
    """Wall time, polls per job and render-end-to-download delays."""
    with Simulator(render_seconds=1) as sim, tempfile.TemporaryDirectory() as out:
        sim.plan(*[RenderPlan(seconds=seconds) for seconds in renders])
        started = time.perf_counter()
        export_chromakeys(
            _jobs(len(renders)), sim.token, base_url=sim.base_url, out_dir=out,
            concurrency=len(renders), poll_interval=poll_interval,
        )  # fmt: skip
        wall = time.perf_counter() - started
        polls, delays = [], []
        downloads = sim.requests("download")
        for export in sim.exports:
            polls.append(len(sim.polls(export.key)))
            first = min(r.time for r in downloads if export.key in r.path)
            delays.append(first - (export.accepted + export.render_seconds))
        return wall, polls, delays


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--max-render", type=float, default=30.0)
    options = parser.parse_args()
    rng = random.Random(options.seed)
    renders = [round(rng.uniform(1, options.max_render), 2) for _ in range(options.jobs)]
    print(f"{options.jobs} renders of {min(renders):.1f}-{max(renders):.1f} s (seed {options.seed}), all at once")
    print("| polling | wall s | polls per job (mean) | polls per job (max) | end -> download, median s | max s |")
    print("|:---|---:|---:|---:|---:|---:|")
    results = {}
    for name, interval in (("fixed 3 s (the tutorial's)", 3.0), ("adaptive (the default)", None)):
        wall, polls, delays = measure(renders, interval)
        results[name] = (statistics.mean(polls), statistics.median(delays))
        print(
            f"| {name} | {wall:.1f} | {statistics.mean(polls):.2f} | {max(polls)} | "
            f"{statistics.median(delays):.2f} | {max(delays):.2f} |"
        )
    fixed, adaptive = results.values()
    print(f"adaptive/fixed: polls per job {adaptive[0] / fixed[0]:.2f}x, median delay {adaptive[1] / fixed[1]:.2f}x")
    better = adaptive[0] < fixed[0] and adaptive[1] < fixed[1]
    print("adaptive makes fewer requests and starts downloads sooner: " + ("OK" if better else "MISSED"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
