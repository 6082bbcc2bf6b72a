"""Does ``download_video`` stream, or hold the video? Its peak memory by size.

For each size (1 MiB, 100 MiB, 1 GiB; ``--quick``: 1 MiB and 1 GiB), a fresh
process starts the simulator, exports one render of that size with
``request_export`` + ``wait_for_video``, saves it with ``download_video`` and
reports its peak resident memory (VmHWM: it counts this process alone, the
simulator's threads included; they stream 64 KiB at a time). The file is then
checked, by size and SHA-256, against a second, plain streamed download.
Targets: < 100 MB for 1 GiB; 1 GiB within 20 % of 1 MiB.

    python benchmarks/download_memory.py [--quick]
"""

from __future__ import annotations

import hashlib
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import _common as common

TARGET_MB, TARGET_GROWTH = 100.0, 0.20


def _sha256(chunks: Any) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def measure(size: int) -> Dict[str, Any]:
    """One export and download of ``size`` bytes in this process."""
    from aistudios_chromakey import download_video, request_export, wait_for_video

    with common.Simulator() as sim, tempfile.TemporaryDirectory(prefix="bench-memory-") as out:
        sim.plan(common.RenderPlan(seconds=0, size=size))
        before = common.peak_rss()
        url = wait_for_video(
            request_export(common.jobs(1)[0], sim.token, base_url=sim.base_url), sim.token, base_url=sim.base_url
        )
        started = time.perf_counter()
        path = download_video(url, out_dir=out)
        seconds, peak = time.perf_counter() - started, common.peak_rss()
        with open(path, "rb") as saved:
            got = _sha256(iter(lambda: saved.read(1024 * 1024), b""))
        with requests.get(url, stream=True) as response:
            expected = _sha256(response.iter_content(1024 * 1024))
        verified = path.stat().st_size == size and got == expected
    return {"seconds": seconds, "before": before, "peak": peak, "verified": verified}


def main() -> int:
    flags = common.options(__doc__)
    sizes = [1024**2, 1024**3] if flags.quick else [1024**2, 100 * 1024**2, 1024**3]
    results = {}
    for size in sizes:
        common.log(f"memory: {size // 1024**2} MiB")
        results[size] = common.call("benchmarks.download_memory:measure", size=size)
    smallest = results[sizes[0]]["peak"]
    rows = []
    for size, r in results.items():
        growth = r["peak"] / smallest - 1
        target = ""
        if size == max(sizes):
            ok = r["peak"] < TARGET_MB * common.MB and growth <= TARGET_GROWTH
            target = f"< {TARGET_MB:g} MB, within {100 * TARGET_GROWTH:g} %: {common.verdict(ok)}"
        rows.append(
            [
                f"{size // 1024**3} GiB" if size >= 1024**3 else f"{size // 1024**2} MiB",
                f"{r['seconds']:.2f}",
                f"{r['before'] / common.MB:.1f}",
                f"{r['peak'] / common.MB:.1f}",
                f"{100 * growth:+.1f} %",
                "yes" if r["verified"] else "**NO**",
                target,
            ]
        )
    print("### Peak memory of download_video\n")
    headers = ["size", "download s", "peak RSS before, MB", "peak RSS, MB", "vs 1 MiB", "verified", "target"]
    print(common.table(headers, rows))
    print("\nEach size in a fresh process, the simulator included; MB = 10^6 bytes.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
