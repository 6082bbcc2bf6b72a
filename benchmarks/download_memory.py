"""Peak memory of a download: does ``download_video`` stream, or hold the video?

For each size, a fresh Python process starts the local simulator, scripts one
render of that size (``RenderPlan(seconds=0, size=N)``), exports it with
``request_export`` + ``wait_for_video``, downloads it with ``download_video``
into a temporary folder, checks the file's size and SHA-256 against the
simulator's video, and reports its own peak resident memory (``VmHWM`` on
Linux, see :func:`peak_rss_bytes`; ``getrusage(RUSAGE_SELF).ru_maxrss``
elsewhere). One process per size, so one size's peak does not hide inside
another's.

The simulator's servers run in the same process, so their memory counts too;
they stream the video in 64 KiB pieces, and the reference hash is computed
from the same generator, so no 1 GiB buffer exists anywhere unless the client
makes one.

Usage, from the repository root::

    python benchmarks/download_memory.py [--sizes 1MiB,100MiB,1GiB] [--limit-mb 100]

MB means 10^6 bytes throughout. The exit status is non-zero when any size's
peak exceeds the limit or any file fails verification.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

# Run from a checkout: import the package beside this script, installed or not.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MB = 1_000_000
_UNITS = {"": 1, "B": 1, "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3}
_JOB = {"language": "ko", "text": "안녕하세요, 저는 첫번째 작업입니다.", "model": "M000004017", "clothes": "BG00006160"}


def parse_size(text: str) -> int:
    """``"100MiB"`` -> 104857600; suffixes B, KiB, MiB, GiB (any case), or none."""
    match = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", text)
    if not match or match.group(2).upper() not in _UNITS:
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (use e.g. 512KiB, 100MiB, 1GiB)")
    size = int(match.group(1)) * _UNITS[match.group(2).upper()]
    if size <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive: {text!r}")
    return size


def size_label(size: int) -> str:
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} B"


def peak_rss_bytes() -> int:
    """This process's peak resident memory, in bytes.

    On Linux, ``VmHWM`` from ``/proc/self/status``: ``getrusage``'s
    ``ru_maxrss`` also counts the memory the parent had when it forked this
    process (Linux keeps it across ``exec``), so a child of a larger process,
    such as ``run.py``, would report its parent's size instead of its own.
    Elsewhere, ``ru_maxrss``.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # kB
    except (OSError, ValueError, IndexError):
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # bytes on macOS, KiB on Linux


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


def measure(size: int, folder: Optional[str]) -> Dict[str, Any]:
    """One export and download of ``size`` bytes, in this process."""
    from aistudios_chromakey import download_video, request_export, wait_for_video
    from aistudios_chromakey.simulator import RenderPlan, Simulator

    with Simulator() as sim, tempfile.TemporaryDirectory(prefix="download-memory-", dir=folder) as out_dir:
        sim.plan(RenderPlan(seconds=0, size=size))
        baseline = peak_rss_bytes()
        key = request_export(_JOB, token=sim.token, base_url=sim.base_url)
        url = wait_for_video(key, token=sim.token, base_url=sim.base_url, poll_interval=0.1)
        started = time.perf_counter()
        path = download_video(url, out_dir=out_dir)
        seconds = time.perf_counter() - started
        peak_after_download = peak_rss_bytes()

        video = sim._video(key)  # streamed, never sim.video(key), which would join all of it
        expected = hashlib.sha256()
        for chunk in video.chunks(0, video.size):
            expected.update(chunk)
        file_size = path.stat().st_size
        file_sha = sha256_of_file(path)
        return {
            "requested": size,
            "size": file_size,
            "expected_size": video.size,
            "seconds": seconds,
            "sha256": file_sha,
            "expected_sha256": expected.hexdigest(),
            "baseline_rss": baseline,
            "download_rss": peak_after_download,
            "peak_rss": peak_rss_bytes(),
        }


def run_child(size: int, folder: Optional[str]) -> Dict[str, Any]:
    """:func:`measure` in a fresh interpreter."""
    command = [sys.executable, str(Path(__file__).resolve()), "--child", str(size)]
    if folder:
        command += ["--dir", folder]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"the measurement of {size_label(size)} failed:\n{result.stderr.strip()}")
    return dict(json.loads(result.stdout.strip().splitlines()[-1]))


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--sizes",
        default="1MiB,100MiB,1GiB",
        help="comma-separated video sizes, with suffix B, KiB, MiB or GiB (default: %(default)s)",
    )
    parser.add_argument("--limit-mb", type=float, default=100.0, help="peak RSS allowed, in MB (default: %(default)g)")
    parser.add_argument(
        "--dir", default=None, help="where to put the temporary download folder (default: the system's)"
    )
    parser.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)

    if options.child is not None:
        print(json.dumps(measure(options.child, options.dir)))
        return 0

    try:
        sizes = [parse_size(part) for part in options.sizes.split(",") if part.strip()]
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    if not sizes:
        parser.error("--sizes is empty")
    limit = options.limit_mb * MB
    print(f"{'size':>10} {'seconds':>8} {'MB/s':>8} {'baseline RSS MB':>16} {'peak RSS MB':>12}  verified")
    failed = False
    results = []
    for size in sizes:
        try:
            r = run_child(size, options.dir)
        except RuntimeError as error:
            print(error, file=sys.stderr)
            failed = True
            continue
        verified = r["size"] == r["expected_size"] and r["sha256"] == r["expected_sha256"]
        note = (
            f"yes (sha256 {r['sha256'][:16]}...)"
            if verified
            else (
                f"NO: {r['size']} bytes, sha256 {r['sha256'][:16]}... "
                f"(expected {r['expected_size']} bytes, {r['expected_sha256'][:16]}...)"
            )
        )
        over = r["peak_rss"] > limit
        failed = failed or over or not verified
        results.append((size, r))
        print(
            f"{size_label(size):>10} {r['seconds']:>8.2f} {r['size'] / MB / r['seconds']:>8.1f} "
            f"{r['baseline_rss'] / MB:>16.1f} {r['peak_rss'] / MB:>12.1f}  {note}" + ("  OVER LIMIT" if over else "")
        )
    if not results:
        return 1
    largest, r = max(results, key=lambda item: item[0])
    verdict = "OK" if r["peak_rss"] <= limit else "OVER"
    print(f"peak RSS for {size_label(largest)}: {r['peak_rss'] / MB:.1f} MB (limit {options.limit_mb:g} MB): {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
