"""What the benchmark scripts share: jobs, a simulator, child processes, tables.

Every script measures against the local simulator over real HTTP through the
library's public functions only, so that it keeps measuring the same thing
however the library is arranged inside.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aistudios_chromakey.simulator import RenderPlan, Simulator

REPO = Path(__file__).resolve().parents[1]

__all__ = ["MB", "REPO", "RenderPlan", "Simulator"]

MB = 1_000_000
#: Sent as the export of every job; each job's text is distinct.
JOB = {"language": "ko", "text": "", "model": "M000004017", "clothes": "BG00006160"}


def options(doc: Optional[str], *extra: Tuple[str, Dict[str, Any]]) -> argparse.Namespace:
    """``--quick`` and the script's own options; the docstring's first line as help."""
    parser = argparse.ArgumentParser(description=(doc or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a shorter run (see the docstring)")
    for name, settings in extra:
        parser.add_argument(name, **settings)
    return parser.parse_args()


def jobs(count: int) -> List[Dict[str, Any]]:
    return [dict(JOB, text=f"안녕하세요, 저는 {n}번째 작업입니다.") for n in range(1, count + 1)]


def render_times(count: int, seed: int = 7, low: float = 1.0, high: float = 3.0) -> List[float]:
    rng = random.Random(seed)
    return [round(rng.uniform(low, high), 2) for _ in range(count)]


def spread(values: Sequence[float]) -> Tuple[float, float, float]:
    """(min, median, max)."""
    return min(values), float(statistics.median(values)), max(values)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], left: int = 1) -> str:
    """A Markdown table: the first ``left`` columns left-aligned, the rest right."""
    lines = ["| " + " | ".join(headers) + " |"]
    lines.append("|" + "|".join([":---"] * left + ["---:"] * (len(headers) - left)) + "|")
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def verdict(ok: bool) -> str:
    return "OK" if ok else "**MISSED**"


def machine() -> str:
    """One line: the CPU, the cores, Python, requests, the OS and the commit."""
    cpu = _field("/proc/cpuinfo", "model name") or platform.machine()
    commit = subprocess.run(["git", "log", "-1", "--format=%h"], capture_output=True, text=True, cwd=REPO).stdout
    return (
        f"{cpu}, {os.cpu_count()} cores; {platform.python_implementation()} {platform.python_version()}; "
        f"requests {requests.__version__}; {platform.platform()}; commit {commit.strip() or 'unknown'}"
    )


def _field(path: str, name: str) -> str:
    """The value of the first ``name:`` line of a /proc file ("" if none)."""
    try:
        with open(path, encoding="utf-8") as lines:
            return next((line.split(":", 1)[1].strip() for line in lines if line.startswith(name)), "")
    except OSError:
        return ""


def peak_rss() -> int:
    """This process's peak resident memory in bytes (VmHWM: unlike ru_maxrss,
    it does not inherit the parent's size across fork and exec)."""
    return int(_field("/proc/self/status", "VmHWM:").split()[0]) * 1024


def write_bytes() -> int:
    """Bytes this process has caused to be written to storage so far."""
    return int(_field("/proc/self/io", "write_bytes:"))


def python(
    arguments: List[str], env: Optional[Dict[str, str]] = None, timeout: Optional[float] = None
) -> Tuple[float, str]:
    """Run this Python in a fresh process from the repository root; its wall
    time (start to exit) and its stdout. Raises if it fails; after ``timeout``
    seconds, kills it and raises ``subprocess.TimeoutExpired``."""
    environment = dict(env or os.environ)
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), environment.get("PYTHONPATH")]))
    started = time.perf_counter()
    command = [sys.executable, *arguments]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, env=environment, timeout=timeout)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"{arguments} failed:\n{done.stderr.strip()[-2000:]}")
    return seconds, done.stdout


def call(function: str, timeout: Optional[float] = None, **arguments: Any) -> Dict[str, Any]:
    """``module:function(**arguments)`` in a fresh process; the dict it returns."""
    module, name = function.split(":")
    code = f"import json, sys; from {module} import {name}; print(json.dumps({name}(**json.loads(sys.argv[1]))))"
    printed = python(["-c", code, json.dumps(arguments)], timeout=timeout)[1]
    return dict(json.loads(printed.strip().splitlines()[-1]))


#: The client the scheduler benchmarks use: no poll cap, so that they measure the scheduler.
UNCAPPED = {"max_polls_per_second": None}


def export_batch(
    base_url: str, token: str, count: int, out_dir: str, client: Optional[Dict[str, Any]] = None, **settings: Any
) -> Dict[str, Any]:
    """``count`` jobs through ``export_chromakeys(..., client=Client(token, base_url=..., **client))``
    (``client`` None: the plain function and its defaults), measured in this
    process (run it through :func:`call`, so that the simulator's work is not counted)."""
    from aistudios_chromakey import Client, export_chromakeys

    batch = jobs(count)
    written, cpu, started = write_bytes(), time.process_time(), time.perf_counter()
    if client is None:
        paths = export_chromakeys(batch, token, base_url=base_url, out_dir=out_dir, **settings)
    else:
        with Client(token, base_url=base_url, **client) as keeper:
            paths = export_chromakeys(batch, out_dir=out_dir, client=keeper, **settings)
    wall, cpu, written = time.perf_counter() - started, time.process_time() - cpu, write_bytes() - written
    return {"wall": wall, "cpu": cpu, "written": written, "rss": peak_rss(), "files": len(paths)}


def ideal(durations: Sequence[float], concurrency: int) -> float:
    """When the last of these renders ends if each starts the moment one of
    ``concurrency`` slots is free, in this order, and no request takes time."""
    slots = [0.0] * min(concurrency, len(durations))
    for seconds in durations:
        heapq.heapreplace(slots, slots[0] + seconds)
    return max(slots)


def planned(sim: Simulator) -> List[float]:
    """The render times of the exports the simulator accepted, in their order."""
    return [export.render_seconds for export in sim.exports]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


#: What "one poll" adds to the ideal: the shortest wait between two polls of
#: one render under adaptive polling.
ONE_POLL = 0.5
#: A batch still running after this many times its ideal is stopped and reported so.
GIVE_UP = 8.0


def batch_against_ideal(count: int, concurrency: int, seed: int = 7, **settings: Any) -> Dict[str, Any]:
    """``count`` jobs of renders uniform 1-3 s through :func:`export_batch`
    (``client=UNCAPPED``: a client without the poll cap) in a child process,
    against a simulator in this one; what it cost beside what the renders
    alone would take at that concurrency, and the peak polls/s. A batch still
    running after ``GIVE_UP`` times its ideal is stopped: ``stopped``."""
    renders = render_times(count, seed)
    limit = GIVE_UP * (ideal(renders, concurrency) + ONE_POLL)
    with Simulator() as sim, tempfile.TemporaryDirectory(prefix="bench-") as out:
        sim.plan(*[RenderPlan(seconds=seconds) for seconds in renders])
        arguments = dict(base_url=sim.base_url, token=sim.token, count=count, out_dir=out, **settings)
        try:
            result = call("benchmarks._common:export_batch", limit, concurrency=concurrency, **arguments)
        except subprocess.TimeoutExpired:
            return {"stopped": limit, "ideal": limit / GIVE_UP, "peak_polls": sim.stats()["peak_polls"]}
        stats = sim.stats()
        best = ideal(planned(sim), concurrency) + ONE_POLL
    served, polls = stats["requests"], stats["polls"]
    if result["files"] != count or polls < count:
        raise RuntimeError(f"{count} jobs: {result['files']} files, {polls} polls")
    return dict(
        result, ideal=best, served=served, cpu_per_request=result["cpu"] / served, peak_polls=stats["peak_polls"]
    )
