"""What one call of the tutorial's step functions costs, and how many
connections the client opens for them.

The tutorial's steps, one job after the other: ``request_export``,
``wait_for_video``, ``download_video``, 200 calls in all (``--quick``: 60),
as a user of the plain functions writes them (no session passed). Renders
take no time, so every call is one request and its answer. The client runs
in a child process, the simulator in this one, which records each request's
client address and port: the distinct ports are the connections opened.
Target: one connection per host, reused by every call.

    python benchmarks/keepalive.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as common

STEPS = ("request_export", "wait_for_video", "download_video")


def steps(base_url: str, token: str, calls: int, out_dir: str) -> Dict[str, List[float]]:
    """The tutorial's loop in this process; seconds per call, by function."""
    from aistudios_chromakey import download_video, request_export, wait_for_video

    times: Dict[str, List[float]] = {name: [] for name in STEPS}
    for n in range(calls // 3):
        started = time.perf_counter()
        key = request_export(common.jobs(n + 1)[-1], token, base_url=base_url)
        exported = time.perf_counter()
        url = wait_for_video(key, token, base_url=base_url)
        polled = time.perf_counter()
        download_video(url, out_dir=out_dir)
        done = time.perf_counter()
        times["request_export"].append(exported - started)
        times["wait_for_video"].append(polled - exported)
        times["download_video"].append(done - polled)
    return times


def main() -> int:
    flags = common.options(__doc__)
    calls = 60 if flags.quick else 200
    with common.Simulator(render_seconds=0) as sim, tempfile.TemporaryDirectory(prefix="bench-keepalive-") as out:
        times = common.call(
            "benchmarks.keepalive:steps", base_url=sim.base_url, token=sim.token, calls=calls, out_dir=out
        )
        ports: Dict[str, set[Any]] = defaultdict(set)
        served: Dict[str, int] = defaultdict(int)
        for request in sim.requests():
            ports[request.server].add(tuple(request.client))
            served[request.server] += 1
    rows = []
    for name in STEPS:
        low, mid, high = common.spread(times[name])
        rows.append([f"`{name}`", len(times[name]), f"{1000 * mid:.2f}", f"{1000 * low:.2f}", f"{1000 * high:.2f}"])
    every = [t for name in STEPS for t in times[name]]
    rows.append(["every call", len(every), f"{1000 * common.spread(every)[1]:.2f}", "", ""])
    print(f"### Per-request cost: the tutorial's steps, {len(every)} calls\n")
    print(common.table(["call", "calls", "median ms", "min ms", "max ms"], rows))
    rows = []
    for server in sorted(served):
        opened = len(ports[server])
        rows.append([server, served[server], opened, f"1: {common.verdict(opened == 1)}"])
    print()
    print(common.table(["host", "requests", "connections opened", "target"], rows))
    print(
        "\nConnections: distinct client (address, port) pairs in the simulator's log, per host. The "
        "download host is another host than the API's, so it needs a connection of its own."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
