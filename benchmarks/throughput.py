"""How fast ``download_video`` saves a large video, against curl, and where
the time goes.

One 1 GiB video (``--quick``: 64 MiB) on the simulator's download host, in
this process; every client in a fresh process of its own, after an
``os.sync()``, timed from its first request to the complete file (curl by
its ``-w %{time_total}``, the others inside the process, without start-up).
The rows that tell where the time goes: the transfer alone (curl and
requests into /dev/null); plain requests into a file, with and without a
SHA-256 of each chunk; ``download_video`` with its SHA-256 stubbed out
(``hashlib.sha256`` replaced in that process); and the machine's limit,
``cat`` of the same bytes, already in the page cache, into a new file.
Every file saved is checked against the video's SHA-256 afterwards,
outside the timing. ``--integrity`` sets what the download host says about
the bytes (the simulator's knob, default ``none``; ``sha256`` turns every
check of ``download_video`` on, and drops the stubbed row, which could not
pass it). Median and best of 7 (``--quick``: 3), the order rotating. Target:
``download_video`` >= 0.95x curl into a file (medians), every verification on.

    python benchmarks/throughput.py [--quick] [--integrity sha256]
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aistudios_chromakey import request_export, wait_for_video
from benchmarks import _common as common

CLIENTS = {
    "curl-null": "curl -o /dev/null (transfer alone)",
    "requests-null": "requests, 256 KiB chunks, discarded (transfer alone)",
    "cat": "cat of the same bytes from the page cache into a file (the machine's limit)",
    "curl": "**curl -o FILE**",
    "requests": "requests into a file",
    "requests+sha256": "requests into a file + SHA-256 of each chunk",
    "download_video": "**download_video**",
    "download_video-nohash": "download_video, SHA-256 stubbed out",
}
TARGET = 0.95


class _NoHash:
    def update(self, data: bytes) -> None:
        pass

    def hexdigest(self) -> str:
        return "0" * 64


def fetch(client: str, url: str, folder: str) -> Dict[str, Any]:
    """One download by ``client`` in this process; its seconds and bytes."""
    from aistudios_chromakey import download_video

    if client.startswith("download_video"):
        if client.endswith("nohash"):
            hashlib.sha256 = lambda *args, **kwargs: _NoHash()  # type: ignore[assignment]
        started = time.perf_counter()
        path = download_video(url, out_dir=folder)
        return {"seconds": time.perf_counter() - started, "bytes": path.stat().st_size, "path": str(path)}
    digest, size = hashlib.sha256(), 0
    path = os.devnull if client == "requests-null" else str(Path(folder) / "v.mp4")
    started = time.perf_counter()
    with requests.get(url, stream=True, timeout=60) as response, open(path, "wb") as out:
        for chunk in response.iter_content(chunk_size=256 * 1024):
            out.write(chunk)
            size += len(chunk)
            if client == "requests+sha256":
                digest.update(chunk)
    return {"seconds": time.perf_counter() - started, "bytes": size, "path": path}


def once(client: str, url: str, folder: Path, source: Path) -> Dict[str, Any]:
    if client == "cat":
        with open(folder / "copy.mp4", "wb") as out:
            started = time.perf_counter()
            subprocess.run(["cat", str(source)], stdout=out, check=True)
            seconds = time.perf_counter() - started
        return {"seconds": seconds, "bytes": (folder / "copy.mp4").stat().st_size, "path": out.name}
    if client.startswith("curl"):
        target = os.devnull if client == "curl-null" else str(folder / "curl.mp4")
        command = ["curl", "-s", "-o", target, "-w", "%{time_total} %{size_download}", url]
        seconds, size = subprocess.run(command, capture_output=True, text=True, check=True).stdout.split()
        return {"seconds": float(seconds), "bytes": int(size), "path": target}
    return common.call("benchmarks.throughput:fetch", client=client, url=url, folder=str(folder))


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def measure(size: int, repetitions: int, integrity: str) -> Dict[str, List[float]]:
    clients = [c for c in CLIENTS if shutil.which(c.split("-")[0]) or not c.startswith(("curl", "cat"))]
    if integrity == "sha256":
        clients.remove("download_video-nohash")
    runs: Dict[str, List[float]] = {client: [] for client in clients}
    with common.Simulator(integrity=integrity) as sim, tempfile.TemporaryDirectory(prefix="bench-throughput-") as keep:
        sim.plan(common.RenderPlan(seconds=0, size=size))
        url = wait_for_video(
            request_export(common.jobs(1)[0], sim.token, base_url=sim.base_url), sim.token, base_url=sim.base_url
        )
        source = Path(keep) / "source.mp4"
        with requests.get(url, stream=True) as response, open(source, "wb") as out:
            shutil.copyfileobj(response.raw, out, 1024 * 1024)
        expected = sha256_of(str(source))
        for repetition in range(repetitions):
            for client in clients[repetition % len(clients) :] + clients[: repetition % len(clients)]:
                os.sync()
                with tempfile.TemporaryDirectory(prefix="bench-throughput-") as folder:
                    run = once(client, url, Path(folder), source)
                    if run["path"] != os.devnull and sha256_of(run["path"]) != expected:
                        raise RuntimeError(f"{client} saved other bytes than the video's")
                if run["bytes"] != size:
                    raise RuntimeError(f"{client} got {run['bytes']} bytes of {size}")
                runs[client].append(run["seconds"])
            common.log(f"throughput: round {repetition + 1} of {repetitions}")
    return runs


def main() -> int:
    flags = common.options(__doc__, ("--integrity", {"default": "none", "help": "the simulator's integrity knob"}))
    size, repetitions = (64 * 1024**2, 3) if flags.quick else (1024**3, 7)
    runs = measure(size, repetitions, flags.integrity)
    curl = common.spread(runs["curl"])[1] if "curl" in runs else None
    rows = []
    for client, seconds in runs.items():
        low, mid, _ = common.spread(seconds)
        versus = f"{curl / mid:.2f}x" if curl else "-"
        rows.append(
            [CLIENTS[client], f"{mid:.2f}", f"{size / mid / common.MB:.0f}", versus, f"{size / low / common.MB:.0f}"]
        )
    print(f"### Download throughput ({size // 1024**2} MiB, integrity={flags.integrity})\n")
    print(common.table(["client", "median s", "MB/s", "vs curl into a file", "best MB/s"], rows))
    if curl:
        ratio = curl / common.spread(runs["download_video"])[1]
        target = f"target >= {TARGET}x: {common.verdict(ratio >= TARGET)}"
        print(f"\ndownload_video / curl into a file: **{ratio:.2f}x** ({target}).", end="")
    print(f" Median and best of {repetitions}; every file saved checked against the video's SHA-256; MB = 10^6 bytes.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
