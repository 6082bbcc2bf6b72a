"""What one call of the tutorial's step functions costs, and how many
connections the client opens for them.

The tutorial's steps, one job after the other: ``request_export``,
``wait_for_video``, ``download_video``, 200 calls in all (``--quick``: 60),
as a user of the plain functions writes them (no session passed). Renders
take no time, so every call is one request and its answer. The client runs
in a child process, the simulator in this one, which records each request's
client address and port: the distinct ports are the connections opened.
Each plain function makes a client for its call and closes it, as
``requests.get`` does: one connection per call is what they promise. Target
for a kept ``Client``: one connection per host, reused by every call.

In the same run, the same loop through the methods of one
``Client(token, base_url=..., max_polls_per_second=None)``, which has no
poll cap: the plain functions keep the default cap of 50 polls/s, which
spaces a client's polls at least 20 ms apart, so in a loop this tight it
is the cap, not the request, that ``wait_for_video`` waits for.

    python benchmarks/keepalive.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Dict, List, Tuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as common

STEPS = ("request_export", "wait_for_video", "download_video")
WAYS = ("plain functions (cap 50 polls/s)", "Client, no poll cap")


def steps(base_url: str, token: str, calls: int, out_dir: str, uncapped: bool) -> Dict[str, List[float]]:
    """The tutorial's loop in this process; seconds per call, by function."""
    import aistudios_chromakey as library

    client = library.Client(token, base_url=base_url, max_polls_per_second=None) if uncapped else None
    export = client.request_export if client else lambda job: library.request_export(job, token, base_url=base_url)
    wait = client.wait_for_video if client else lambda key: library.wait_for_video(key, token, base_url=base_url)
    download = client.download_video if client else library.download_video
    times: Dict[str, List[float]] = {name: [] for name in STEPS}
    for n in range(calls // 3):
        started = time.perf_counter()
        key = export(common.jobs(n + 1)[-1])
        exported = time.perf_counter()
        url = wait(key)
        polled = time.perf_counter()
        download(url, out_dir=out_dir)
        done = time.perf_counter()
        times["request_export"].append(exported - started)
        times["wait_for_video"].append(polled - exported)
        times["download_video"].append(done - polled)
    return times


def loop(calls: int, uncapped: bool) -> Tuple[Dict[str, List[float]], Dict[str, int], Dict[str, int]]:
    """The loop against a simulator of its own; its times, and requests and connections per host."""
    with common.Simulator(render_seconds=0) as sim, tempfile.TemporaryDirectory(prefix="bench-keepalive-") as out:
        arguments = dict(base_url=sim.base_url, token=sim.token, calls=calls, out_dir=out, uncapped=uncapped)
        times = common.call("benchmarks.keepalive:steps", **arguments)
        ports: Dict[str, set[Any]] = defaultdict(set)
        served: Dict[str, int] = defaultdict(int)
        for request in sim.requests():
            ports[request.server].add(tuple(request.client))
            served[request.server] += 1
    return times, dict(served), {server: len(clients) for server, clients in ports.items()}


def main() -> int:
    flags = common.options(__doc__)
    calls = 60 if flags.quick else 200
    runs = [loop(calls, uncapped) for uncapped in (False, True)]
    rows = []
    for name in [*STEPS, "every call"]:
        row = [f"`{name}`" if name in STEPS else name]
        for times, _, _ in runs:
            values = [t for step in STEPS for t in times[step]] if name not in STEPS else times[name]
            low, mid, high = common.spread(values)
            row += [len(values), f"{1000 * mid:.2f}", f"{1000 * low:.2f}", f"{1000 * high:.2f}"]
        rows.append(row)
    print(f"### Per-call cost: the tutorial's steps, {3 * (calls // 3)} calls\n")
    headers = ["call"]
    for way in WAYS:
        headers += [f"{way}: calls", "median ms", "min ms", "max ms"]
    print(common.table(headers, rows))
    rows = []
    for way, (_, served, opened) in zip(WAYS, runs):
        for server in sorted(served):
            want = 1 if way.startswith("Client") else served[server]  # the plain functions: one per call
            rows.append(
                [way, server, served[server], opened[server], f"{want}: {common.verdict(opened[server] == want)}"]
            )
    print()
    print(common.table(["calls", "host", "requests", "connections opened", "target"], rows, left=2))
    every = [[t for step in STEPS for t in times[step]] for times, _, _ in runs]
    median = [1000 * common.spread(values)[1] for values in every]
    mean = [1000 * sum(values) / len(values) for values in every]
    print(
        f"\nPer call, median (mean): **{median[0]:.2f} ms ({mean[0]:.2f})** with the plain functions, "
        f"{median[1]:.2f} ms ({mean[1]:.2f}) through an uncapped client. Connections: distinct client "
        "(address, port) pairs in the simulator's log, per host. The download host is another host than the "
        "API's, so it needs a connection of its own."
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
