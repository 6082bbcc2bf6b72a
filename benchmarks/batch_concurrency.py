"""How long a batch takes: the tutorial's settings against full concurrency.

Twenty jobs whose render times are drawn from a fixed seed between 1 and 4 s
run against the simulator twice, side by side in one run: once with the
tutorial's settings (``concurrency=1``, a poll every 3 s) and once with
``concurrency=20``. Prints both wall times, their ratio, and how the
concurrent run compares with its floor, ``max(render) + 2 x poll + 1 s``.

    python benchmarks/batch_concurrency.py [--jobs 20] [--seed 7]
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aistudios_chromakey import export_chromakeys
from aistudios_chromakey.simulator import RenderPlan, Simulator


def _jobs(count: int) -> List[Dict[str, Any]]:
    return [
        {
            "language": "ko",
            "text": f"안녕하세요, 저는 {n}번째 작업입니다.",
            "model": "M000004017",
            "clothes": "BG00006160",
        }
        for n in range(1, count + 1)
    ]


def _run(renders: List[float], concurrency: int, poll_interval: float) -> float:
    with Simulator(render_seconds=1) as sim, tempfile.TemporaryDirectory() as out:
        sim.plan(*[RenderPlan(seconds=seconds) for seconds in renders])
        started = time.perf_counter()
        export_chromakeys(
            _jobs(len(renders)),
            sim.token,
            base_url=sim.base_url,
            out_dir=out,
            concurrency=concurrency,
            poll_interval=poll_interval,
        )
        elapsed = time.perf_counter() - started
        assert len(sim.exports) == len(renders), "each job exported exactly once"
        return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--poll-interval", type=float, default=3.0)
    options = parser.parse_args()
    rng = random.Random(options.seed)
    renders = [round(rng.uniform(1, 4), 2) for _ in range(options.jobs)]
    poll = options.poll_interval

    tutorial = _run(renders, 1, poll)
    concurrent = _run(renders, options.jobs, poll)
    floor = max(renders) + 2 * poll + 1

    spread = f"{min(renders):.2f}-{max(renders):.2f} s (sum {sum(renders):.1f} s)"
    print(f"{options.jobs} jobs, renders {spread}, seed {options.seed}")
    print(f"{'configuration':<34} {'wall s':>8} {'vs tutorial':>12}")
    print(f"{'tutorial: concurrency=1, 3 s poll':<34} {tutorial:8.2f} {1:11.2f}x")
    print(f"{f'concurrency={options.jobs}, 3 s poll':<34} {concurrent:8.2f} {tutorial / concurrent:11.2f}x")
    print(f"bound max(render) + 2 x poll + 1 s = {floor:.2f} s: {'within' if concurrent <= floor else 'OVER'}")
    print(f"speed-up {tutorial / concurrent:.1f}x (target >= 8x): {'OK' if tutorial / concurrent >= 8 else 'MISSED'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
