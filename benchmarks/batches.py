"""How long a batch takes, and what its polling costs: the tutorial's loop
against ``export_chromakeys`` at concurrency 1 and at the batch's size.

Batches of 3, 20 and 100 jobs, render times uniform 1-4 s from seed 7, a
fixed poll every 3 s (the tutorial's) for every configuration, so that only
the scheduling differs. Reported: wall time, speed-up over the tutorial, the
ratio to max(render) + one poll; polls per job and the delay from each
render's end (its acceptance plus its planned length, by the simulator's
clock) to the first request for its video.

The 100-job tutorial loop alone takes about 11 minutes: it runs in a child
process alongside the other batches (it sleeps nearly all the time).
``--quick``: a batch of 3 only, every time scaled by 0.25.

    python benchmarks/batches.py [--quick]
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Dict, List, Optional

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aistudios_chromakey import export_chromakeys
from benchmarks import _common as common
from benchmarks.tutorial_baseline import run_tutorial

CONFIGS = ("tutorial loop", "export_chromakeys, concurrency=1", "export_chromakeys, concurrency=N")
TARGET_SPEEDUP, TARGET_FLOOR = 8.0, 1.3


def measure(config: str, renders: List[float], poll: float) -> Dict[str, Any]:
    """One configuration on a fresh simulator: wall time and polling cost."""
    with common.Simulator() as sim, tempfile.TemporaryDirectory(prefix="bench-batch-") as out:
        sim.plan(*[common.RenderPlan(seconds=seconds) for seconds in renders])
        batch = common.jobs(len(renders))
        started = time.perf_counter()
        if config == CONFIGS[0]:
            run_tutorial(batch, sim.token, sim.base_url, Path(out), poll_interval=poll, give_up_after=3600)
        else:
            concurrency = 1 if config == CONFIGS[1] else len(renders)
            export_chromakeys(
                batch, sim.token, base_url=sim.base_url, out_dir=out, concurrency=concurrency, poll_interval=poll
            )
        wall = time.perf_counter() - started
        downloads = sim.requests("download")
        polls, delays = [], []
        for export in sim.exports:
            polls.append(len(sim.polls(export.key)))
            first = min(r.time for r in downloads if f"/{export.key}/" in r.path)
            delays.append(first - (export.accepted + export.render_seconds))
        if len(polls) != len(renders) or len(list(Path(out).glob("*.mp4"))) != len(renders):
            raise RuntimeError(f"{config}: not every job was exported once and downloaded")
    return {"config": config, "jobs": len(renders), "wall": wall, "polls": polls, "delays": delays}


def run(sizes: List[int], scale: float) -> List[Dict[str, Any]]:
    poll = 3.0 * scale
    results: List[Dict[str, Any]] = []
    background: Optional[Future[Dict[str, Any]]] = None
    with ThreadPoolExecutor(max_workers=1) as pool:
        if max(sizes) >= 100:
            renders = [s * scale for s in common.render_times(max(sizes), low=1, high=4)]
            measured = "benchmarks.batches:measure"
            background = pool.submit(common.call, measured, None, config=CONFIGS[0], renders=renders, poll=poll)
        for size in sizes:
            renders = [s * scale for s in common.render_times(size, low=1, high=4)]
            for config in CONFIGS:
                if background is not None and size == max(sizes) and config == CONFIGS[0]:
                    continue
                common.log(f"{size} jobs: {config}")
                results.append(dict(measure(config, renders, poll), max_render=max(renders), poll=poll))
        if background is not None:
            common.log(f"{max(sizes)} jobs: waiting for the tutorial loop in the child process")
            renders = [s * scale for s in common.render_times(max(sizes), low=1, high=4)]
            results.append(dict(background.result(), max_render=max(renders), poll=poll, alongside=True))
    return sorted(results, key=lambda r: (r["jobs"], CONFIGS.index(r["config"])))


def tables(results: List[Dict[str, Any]]) -> str:
    baseline = {r["jobs"]: r["wall"] for r in results if r["config"] == CONFIGS[0]}
    walls, polls = [], []
    for r in results:
        name = r["config"].replace("=N", f"={r['jobs']}") + (" *" if r.get("alongside") else "")
        speedup, floor = baseline[r["jobs"]] / r["wall"], r["wall"] / (r["max_render"] + r["poll"])
        target = ""
        if r["config"] == CONFIGS[2] and r["jobs"] >= 20:
            ok = speedup >= TARGET_SPEEDUP and floor <= TARGET_FLOOR
            target = f">= {TARGET_SPEEDUP:g}x, <= {TARGET_FLOOR:g}x: {common.verdict(ok)}"
        walls.append([r["jobs"], name, f"{r['wall']:.2f}", f"{speedup:.2f}x", f"{r['max_render']:.2f}"])
        walls[-1] += [f"{floor:.2f}x", target]
        low, mid, high = common.spread(r["delays"])
        polls.append([r["jobs"], name, f"{statistics.mean(r['polls']):.2f}", max(r["polls"]), sum(r["polls"])])
        polls[-1] += [f"{mid:.2f}", f"{low:.2f}", f"{high:.2f}"]
    poll = results[0]["poll"]
    note = f"A fixed poll every {poll:g} s for all; render times uniform {poll / 3:g}-{4 * poll / 3:g} s (seed 7)."
    if any(r.get("alongside") for r in results):
        note += " * ran in a child process alongside the other batches (it sleeps between polls)."
    headers = ["jobs", "configuration", "wall s", "vs tutorial", "max(render) s", "wall / (max(render) + poll)"]
    text = "### Batch wall time\n\n" + common.table([*headers, "target"], walls, left=2) + "\n\n" + note
    headers = ["jobs", "configuration", "polls per job", "max", "polls in all"]
    headers += ["render done -> download, median s", "min s", "max s"]
    text += "\n\n### Polling cost\n\n" + common.table(headers, polls, left=2)
    return text + "\n\nPolls: progress requests the simulator received. Render done -> download: by its clock."


def main() -> int:
    flags = common.options(__doc__)
    sizes, scale = ([3], 0.25) if flags.quick else ([3, 20, 100], 1.0)
    print(tables(run(sizes, scale)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
