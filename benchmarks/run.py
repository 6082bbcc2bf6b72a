"""Every benchmark of the project in one run, written to ``benchmarks/RESULTS.md``.

What it measures, side by side, against the local simulator
(:mod:`aistudios_chromakey.simulator`):

1. **Batch wall time.** The tutorial's loop (``tutorial_baseline.py``, a
   Python transliteration of its JavaScript) against ``export_chromakeys``
   with ``concurrency=1`` and a fixed poll every 3 s (its defaults when this
   was written; the poll interval is passed explicitly, so the row keeps its
   meaning if the default changes) and with ``concurrency`` = batch size
   (same poll), on batches of 3, 20 and 100 jobs whose
   render times are drawn from a fixed seed, uniform 1-4 s (as in
   ``batch_concurrency.py``). Reported: wall time, speed-up over the
   tutorial, and the ratio to the floor ``max(render)``. The configurations
   are a list of ``(name, callable)`` (:func:`configurations`): another
   polling mode is one more entry there.
2. **Polling cost** of each configuration: progress requests per job
   (``Simulator.polls(key)``) and the delay from each render's completion to
   the start of its download. A render completes ``seconds`` after the
   service accepted its export; the acceptance time is the arrival time
   (``RecordedRequest.time``) of the export's ``POST``, found by its body
   (every job's text is distinct, so the pairing with ``Simulator.exports``
   does not depend on arrival order). The simulator starts its clock a few
   microseconds after it records the request, so the delay is overstated by
   that much at most; nothing had to be added to the simulator. The
   download starts at the first request for that project's key on the
   download host. The simulator's clock is ``time.monotonic()`` in the same
   process, so all these times compare directly.
3. **Download.** Throughput of ``download_video`` against ``curl -s -o FILE
   URL`` (timed by curl's own ``-w %{time_total}``) on the same 1 GiB file of
   the download host (``RenderPlan(seconds=0, size=...)``), the median of
   several runs. References tell where the time goes: curl and ``requests``
   into ``/dev/null`` (the transfer alone), ``requests`` into a file, and
   ``requests`` adding a SHA-256 of every chunk and an ``fsync`` (the work a
   verifying, durable download adds; curl does neither). The simulator runs in
   this process and every client in its own, so the server is the same for
   all and no client shares its interpreter. Then the peak resident memory of
   ``download_video`` for 1 MiB, 100 MiB and 1 GiB, each in a fresh process
   (``download_memory.py``).
4. **Overheads.** ``import aistudios_chromakey`` and ``python -m
   aistudios_chromakey --version`` against ``import requests`` alone, each in
   fresh processes with warm bytecode caches, the median of several runs.

Why one entry point: the figures only mean something side by side, taken on
the same machine in the same run, and ``RESULTS.md`` records that machine.

Time: the batches sleep most of the time (the tutorial waits 3 s after every
poll), so the full run takes about 13 minutes on 2 cores. To keep it there, the
100-job tutorial baseline, which alone takes about 11 minutes, runs in a child
process alongside the other batches rather than after them (``--no-overlap``
runs it in sequence). That child sleeps between its polls and uses well under
1 % of a core (RESULTS.md reports its CPU time), so the two do not disturb
each other measurably; the download and start-up measurements, which do use
the CPU, only start once it has finished.

``--quick`` (under 3 minutes on 2 cores) shrinks every interval by
``--time-scale`` 0.25 (renders of 0.25-1 s, polls every 0.75 s: the ratios
are what matter), runs the 3- and 20-job batches only, measures throughput on
100 MiB rather than 1 GiB and repeats less; the output says what it skipped.

Usage, from the repository root::

    python benchmarks/run.py [--quick] [--sizes 1MiB,100MiB,1GiB] [--seed 7] [--out benchmarks/RESULTS.md]

Not a test: nothing here is timed under pytest.
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import platform
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

# Run from a checkout: import the package and the other benchmarks beside this script.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import requests

from aistudios_chromakey import download_video, export_chromakeys, request_export, wait_for_video
from aistudios_chromakey.simulator import RenderPlan, Simulator
from benchmarks.download_memory import MB, parse_size, run_child, size_label
from benchmarks.tutorial_baseline import TUTORIAL_JOBS, TUTORIAL_POLL_INTERVAL, run_tutorial

REPO = Path(__file__).resolve().parents[1]
EXPORT_PATH = "/api/odin/simple/video"
FULL_BATCHES = (3, 20, 100)
QUICK_BATCHES = (3, 20)
QUICK_TIME_SCALE = 0.25
DEFAULT_SIZES = "1MiB,100MiB,1GiB"
QUICK_THROUGHPUT_CAP = 100 * 1024**2
CHUNK = 256 * 1024

# Configuration names; the targets look them up.
TUTORIAL = "tutorial loop (baseline)"
LIBRARY_DEFAULTS = "export_chromakeys, concurrency=1, fixed poll"
LIBRARY_FULL = "export_chromakeys, concurrency=batch size, fixed poll"

# Targets (issue 6).
TARGET_SPEEDUP = 8.0
TARGET_FLOOR_RATIO = 1.3
TARGET_CURL_RATIO = 0.8
TARGET_PEAK_MB = 100.0
TARGET_PEAK_GROWTH = 0.20
TARGET_IMPORT_RATIO = 2.0


def log(message: str) -> None:
    """Progress on stderr; the results go to stdout and RESULTS.md."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], left: int = 1) -> str:
    """A Markdown table: the first ``left`` columns (text) left-aligned, the others (figures) right."""
    alignments = [":---"] * left + ["---:"] * (len(headers) - left)
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(alignments[: len(headers)]) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# --- the machine --------------------------------------------------------------


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return f"{line.split('=', 1)[1].strip(chr(34))} ({platform.platform()})"
    except OSError:
        pass
    return platform.platform()


def checkout() -> str:
    """The commit measured, and whether the package had uncommitted changes
    (read-only git commands; "unknown" outside a git checkout)."""

    def git(*arguments: str) -> str:
        done = subprocess.run(["git", *arguments], capture_output=True, text=True, cwd=REPO)
        return done.stdout.strip() if done.returncode == 0 else ""

    try:
        commit = git("log", "-1", "--format=%h %s")
        changed = git("status", "--porcelain", "--", "aistudios_chromakey")
    except OSError:
        return "unknown (no git)"
    if not commit:
        return "unknown (not a git checkout)"
    return f"{commit}" + (" + uncommitted changes in aistudios_chromakey/" if changed else "")


def machine() -> List[Tuple[str, str]]:
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    curl = shutil.which("curl")
    curl_version = "not on PATH"
    if curl:
        curl_version = subprocess.run([curl, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return [
        ("CPU", cpu_model()),
        ("cores", f"{os.cpu_count()} (usable by this process: {usable})"),
        ("Python", f"{platform.python_implementation()} {platform.python_version()} ({sys.executable})"),
        ("requests / urllib3", f"{requests.__version__} / {metadata.version('urllib3')}"),
        ("OS", os_name()),
        ("curl", curl_version),
        ("checkout", checkout()),
    ]


# --- 1 and 2: batches -------------------------------------------------------------


def render_times(count: int, seed: int, scale: float) -> List[float]:
    """``count`` render times, uniform 1-4 s from ``seed`` (the same draws as
    ``batch_concurrency.py``), times ``scale``."""
    rng = random.Random(seed)
    return [round(rng.uniform(1, 4), 2) * scale for _ in range(count)]


def batch_jobs(count: int) -> List[Dict[str, Any]]:
    """The tutorial's three jobs, then more like them; every text is distinct."""
    jobs: List[Dict[str, Any]] = [dict(job) for job in TUTORIAL_JOBS[:count]]
    for n in range(len(jobs), count):
        jobs.append(dict(TUTORIAL_JOBS[n % 3], text=f"안녕하세요, 저는 {n + 1}번째 작업입니다."))
    return jobs


@dataclass(frozen=True)
class BatchContext:
    """What a configuration is given to run one batch."""

    jobs: List[Dict[str, Any]]
    token: str
    base_url: str
    out_dir: Path
    poll_interval: float  # the tutorial's 3 s, times the time scale
    give_up_after: float  # a bound for loops that would otherwise never end


BatchRunner = Callable[[BatchContext], object]


def _tutorial(context: BatchContext) -> object:
    return run_tutorial(
        context.jobs,
        context.token,
        context.base_url,
        context.out_dir,
        poll_interval=context.poll_interval,
        give_up_after=context.give_up_after,
    )


def _library(concurrency: int) -> BatchRunner:
    """``export_chromakeys`` at ``concurrency`` with a fixed poll interval, and
    its defaults for everything else. The interval is always passed, so that
    the row keeps meaning "a poll every 3 s" whatever the default becomes."""

    def run(context: BatchContext) -> object:
        return export_chromakeys(
            context.jobs,
            context.token,
            base_url=context.base_url,
            out_dir=context.out_dir,
            concurrency=concurrency,
            poll_interval=context.poll_interval,
        )

    return run


def configurations(batch_size: int) -> List[Tuple[str, BatchRunner]]:
    """The ways of running a batch that are compared; add a polling mode here."""
    return [
        (TUTORIAL, _tutorial),
        (LIBRARY_DEFAULTS, _library(1)),
        (LIBRARY_FULL, _library(batch_size)),
    ]


@dataclass
class BatchResult:
    """One configuration on one batch."""

    config: str
    renders: List[float]
    poll_interval: float
    wall: float
    polls: List[int]  # progress requests, per job
    delays: List[float]  # seconds from the render's completion to its download's first request, per job
    cpu: float  # CPU seconds of the measuring process (client and simulator threads)
    exporting: float  # seconds from the first export request to the last
    overlapped: bool = False

    @property
    def jobs(self) -> int:
        return len(self.renders)

    @property
    def max_render(self) -> float:
        return max(self.renders)


def _body_key(body: Any) -> str:
    return json.dumps(body, sort_keys=True, ensure_ascii=False)


def measure_batch(config: str, runner: BatchRunner, renders: List[float], poll_interval: float) -> BatchResult:
    """Run one configuration on a fresh simulator; check that every video
    arrived intact; derive the polling cost from what the simulator saw."""
    jobs = batch_jobs(len(renders))
    with Simulator() as sim, tempfile.TemporaryDirectory(prefix="bench-batch-") as out:
        sim.plan(*[RenderPlan(seconds=seconds) for seconds in renders])
        give_up_after = 120 + len(renders) * (max(renders) + 3 * poll_interval) * 3
        context = BatchContext(jobs, sim.token, sim.base_url, Path(out), poll_interval, give_up_after)
        cpu_started, started = time.process_time(), time.perf_counter()
        runner(context)
        wall = time.perf_counter() - started
        cpu = time.process_time() - cpu_started

        exports = sim.exports
        if len(exports) != len(jobs):
            raise RuntimeError(f"{config}: {len(exports)} exports for {len(jobs)} jobs")
        accepted: Dict[str, float] = {}
        for request in sim.requests("api", EXPORT_PATH):
            if request.method == "POST":
                accepted.setdefault(_body_key(request.json()), request.time)
        downloads = sim.requests("download")
        polls, delays = [], []
        for export, seconds in zip(exports, renders):  # plans are used in the order the exports are accepted
            completed = accepted[_body_key(export.body)] + seconds
            started_download = min(r.time for r in downloads if f"/{export.key}/" in r.path)
            delays.append(started_download - completed)
            polls.append(len(sim.polls(export.key)))
            video = Path(out) / f"{export.key}.mp4"
            if not video.is_file() or video.read_bytes() != sim.video(export.key):
                raise RuntimeError(f"{config}: the video of project {export.key} is missing or wrong")
    exporting = max(accepted.values()) - min(accepted.values())
    return BatchResult(config, renders, poll_interval, wall, polls, delays, cpu, exporting)


def _child_batch(config: str, renders: List[float], poll_interval: float) -> None:
    """``--child-batch``: one configuration, its result as JSON on stdout."""
    runner = dict(configurations(len(renders)))[config]
    print(json.dumps(asdict(measure_batch(config, runner, renders, poll_interval))))


@dataclass
class BatchPhase:
    results: List[BatchResult] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)


def run_batches(batches: Sequence[int], seed: int, scale: float, overlap: bool) -> BatchPhase:
    phase = BatchPhase()
    poll = TUTORIAL_POLL_INTERVAL * scale
    background: Optional[Tuple[subprocess.Popen[str], List[float]]] = None
    largest = max(batches)
    if overlap and largest >= 100:
        renders = render_times(largest, seed, scale)
        command = [sys.executable, str(Path(__file__).resolve()), "--child-batch", TUTORIAL]
        command += ["--renders", ",".join(repr(s) for s in renders), "--poll", repr(poll)]
        log(f"batch {largest}: {TUTORIAL} started in a child process, alongside the other batches")
        background = (subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True), renders)
    try:
        for size in batches:
            renders = render_times(size, seed, scale)
            for name, runner in configurations(size):
                if background is not None and size == largest and name == TUTORIAL:
                    continue
                log(f"batch {size}: {name}...")
                result = measure_batch(name, runner, renders, poll)
                log(f"batch {size}: {name}: {result.wall:.2f} s")
                phase.results.append(result)
    except BaseException:
        if background is not None:  # the child this run started, by its handle
            background[0].terminate()
            try:
                background[0].wait(timeout=10)
            except subprocess.TimeoutExpired:
                background[0].kill()
                background[0].wait()
        raise
    if background is not None:
        process, renders = background
        log(f"batch {largest}: waiting for {TUTORIAL} in the child process...")
        stdout, stderr = process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"the {largest}-job tutorial baseline failed:\n{stderr.strip()}")
        data = json.loads(stdout.strip().splitlines()[-1])
        result = BatchResult(**{**data, "overlapped": True})
        log(f"batch {largest}: {TUTORIAL}: {result.wall:.2f} s")
        phase.results.append(result)
        phase.notes.append(
            f"The {largest}-job tutorial baseline ran in a child process alongside the other batches to save "
            f"time: over its {result.wall:.0f} s it used {result.cpu:.2f} s of CPU "
            f"({100 * result.cpu / result.wall:.2f} % of one core), client and simulator together."
        )
    phase.results.sort(key=lambda r: (r.jobs, [name for name, _ in configurations(r.jobs)].index(r.config)))
    return phase


def batch_tables(phase: BatchPhase, scale: float) -> Tuple[str, str]:
    baseline = {r.jobs: r.wall for r in phase.results if r.config == TUTORIAL}
    wall_rows, poll_rows = [], []
    for r in phase.results:
        tutorial = baseline.get(r.jobs)
        speedup = "1.00x (baseline)" if r.config == TUTORIAL else (f"{tutorial / r.wall:.2f}x" if tutorial else "-")
        name = r.config.replace("batch size", str(r.jobs)) + (" *" if r.overlapped else "")
        wall_rows.append(
            [
                str(r.jobs),
                name,
                f"{r.wall:.2f}",
                speedup,
                f"{r.max_render:.2f}",
                f"{r.wall / r.max_render:.2f}x",
                f"{r.wall / (r.max_render + r.poll_interval):.2f}x",
            ]
        )
        poll_rows.append(
            [
                str(r.jobs),
                name,
                f"{statistics.mean(r.polls):.2f}",
                str(max(r.polls)),
                str(sum(r.polls)),
                f"{median(r.delays):.2f}",
                f"{max(r.delays):.2f}",
                f"{r.exporting:.2f}",
            ]
        )
    walls = table(
        [
            "jobs",
            "configuration",
            "wall s",
            "speed-up (tutorial wall / wall)",
            "max(render) s",
            "wall / max(render)",
            "wall / (max(render) + poll)",
        ],
        wall_rows,
        left=2,
    )
    polls = table(
        [
            "jobs",
            "configuration",
            "polls per job (mean)",
            "polls per job (max)",
            "polls in all",
            "render done -> download, median s",
            "max s",
            "first to last export, s",
        ],
        poll_rows,
        left=2,
    )
    poll = TUTORIAL_POLL_INTERVAL * scale
    legend = f"Poll interval {poll:g} s" + (f" (time scale {scale:g})" if scale != 1 else "") + ". "
    parameters = inspect.signature(export_chromakeys).parameters
    legend += (
        f"export_chromakeys's own defaults: concurrency={parameters['concurrency'].default!r}, "
        f"poll_interval={parameters['poll_interval'].default!r}."
    )
    if any(r.overlapped for r in phase.results):
        legend += " * ran alongside the other batches (see the note)."
    notes = "".join(f"\n\n{note}" for note in phase.notes)
    definition = (
        " Polls: progress requests the simulator received per job. Render done -> download: from the moment the "
        "render finished (its export request's arrival plus its planned render time) to the first request for its "
        "video on the download host, all by the simulator's clock."
    )
    return walls + "\n\n" + legend + notes, polls + "\n\n" + legend + definition


# --- 3: download ------------------------------------------------------------------


def _child_download(client: str, url: str, folder: str) -> None:
    """``--child-download``: one download in a fresh process, timed in it."""
    if client == "download_video":
        started = time.perf_counter()
        size = download_video(url, out_dir=folder).stat().st_size
        seconds = time.perf_counter() - started
    elif client == "requests-null":
        # The reference for the transfer alone: nothing is written.
        size = 0
        started = time.perf_counter()
        with requests.get(url, stream=True, timeout=60) as response:
            response.raise_for_status()
            for chunk in response.iter_content(chunk_size=CHUNK):
                size += len(chunk)
        seconds = time.perf_counter() - started
    else:
        # The references: requests alone, and requests doing what download_video
        # does to every byte besides (a SHA-256, then an fsync), each part timed.
        verify = client == "requests+verify"
        path = Path(folder) / "plain.mp4"
        digest = hashlib.sha256()
        hashing = 0.0
        started = time.perf_counter()
        with requests.get(url, stream=True, timeout=60) as response, open(path, "wb") as out:
            response.raise_for_status()
            for chunk in response.iter_content(chunk_size=CHUNK):
                out.write(chunk)
                if verify:
                    before = time.perf_counter()
                    digest.update(chunk)
                    hashing += time.perf_counter() - before
            out.flush()
            if verify:
                before = time.perf_counter()
                os.fsync(out.fileno())
                fsync = time.perf_counter() - before
        seconds = time.perf_counter() - started
        size = path.stat().st_size
        if verify:
            print(json.dumps({"seconds": seconds, "bytes": size, "sha256": hashing, "fsync": fsync}))
            return
    print(json.dumps({"seconds": seconds, "bytes": size}))


#: The clients compared, in the table's order. The references tell where the time goes.
CLIENTS = {
    "curl-null": "curl -s -o /dev/null URL (transfer alone)",
    "requests-null": "requests.get(stream=True), 256 KiB chunks, discarded (transfer alone)",
    "curl": "**curl -s -o FILE URL**",
    "requests": "requests.get(stream=True), 256 KiB chunks, to a file",
    "requests+verify": "the same + SHA-256 of each chunk + fsync (reference)",
    "download_video": "**download_video**",
}


def _download_once(client: str, url: str, folder: Path) -> Dict[str, Any]:
    if client.startswith("curl"):
        target = "/dev/null" if client == "curl-null" else str(folder / "curl.mp4")
        done = subprocess.run(
            ["curl", "-s", "-o", target, "-w", "%{time_total} %{size_download}", url],
            capture_output=True,
            text=True,
            check=True,
        )
        seconds, size = done.stdout.split()
        return {"seconds": float(seconds), "bytes": int(size)}
    command = [sys.executable, str(Path(__file__).resolve()), "--child-download", client, url, str(folder)]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"the {client} download failed:\n{done.stderr.strip()}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


@dataclass
class ThroughputResult:
    size: int
    runs: Dict[str, List[Dict[str, Any]]]
    repetitions: int

    def seconds(self, client: str) -> float:
        return median([run["seconds"] for run in self.runs[client]])

    def rate(self, client: str) -> float:
        """Bytes per second, from the median time."""
        return self.size / self.seconds(client)

    def best_rate(self, client: str) -> float:
        """Bytes per second, from the best time."""
        return self.size / min(float(run["seconds"]) for run in self.runs[client])


def run_throughput(size: int, repetitions: int) -> ThroughputResult:
    clients = [client for client in CLIENTS if not client.startswith("curl") or shutil.which("curl")]
    runs: Dict[str, List[Dict[str, Any]]] = {client: [] for client in clients}
    with Simulator() as sim:
        sim.plan(RenderPlan(seconds=0, size=size))
        key = request_export(batch_jobs(1)[0], sim.token, base_url=sim.base_url)
        url = wait_for_video(key, sim.token, base_url=sim.base_url, poll_interval=0.05)
        for repetition in range(repetitions):
            order = clients[repetition % len(clients) :] + clients[: repetition % len(clients)]
            for client in order:
                os.sync()  # no client inherits the previous one's dirty pages
                with tempfile.TemporaryDirectory(prefix="bench-throughput-") as folder:
                    run = _download_once(client, url, Path(folder))
                if run["bytes"] != size:
                    raise RuntimeError(f"{client} wrote {run['bytes']} bytes, not {size}")
                log(f"throughput {size_label(size)}: {client}: {size / run['seconds'] / MB:.0f} MB/s")
                runs[client].append(run)
    return ThroughputResult(size, runs, repetitions)


def _part(result: ThroughputResult, client: str, part: str) -> Optional[float]:
    """The median time a reference spent in one part of its work, if timed."""
    values = [run[part] for run in result.runs.get(client, []) if part in run]
    return median(values) if values else None


def throughput_table(result: ThroughputResult) -> str:
    rows = []
    has_curl = "curl" in result.runs
    for client in result.runs:
        hashing, fsync = _part(result, client, "sha256"), _part(result, client, "fsync")
        rows.append(
            [
                CLIENTS[client],
                f"{result.seconds(client):.2f}",
                f"{result.rate(client) / MB:.0f}",
                f"{result.rate(client) / result.rate('curl'):.2f}x" if has_curl else "-",
                f"{result.best_rate(client) / MB:.0f}",
                f"{result.best_rate(client) / result.best_rate('curl'):.2f}x" if has_curl else "-",
                f"{hashing:.2f}" if hashing is not None else "",
                f"{fsync:.2f}" if fsync is not None else "",
            ]
        )
    headers = [
        "client",
        "median s",
        "MB/s",
        "vs curl",
        "best MB/s",
        "best vs best curl",
        "in SHA-256, s",
        "in fsync, s",
    ]
    text = table(headers, rows)
    text += (
        f"\n\nThe same {size_label(result.size)} video from the simulator's download host (in the benchmark's "
        "process); each client in its own process (fresh, after an `os.sync()`), timed from its first request "
        "until the file is complete: curl by its `-w %{time_total}`, the others inside the process, without the "
        f"interpreter's start-up. Median (and best) of {result.repetitions}, the clients' order rotating. "
        "MB = 10^6 bytes. The target compares the two rows in bold. The references tell where the time goes: "
        "the `transfer alone` rows write nothing; plain requests writes the file as curl does, leaving it in the "
        "page cache; the `SHA-256 + fsync` reference adds, timing each part, the work a verifying, durable "
        "download does on top (a hash of every byte, then waiting for the disk)."
    )
    if not has_curl:
        text += " curl is not on PATH, so there is no curl figure."
    return text


def run_memory(sizes: Sequence[int]) -> List[Tuple[int, Dict[str, Any]]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-memory-") as folder:
        for size in sizes:
            result = run_child(size, folder)
            log(f"memory {size_label(size)}: peak {result['peak_rss'] / MB:.1f} MB")
            results.append((size, result))
    return results


def memory_table(results: List[Tuple[int, Dict[str, Any]]]) -> str:
    smallest = results[0][1]["peak_rss"]
    rows = []
    for size, r in results:
        verified = r["size"] == r["expected_size"] and r["sha256"] == r["expected_sha256"]
        rows.append(
            [
                size_label(size),
                f"{r['seconds']:.2f}",
                f"{r['baseline_rss'] / MB:.1f}",
                f"{r['peak_rss'] / MB:.1f}",
                f"{100 * (r['peak_rss'] / smallest - 1):+.1f} %",
                "yes" if verified else "NO",
            ]
        )
    return (
        table(
            [
                "size",
                "download s",
                "peak RSS before the download, MB",
                "peak RSS, MB",
                f"vs {size_label(results[0][0])}",
                "verified",
            ],
            rows,
        )
        + "\n\nEach size in a fresh process (download_memory.py), the simulator included; peak resident "
        "memory is the process's VmHWM on Linux (getrusage's ru_maxrss would also count the memory this benchmark "
        "had when it started the process); the file checked by size and SHA-256."
    )


# --- 4: overheads -------------------------------------------------------------------

_TIMED_IMPORT = "import time; t = time.perf_counter(); import {0}; print(time.perf_counter() - t)"


@dataclass
class OverheadResult:
    walls: Dict[str, List[float]]
    imports: Dict[str, List[float]]
    version: Optional[str]  # what --version printed, or None when not available
    unavailable: str
    runs: int
    breakdown: str  # what the package imports beyond requests, largest first


def _child_env(pycache: str) -> Dict[str, str]:
    """The environment of the start-up measurements: bytecode caches on, kept
    in ``pycache``, so every module is read from a warm cache after the first
    round (as for an installed package), whatever ``PYTHONDONTWRITEBYTECODE``
    says, and without writing into the checkout."""
    env = {name: value for name, value in os.environ.items() if name != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = pycache
    return env


def _timed_process(arguments: List[str], env: Dict[str, str]) -> Tuple[float, subprocess.CompletedProcess[str]]:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, *arguments], capture_output=True, text=True, cwd=REPO, env=env)
    return time.perf_counter() - started, done


def run_overheads(runs: int) -> OverheadResult:
    commands: Dict[str, List[str]] = {
        "python -c pass": ["-c", "pass"],
        "import requests": ["-c", "import requests"],
        "import aistudios_chromakey": ["-c", "import aistudios_chromakey"],
        "aistudios-chromakey --version": ["-m", "aistudios_chromakey", "--version"],
    }
    modules = ["requests", "aistudios_chromakey"]
    with tempfile.TemporaryDirectory(prefix="bench-pycache-") as pycache:
        env = _child_env(pycache)
        _, probe = _timed_process(commands["aistudios-chromakey --version"], env)
        version, unavailable = None, ""
        if probe.returncode == 0 and probe.stdout.strip():
            version = probe.stdout.strip().splitlines()[0]
        else:
            reason = (probe.stderr.strip().splitlines() or [f"exit status {probe.returncode}"])[-1]
            unavailable = f"not available ({reason})"
            del commands["aistudios-chromakey --version"]
        walls: Dict[str, List[float]] = {name: [] for name in commands}
        imports: Dict[str, List[float]] = {module: [] for module in modules}
        for repetition in range(runs + 1):  # the first round fills the bytecode cache and is not counted
            for name, arguments in commands.items():
                seconds, done = _timed_process(arguments, env)
                if done.returncode != 0:
                    raise RuntimeError(f"{name} failed:\n{done.stderr.strip()}")
                if repetition:
                    walls[name].append(seconds)
            for module in modules:
                _, done = _timed_process(["-c", _TIMED_IMPORT.format(module)], env)
                if done.returncode != 0:
                    raise RuntimeError(f"import {module} failed:\n{done.stderr.strip()}")
                if repetition:
                    imports[module].append(float(done.stdout.strip()))
        breakdown = import_breakdown(env)
    return OverheadResult(walls, imports, version, unavailable, runs, breakdown)


def import_breakdown(env: Dict[str, str]) -> str:
    """What ``import aistudios_chromakey`` imports that ``import requests`` does
    not, by the time spent in each module itself (``-X importtime``), largest
    first: where to look when the import is slow."""

    def self_times(module: str) -> Dict[str, int]:
        _, done = _timed_process(["-X", "importtime", "-c", f"import {module}"], env)
        found = {}
        for line in done.stderr.splitlines():
            match = re.match(r"import time:\s*(\d+)\s*\|\s*\d+\s*\|\s*(\S+)", line)
            if match:
                found[match.group(2)] = int(match.group(1))
        return found

    ours, theirs = self_times("aistudios_chromakey"), self_times("requests")
    extra = sorted(((us, name) for name, us in ours.items() if name not in theirs), reverse=True)
    total = sum(us for us, _ in extra)
    top = ", ".join(f"{name} {us / 1000:.1f}" for us, name in extra[:6])
    return f"{len(extra)} modules, {total / 1000:.1f} ms in all ({top} ms)" if extra else "nothing"


def overhead_table(result: OverheadResult) -> str:
    requests_wall = min(result.walls["import requests"])
    requests_import = min(result.imports["requests"])
    rows = []
    for name, walls in result.walls.items():
        module = name.replace("import ", "") if name.startswith("import ") else None
        imports = result.imports[module] if module else None
        rows.append(
            [
                f"`{name}`",
                f"{1000 * median(walls):.1f}",
                f"{1000 * min(walls):.1f}",
                f"{min(walls) / requests_wall:.2f}x",
                f"{1000 * median(imports):.1f}" if imports else "-",
                f"{1000 * min(imports):.1f}" if imports else "-",
                f"{min(imports) / requests_import:.2f}x" if imports else "-",
            ]
        )
    if result.version is None:
        rows.append(["`aistudios-chromakey --version`", result.unavailable, "-", "-", "-", "-", "-"])
    headers = ["what", "process, median ms", "process, best ms", "best vs `import requests`"]
    headers += ["import alone, median ms", "import alone, best ms", "best vs `import requests`"]
    text = table(headers, rows)
    text += (
        f"\n\nEach a fresh `{Path(sys.executable).name}` process started in the repository root; median and best "
        f"of {result.runs}, the commands interleaved, after a warm-up round that fills a bytecode cache "
        '(PYTHONPYCACHEPREFIX in a temporary folder), so no run compiles source. "Process" is start to exit; '
        '"import alone" is '
        "time.perf_counter() around the import statement inside the process, without the interpreter's start-up. "
        "Ratios use the best run: other load on the machine can only add time. "
        f"What `import aistudios_chromakey` imports beyond `import requests` (-X importtime, self time): "
        f"{result.breakdown}."
    )
    if result.version is not None:
        script = shutil.which("aistudios-chromakey", path=str(Path(sys.executable).parent))
        text += (
            f" `--version` printed `{result.version}` (run as `python -m aistudios_chromakey --version`; "
            f"console script `aistudios-chromakey` {'installed' if script else 'not installed'} beside this Python)."
        )
    return text


# --- targets ------------------------------------------------------------------------


@dataclass
class Target:
    what: str
    goal: str
    measured: str
    status: str  # OK, MISSED, NOT MEASURED
    note: str = ""


def _status(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def batch_targets(phase: BatchPhase) -> List[Target]:
    by = {(r.jobs, r.config): r for r in phase.results}
    tutorial, full = by.get((20, TUTORIAL)), by.get((20, LIBRARY_FULL))
    if full is None:
        return [Target("20-job batch, concurrency=20", "as below", "-", "NOT MEASURED", "no 20-job batch in this run")]
    targets = []
    if tutorial is None:
        targets.append(Target("20-job batch vs the tutorial", ">= 8x faster", "-", "NOT MEASURED", "no baseline"))
    else:
        speedup = tutorial.wall / full.wall
        targets.append(
            Target(
                "20-job batch, concurrency=20, vs the tutorial's loop",
                f">= {TARGET_SPEEDUP:g}x faster",
                f"{speedup:.1f}x ({tutorial.wall:.2f} s -> {full.wall:.2f} s)",
                _status(speedup >= TARGET_SPEEDUP),
            )
        )
    bound = full.max_render + full.poll_interval
    ratio = full.wall / bound
    targets.append(
        Target(
            "20-job batch, concurrency=20, vs max(render) + one poll",
            f"<= {TARGET_FLOOR_RATIO:g}x",
            f"{ratio:.2f}x ({full.wall:.2f} s against {full.max_render:.2f} + {full.poll_interval:g} s)",
            _status(ratio <= TARGET_FLOOR_RATIO),
            f"render done -> download: median {median(full.delays):.2f} s, max {max(full.delays):.2f} s; "
            f"the {full.jobs} exports were sent over {full.exporting:.2f} s",
        )
    )
    return targets


def throughput_target(result: Optional[ThroughputResult], full_size: bool) -> Target:
    what = "download_video throughput vs curl"
    goal = f">= {TARGET_CURL_RATIO:g}x"
    if result is None or "curl" not in result.runs:
        return Target(what, goal, "-", "NOT MEASURED", "curl is not on PATH" if result else "not run")

    def versus(client: str, other: str = "curl") -> float:
        return result.rate(client) / result.rate(other)

    ratio = versus("download_video")
    best = result.best_rate("download_video") / result.best_rate("curl")
    note = (
        f"best of {result.repetitions}: {best:.2f}x; "
        f"download_video {versus('download_video', 'requests'):.2f}x plain requests into a file, "
        f"{versus('download_video', 'requests+verify'):.2f}x requests + SHA-256 + fsync"
    )
    if ratio < TARGET_CURL_RATIO:
        # Where the time download_video takes beyond curl goes, from the references' median times,
        # each adding one part of the work. Parts under a quarter of that gap are noise here.
        t = result.seconds
        gap = t("download_video") - t("curl")
        causes = []
        transfer = t("requests-null") - t("curl-null")
        if transfer > gap / 4:
            causes.append(f"the transfer in Python: +{transfer:.2f} s over curl (both discarding the bytes)")
        writing = (t("requests") - t("requests-null")) - (t("curl") - t("curl-null"))
        if writing > gap / 4:
            causes.append(f"writing the file from Python: +{writing:.2f} s over curl")
        beyond = t("download_video") - t("requests")
        if beyond > gap / 4:
            hashing, fsync = _part(result, "requests+verify", "sha256"), _part(result, "requests+verify", "fsync")
            causes.append(
                f"what download_video does beyond a plain download: +{beyond:.2f} s over requests into a file "
                f"(for scale, a SHA-256 of the data took {hashing:.2f} s and an fsync {fsync:.2f} s here)"
            )
        note += f". Reason, of the {gap:.2f} s download_video takes beyond curl: " + (
            "; ".join(causes) or "no single part stands out from the noise"
        )
    if not full_size:
        note += f"; on {size_label(result.size)}, not 1 GiB (--quick)"
    measured = f"{ratio:.2f}x ({result.rate('download_video') / MB:.0f} vs {result.rate('curl') / MB:.0f} MB/s)"
    return Target(what, goal, measured, _status(ratio >= TARGET_CURL_RATIO), note)


def memory_targets(results: List[Tuple[int, Dict[str, Any]]]) -> List[Target]:
    peaks = {size: r["peak_rss"] / MB for size, r in results}
    gib, mib = peaks.get(1024**3), peaks.get(1024**2)
    if gib is None:
        return [Target("peak memory, 1 GiB download", f"< {TARGET_PEAK_MB:g} MB", "-", "NOT MEASURED", "no 1GiB size")]
    targets = [
        Target(
            "peak memory, 1 GiB download",
            f"< {TARGET_PEAK_MB:g} MB",
            f"{gib:.1f} MB",
            _status(gib < TARGET_PEAK_MB),
        )
    ]
    if mib is None:
        targets.append(Target("peak memory, 1 GiB vs 1 MiB", "within 20 %", "-", "NOT MEASURED", "no 1MiB size"))
    else:
        growth = gib / mib - 1
        targets.append(
            Target(
                "peak memory, 1 GiB vs 1 MiB",
                f"within {100 * TARGET_PEAK_GROWTH:g} %",
                f"{100 * growth:+.1f} % ({gib:.1f} vs {mib:.1f} MB)",
                _status(growth <= TARGET_PEAK_GROWTH),
            )
        )
    return targets


def import_target(result: OverheadResult) -> Target:
    ours, theirs = min(result.imports["aistudios_chromakey"]), min(result.imports["requests"])
    ratio = ours / theirs
    target = Target(
        "import aistudios_chromakey vs import requests",
        f"< {TARGET_IMPORT_RATIO:g}x",
        f"{ratio:.2f}x ({1000 * ours:.1f} vs {1000 * theirs:.1f} ms, import alone, best of {result.runs})",
        _status(ratio < TARGET_IMPORT_RATIO),
    )
    medians = median(result.imports["aistudios_chromakey"]) / median(result.imports["requests"])
    wall = min(result.walls["import aistudios_chromakey"]) / min(result.walls["import requests"])
    target.note = f"medians: {medians:.2f}x; whole process, best: {wall:.2f}x"
    if ratio >= TARGET_IMPORT_RATIO:
        target.note += f"; imported beyond requests: {result.breakdown}"
    return target


def targets_section(targets: List[Target]) -> str:
    rows = [[t.what, t.goal, t.measured, f"**{t.status}**", t.note] for t in targets]
    return table(["target", "goal", "measured", "status", "note"], rows, left=5)


# --- the run ------------------------------------------------------------------------


def parse_options(argv: Optional[List[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="a shorter run (under 3 minutes); see the docstring")
    parser.add_argument(
        "--sizes",
        default=DEFAULT_SIZES,
        help="video sizes for the memory measurement; the largest is also used "
        "for throughput (capped at 100MiB by --quick) (default: %(default)s)",
    )
    parser.add_argument("--seed", type=int, default=7, help="seed of the render times (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "RESULTS.md", help="the report to write")
    parser.add_argument("--batches", default=None, help="batch sizes (default: 3,20,100; --quick: 3,20)")
    parser.add_argument(
        "--time-scale", type=float, default=None, help="multiply renders and polls by this (default: 1; --quick: 0.25)"
    )
    parser.add_argument(
        "--no-overlap",
        action="store_true",
        help="run the tutorial baseline of a batch of 100 jobs or more in sequence, not alongside the others",
    )
    parser.add_argument("--child-batch", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--renders", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--poll", type=float, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--child-download", nargs=3, default=None, help=argparse.SUPPRESS)
    options = parser.parse_args(argv)
    try:
        options.sizes = sorted({parse_size(part) for part in options.sizes.split(",") if part.strip()})
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    if not options.sizes:
        parser.error("--sizes is empty")
    default_batches = QUICK_BATCHES if options.quick else FULL_BATCHES
    try:
        options.batches = (
            sorted({int(part) for part in options.batches.split(",")}) if options.batches else list(default_batches)
        )
    except ValueError:
        parser.error(f"--batches must be whole numbers separated by commas, not {options.batches!r}")
    if any(size < 1 for size in options.batches):
        parser.error("batch sizes must be >= 1")
    if options.time_scale is None:
        options.time_scale = QUICK_TIME_SCALE if options.quick else 1.0
    if options.time_scale <= 0:
        parser.error("--time-scale must be > 0")
    return options


def _interrupt_on_sigterm() -> None:
    """Let SIGTERM unwind like Ctrl-C, so that the child process and the
    temporary folders (up to 1 GiB each) are cleaned up."""

    def interrupt(signum: int, frame: Optional[FrameType]) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: Optional[List[str]] = None) -> int:
    options = parse_options(argv)
    _interrupt_on_sigterm()
    if options.child_batch is not None:
        _child_batch(options.child_batch, [float(s) for s in options.renders.split(",")], options.poll)
        return 0
    if options.child_download is not None:
        _child_download(*options.child_download)
        return 0

    began = time.perf_counter()
    command = shlex.join([sys.executable, *sys.argv]) if argv is None else shlex.join(["run.py", *argv])
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    repetitions = 3 if options.quick else 7
    overhead_runs = 5 if options.quick else 7
    throughput_size = max(options.sizes)
    if options.quick:
        throughput_size = min(throughput_size, QUICK_THROUGHPUT_CAP)
    sections: List[Tuple[str, str]] = []

    def section(title: str, body: str) -> None:
        sections.append((title, body))
        print(f"\n## {title}\n\n{body}", flush=True)

    section("Machine", table(["", ""], [["date", date], ["command", f"`{command}`"], *machine()], left=2))
    if options.quick:
        skipped = [
            f"real time: renders and polls are scaled by {options.time_scale:g} (poll every "
            f"{TUTORIAL_POLL_INTERVAL * options.time_scale:g} s)",
            f"throughput on {size_label(throughput_size)}, not 1 GiB",
            f"repetitions: throughput {repetitions} instead of 7, start-up {overhead_runs} instead of 7",
        ]
        if max(options.batches) < max(FULL_BATCHES):
            skipped.insert(0, f"the {max(FULL_BATCHES)}-job batch (batches: {', '.join(map(str, options.batches))})")
        section("What --quick skipped", "\n".join(f"- {item}" for item in skipped))

    phase = run_batches(options.batches, options.seed, options.time_scale, overlap=not options.no_overlap)
    walls, polls = batch_tables(phase, options.time_scale)
    renders = f"render times uniform 1-4 s from seed {options.seed}" + (
        f", scaled by {options.time_scale:g}" if options.time_scale != 1 else ""
    )
    section(f"1. Batch wall time ({renders})", walls)
    section("2. Polling cost", polls)

    log(f"throughput: {size_label(throughput_size)}, {repetitions} repetitions...")
    throughput = run_throughput(throughput_size, repetitions)
    section(f"3a. Download throughput ({size_label(throughput_size)})", throughput_table(throughput))
    log(f"memory: {', '.join(size_label(size) for size in options.sizes)}...")
    memory = run_memory(options.sizes)
    section("3b. Peak memory of download_video", memory_table(memory))

    log(f"start-up: {overhead_runs} runs each...")
    overheads = run_overheads(overhead_runs)
    section("4. Import and start-up", overhead_table(overheads))

    targets = batch_targets(phase)
    targets.append(throughput_target(throughput, throughput_size >= 1024**3))
    targets += memory_targets(memory)
    targets.append(import_target(overheads))
    section("Targets", targets_section(targets))

    elapsed = time.perf_counter() - began
    report = [f"# Benchmark results{' (--quick)' if options.quick else ''}", ""]
    report.append(f"Written by `benchmarks/run.py` in {elapsed / 60:.1f} minutes. Regenerate: `{command}`.")
    for title, body in sections:
        report += ["", f"## {title}", "", body]
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text("\n".join(report) + "\n", encoding="utf-8")
    print(f"\nwritten to {options.out} in {elapsed:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except KeyboardInterrupt:
        print("interrupted; nothing was written", file=sys.stderr)
        raise SystemExit(130) from None
