"""The tutorial's batch loop, transliterated to Python: the baseline to beat.

What: :func:`run_tutorial` does what the "전체 코드" (full code) block of
``seed/multiple-chromakey-export.ko.md`` does, step by step, with ``requests``
standing in for ``node-fetch`` and ``https.get``, and nothing of our library:

* the jobs run one after the other;
* each is exported with ``POST /api/odin/simple/video``; the project key is
  ``data.key`` when ``success`` is true, and otherwise stays undefined (the
  loop then polls ``/progress/undefined``, as the JavaScript does);
* its progress is polled with ``GET /api/odin/editor/progress/<key>``; when
  ``success`` is true, progress is >= 100 and ``data.url`` is present, the
  download starts and the loop ends;
* after *every* poll, including the one that started the download, it sleeps
  a fixed ``poll_interval`` (3 s in the tutorial);
* the download is a plain GET of ``data.url`` streamed to
  ``<out_dir>/<basename of the URL path>`` (the tutorial's ``./videos/``):
  no status check, no redirect followed, no size check, no retry. Like
  ``https.get`` in the tutorial it is not awaited: it runs in a thread while
  the next job is exported; Node does not exit while a download is pending,
  so :func:`run_tutorial` joins those threads before it returns.

Why: the benchmarks (``benchmarks/batches.py``) compare our library's batch
against what the tutorial's users run today. The tutorial is JavaScript; a
Python transliteration runs in the same interpreter and against the same
simulator as the library, so the comparison measures the loop's design
(sequential renders, a fixed 3 s sleep), not Node against Python.

One addition, not in the tutorial: ``give_up_after`` bounds the whole run
(the tutorial polls forever when a render never finishes), so that a
benchmark cannot hang. It is off by default.

Usage, from the repository root (runs the tutorial's three jobs against the
local simulator and prints the wall time)::

    python benchmarks/tutorial_baseline.py [--jobs 3] [--poll-interval 3] [--seed 7]
"""

from __future__ import annotations

import argparse
import posixpath
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence
from urllib.parse import urlsplit

import requests

#: The tutorial's ``setTimeout(resolve, 3000)``.
TUTORIAL_POLL_INTERVAL = 3.0

#: The tutorial's three jobs (its step 2), verbatim.
TUTORIAL_JOBS: List[Dict[str, str]] = [
    {"language": "ko", "text": "안녕하세요, 저는 첫번째 작업입니다.", "model": "M000004017", "clothes": "BG00006160"},
    {"language": "ko", "text": "안녕하세요, 저는 두번째 작업입니다.", "model": "M000004017", "clothes": "BG00001004"},
    {"language": "ko", "text": "안녕하세요, 저는 세번째 작업입니다.", "model": "M000004017", "clothes": "BG00006160"},
]

_DOWNLOAD_CHUNK = 64 * 1024  # what Node's response.pipe(file) moves at a time


def _below_100(progress: Any) -> bool:
    """JavaScript's ``progress < 100``: strings are converted to numbers, and
    anything that is not a number (undefined, "abc") compares false."""
    try:
        return float(progress) < 100
    except (TypeError, ValueError):
        return False


def _download(url: str, target: Path) -> None:
    """``https.get(url, r => r.pipe(fs.createWriteStream(target)))``."""
    with open(target, "wb") as file, requests.get(url, stream=True, allow_redirects=False) as response:
        for chunk in response.iter_content(chunk_size=_DOWNLOAD_CHUNK):
            file.write(chunk)


def run_tutorial(
    jobs: Sequence[Mapping[str, Any]],
    token: str,
    base_url: str,
    out_dir: Path,
    *,
    poll_interval: float = TUTORIAL_POLL_INTERVAL,
    give_up_after: Optional[float] = None,
    log: Optional[Callable[[str], None]] = None,
) -> List[Path]:
    """Run the tutorial's loop over ``jobs``; return the files it wrote.

    :param jobs: the export requests' bodies, as in the tutorial's step 2.
    :param token: the API key (the tutorial's ``token``).
    :param base_url: stands for ``https://aistudios.com``.
    :param out_dir: stands for ``./videos/``; it must exist, as in the tutorial.
    :param poll_interval: the sleep after every poll; the tutorial's 3 s.
    :param give_up_after: not the tutorial's: raise ``TimeoutError`` once this
        many seconds have passed (checked after each sleep); ``None``: never.
    :param log: receives the tutorial's ``console.log`` lines; ``None``: silent.
    """
    say = log or (lambda line: None)
    headers = {"Authorization": token, "Content-Type": "application/json"}
    started = time.monotonic()
    downloads: List[threading.Thread] = []
    targets: List[Path] = []
    for job in jobs:
        # #1. Request export
        res = requests.post(f"{base_url}/api/odin/simple/video", json=dict(job), headers=headers).json()
        project_key: Optional[str] = None
        if res.get("success") is True:
            say(f"Export succeed - {res['data']['key']}")
            project_key = res["data"]["key"]

        # #2. Check progress & download
        complete = False
        while not complete:
            url = f"{base_url}/api/odin/editor/progress/{project_key or 'undefined'}"
            res = requests.get(url, headers=headers).json()
            if res.get("success") is True:
                data = res.get("data") or {}
                if _below_100(data.get("progress")):
                    say(f"Waiting... progress: {data.get('progress')}")
                elif data.get("url"):  # export complete
                    say(f"Start download - project key: {project_key}")
                    target = out_dir / posixpath.basename(urlsplit(data["url"]).path)
                    thread = threading.Thread(target=_download, args=(data["url"], target), name=f"download {target}")
                    thread.start()
                    downloads.append(thread)
                    targets.append(target)
                    complete = True
            time.sleep(poll_interval)  # Wait 3 seconds
            if give_up_after is not None and time.monotonic() - started > give_up_after:
                raise TimeoutError(f"the tutorial's loop was still running after {give_up_after:g} s")
    for thread in downloads:  # Node keeps running until every pending download has finished
        thread.join()
    return targets


def main(argv: Optional[List[str]] = None) -> int:
    # Imported here: the baseline itself uses nothing of the library, only the simulator below.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from aistudios_chromakey.simulator import RenderPlan, Simulator

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--jobs", type=int, default=3, help="how many jobs (default: the tutorial's %(default)s)")
    parser.add_argument("--poll-interval", type=float, default=TUTORIAL_POLL_INTERVAL)
    parser.add_argument("--seed", type=int, default=7, help="seed of the render times, uniform 1-4 s")
    options = parser.parse_args(argv)
    rng = random.Random(options.seed)
    renders = [round(rng.uniform(1, 4), 2) for _ in range(options.jobs)]
    jobs = [
        dict(TUTORIAL_JOBS[n % 3], text=f"안녕하세요, 저는 {n + 1}번째 작업입니다.") if n >= 3 else TUTORIAL_JOBS[n]
        for n in range(options.jobs)
    ]
    with Simulator() as sim, tempfile.TemporaryDirectory(prefix="tutorial-baseline-") as out:
        sim.plan(*[RenderPlan(seconds=seconds) for seconds in renders])
        started = time.perf_counter()
        files = run_tutorial(jobs, sim.token, sim.base_url, Path(out), poll_interval=options.poll_interval, log=print)
        elapsed = time.perf_counter() - started
    print(f"{len(files)} of {len(jobs)} videos in {elapsed:.2f} s (renders {sum(renders):.2f} s in total)")
    return 0 if len(files) == len(jobs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
