"""Download throughput on loopback: ``download_video`` beside curl and the machine's limit.

The simulator runs in its own process (so its Python does not share our
GIL) and serves one video of 1 GiB (``--quick``: 256 MiB) with a checksum
header (``--integrity``, default ``sha256``: every check of the download is
on). Each run, side by side and in turn:

* ``curl -s -o FILE URL``: the reference;
* ``download_video(URL, folder)``: ours, streamed, hashed, box-walked, checked;
* ``cat FILE > FILE2``: the same bytes written through the page cache, the
  machine's limit for any download of them.

Each file is checked against the video's SHA-256, streamed. It prints the
minimum and median of ``--runs`` runs (default 5) and our median against
curl's beside the 0.95 target. MB/s means 10^6 bytes a second.

Usage, from the repository root::

    python benchmarks/download_throughput.py [--quick] [--runs 5] [--integrity sha256]
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Dict, List

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aistudios_chromakey import download_video, request_export, wait_for_video
from aistudios_chromakey.cli import TUTORIAL_JOBS
from aistudios_chromakey.simulator import RenderPlan, Simulator

TARGET = 0.95


def serve(size: int, integrity: str) -> None:
    """The simulator's process: print the video's address and SHA-256, serve until stdin closes."""
    with Simulator(render_seconds=0, integrity=integrity) as sim:
        sim.plan(RenderPlan(seconds=0, size=size))
        key = request_export(TUTORIAL_JOBS[0], sim.token, base_url=sim.base_url)
        url = wait_for_video(key, sim.token, base_url=sim.base_url, poll_interval=0.05)
        print(url, sim._video(key).digests()[1].hex(), flush=True)
        sys.stdin.read()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def timed(action: Callable[[], Path], expected: str) -> float:
    start = time.perf_counter()
    path = action()
    seconds = time.perf_counter() - start
    if sha256_of(path) != expected:
        raise SystemExit(f"{path}: wrong bytes")
    path.unlink()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB instead of 1 GiB")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--integrity", default="sha256", help="the simulator's integrity knob")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.integrity)
        return
    size = (256 if args.quick else 1024) << 20
    server = subprocess.Popen(
        [sys.executable, __file__, "--serve", str(size), "--integrity", args.integrity],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert server.stdout is not None and server.stdin is not None
    url, expected = server.stdout.readline().split()
    times: Dict[str, List[float]] = {"curl": [], "download_video": [], "cat (limit)": []}
    try:
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            source = work / "source.mp4"
            subprocess.run(["curl", "-s", "-o", str(source), url], check=True)  # warms the server's digests too

            def curl() -> Path:
                subprocess.run(["curl", "-s", "-o", str(work / "curl.mp4"), url], check=True)
                return work / "curl.mp4"

            def ours() -> Path:
                return download_video(url, work / "ours")

            def cat() -> Path:
                with open(work / "cat.mp4", "wb") as out:
                    subprocess.run(["cat", str(source)], stdout=out, check=True)
                return work / "cat.mp4"

            for run in range(args.runs):
                for name, action in zip(times, (curl, ours, cat)):
                    times[name].append(timed(action, expected))
                print(f"run {run + 1}: " + ", ".join(f"{n} {t[-1]:.3f} s" for n, t in times.items()), flush=True)
    finally:
        server.stdin.close()
        server.wait()
    print(f"\n{size >> 20} MiB, integrity={args.integrity}, {args.runs} runs")
    print(f"{'':16} {'min s':>8} {'median s':>9} {'median MB/s':>12}")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"{name:16} {min(values):8.3f} {median:9.3f} {size / median / 1e6:12.0f}")
    ratio = statistics.median(times["curl"]) / statistics.median(times["download_video"])
    verdict = "met" if ratio >= TARGET else "NOT met"
    print(f"\ndownload_video / curl (median throughput): {ratio:.2f}x; target {TARGET}x: {verdict}")


if __name__ == "__main__":
    main()
