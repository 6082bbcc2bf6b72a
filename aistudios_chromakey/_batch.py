"""The whole tutorial loop for a batch: every job's life (_life.py), in turn
or interleaved.

``concurrency=1`` is the tutorial's loop: each life runs to its end on the
caller's thread before the next begins. ``concurrency=N`` keeps up to N
lives going: this thread resumes each when its next poll is due, and each
video downloads beside it in a pool of threads, the only ones a batch
starts (requests offers no non-blocking reads, and a video streams for
seconds during which no render would be polled and no export sent).

With ``resume=True`` the journal (_journal.py) records each project key as
soon as its export is accepted, so a re-run polls the renders already paid
for instead of exporting them again, and skips finished jobs. Before anything
is sent or paid for, the batch checks the output folder, the jobs' models
(V3) and the keys given to adopt.
"""

from __future__ import annotations

import errno
import hashlib
import heapq
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from collections import Counter, deque
from concurrent import futures
from itertools import count
from pathlib import Path
from typing import Any, Callable, Dict, Generator, Iterable, List, Mapping, Optional, Tuple, Union

from ._answers import check_jobs_against
from ._client import Client
from ._http import SavedVideo, cut_now
from ._jobs import Job, check_jobs, check_template, video_name
from ._journal import Entry, JobState, open_journal
from ._life import Fetch, Finish, Run, Step, Task, life
from ._polling import DEFAULT_POLL_INTERVAL, DEFAULT_RENDER_TIMEOUT, check_timing
from ._reports import (
    AIStudiosError,
    BatchError,
    DownloadError,
    ExportUncertain,
    JournalError,
    ProgressCallback,
    ServiceError,
)

logger = logging.getLogger("aistudios_chromakey")

#: The most downloads that run at once (fewer when the batch's concurrency is lower).
MAX_DOWNLOADS = 32
_PROGRESS_EVERY = 0.25  # seconds between two "downloading" events of a job
Life = Generator[Step, Any, None]
Wanted = Union[Fetch, Finish]
#: The batch's optional last step: the video, and a callback for the fraction done; returns what it made.
Then = Callable[[Path, Callable[[float], None]], Path]


def run_batch(
    client: Client,
    jobs: Iterable[Mapping[str, Any]],
    *,
    out_dir: Union[str, os.PathLike[str]] = "videos",
    poll_interval: Optional[float] = DEFAULT_POLL_INTERVAL,
    timeout: Optional[float] = DEFAULT_RENDER_TIMEOUT,
    on_progress: Optional[ProgressCallback] = None,
    concurrency: int = 1,
    resume: bool = True,
    filename_template: Optional[str] = None,
    adopt: Optional[Mapping[int, str]] = None,
    check_catalogue: bool = True,
    then: Optional[Then] = None,
) -> List[Path]:
    """:func:`aistudios_chromakey.export_chromakeys` on ``client``."""
    checked = check_jobs(jobs, client.api, client.max_text_length)
    client.credentials.resolve()
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ValueError(f"concurrency must be a whole number >= 1, not {concurrency!r}")
    check_timing(poll_interval, timeout)
    if filename_template is not None:
        check_template(filename_template)
    folder = Path(out_dir)
    check_folder(folder)
    if client.api.mints_tokens and check_catalogue:
        check_models(client, checked)
    adopted = check_adopted(adopt or {}, len(checked))
    identities = fingerprints(checked, client.api.name, client.base_url)
    tasks = [Task(position, job, fingerprint) for position, job, fingerprint in zip(count(1), checked, identities)]
    with open_journal(folder, keep=resume) as journal:
        run = _Batch(client, journal, folder, poll_interval, timeout, on_progress, filename_template, then)
        try:
            run.drive(tasks, adopted, concurrency)
        except KeyboardInterrupt as interrupt:
            message = "batch interrupted; " + (
                f"the journal is {journal.path}. Run the same batch again to resume without paying twice."
                if resume
                else "resume=False kept no journal, so a new run exports every job again."
            )
            logger.warning("%s", message)
            raise KeyboardInterrupt(message) from interrupt
    failures = [(task.position, task.error) for task in tasks if task.error is not None]
    paths = [task.saved.path if task.saved else None for task in tasks]
    logger.info("batch finished: %d of %d jobs done, %d failed", len(tasks) - len(failures), len(tasks), len(failures))
    if failures:
        raise BatchError(failures, paths)
    return [path for path in paths if path is not None]


def fingerprints(jobs: List[Job], api: str, base_url: str) -> List[str]:
    """A stable identity per job: its body, the flow and the host. The n-th
    copy of an identical job is a job of its own (``#n``)."""
    seen: Counter[str] = Counter()
    result = []
    for job in jobs:
        canonical = json.dumps({"job": job.body, "api": api, "host": base_url}, sort_keys=True, ensure_ascii=False)
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
        seen[digest] += 1
        result.append(f"{digest}#{seen[digest]}")
    return result


def check_adopted(adopt: Mapping[int, str], count: int) -> Dict[int, str]:
    """``adopt``: project keys the caller knows for some jobs (a key printed
    when the journal could not be written), by 1-based position."""
    if not isinstance(adopt, Mapping):
        raise ValueError(f"adopt must map job positions to project keys, not {type(adopt).__name__}")
    for position, key in adopt.items():
        if not isinstance(position, int) or isinstance(position, bool) or not 1 <= position <= count:
            raise ValueError(f"adopt: {position!r} is not the position of a job (1 to {count})")
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"adopt: job {position}'s project key must be a non-empty string, not {key!r}")
    return {position: key.strip() for position, key in adopt.items()}


def check_models(client: Client, jobs: List[Job]) -> None:
    """V3: every job's model and clothes must be in the service's catalogue.
    One that cannot be read only earns a warning (the service judges the
    jobs), but refused credentials or an unreachable service stop here."""
    try:
        models = client.models()
    except ServiceError as error:
        if error.unreachable:
            raise
        logger.warning(
            "the model catalogue could not be read (%s); the jobs' model IDs are not checked", error,
            extra={"notice": True},
        )  # fmt: skip
        return
    check_jobs_against(jobs, models)


#: Free space the output folder must have before anything is paid for: room for a video.
MIN_FREE_BYTES = 64 * 1024 * 1024


def check_folder(folder: Path, create: bool = True) -> None:
    """Before any render is paid for: ``folder`` exists (or is created), a file
    can be written there, and the disk has room for a video. ``create=False``
    (a dry run) checks where a missing folder would be made instead."""
    try:
        if not create and not folder.exists():
            parent = next(p for p in folder.absolute().parents if p.exists())
            if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, f"{parent} cannot be written")
            folder = parent
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".aistudios-chromakey-probe.") as probe:
            probe.write(b"\0")
        free = shutil.disk_usage(folder).free
    except OSError as error:
        raise JournalError(
            f"cannot save videos in the output folder {folder} ({error.strerror or error}); nothing was sent"
        ) from None
    if free < MIN_FREE_BYTES:
        raise JournalError(
            f"the output folder {folder} has only {free // (1024 * 1024)} MiB free, not enough for a video; "
            "nothing was sent"
        )


class _Batch(Run):
    """One run of a batch: what the journal knows, then the lives."""

    projects: Optional[List[Mapping[str, Any]]] = None  # V3: the account's list, once asked

    def drive(self, tasks: List[Task], adopted: Mapping[int, str], concurrency: int) -> None:
        """Run the lives: a job holds its slot from its export to the end of
        its download, so that ``concurrency=1`` is the tutorial's loop;
        renders resumed from the journal start at once and hold theirs."""
        for position, key in adopted.items():  # keys the caller gives back: as if this run got them
            task = tasks[position - 1]
            entry = self.journal.get(task.fingerprint)
            if entry is None or entry.project_key != key:
                logger.info("job %d: adopting project %s", position, key)
                self.journal.put(task.fingerprint, Entry(position, JobState.SUBMITTED, key))
        left = [task for task in tasks if not self.recall(task)]
        waiting = deque(task for task in left if task.project_key is None)
        order = count()
        due: List[Tuple[float, int, Life, Any]] = []  # (when, order, life, what to send it): a heap

        def push(step: Life, when: float = 0.0, value: Any = None) -> None:
            heapq.heappush(due, (when, next(order), step, value))

        for task in left:
            if task.project_key is not None:
                if task.saved is None:
                    logger.info("job %d: resuming project %s from the journal", task.position, task.project_key)
                push(life(self, task))
        pool = _Pool(min(concurrency, MAX_DOWNLOADS), self.work, self.tell)  # threads start with its first download
        try:
            while waiting or due or pool.running:
                while waiting and len(due) + len(pool.running) < concurrency:  # every life is in one of them
                    push(life(self, waiting.popleft()))
                for step, outcome in pool.wait(due[0][0] if due else math.inf):
                    push(step, value=outcome)
                if not due or due[0][0] > time.monotonic():
                    if due and not pool.running:  # nothing to wait for but the next life
                        time.sleep(max(0.0, due[0][0] - time.monotonic()))
                    continue
                _, _, step, value = heapq.heappop(due)
                self.queued = len(due)
                try:
                    wanted = step.send(value)
                except StopIteration:
                    continue
                if isinstance(wanted, float):
                    push(step, wanted)
                elif concurrency > 1:
                    pool.start(step, wanted)
                else:  # in turn: on this thread, as the tutorial does
                    push(step, value=self.now(wanted))
        finally:
            pool.stop()  # an interrupted batch leaves no download behind

    def work(self, wanted: Wanted, check: Callable[[], None]) -> Any:
        """Download or finish ``wanted``, calling ``check`` (which may stop it)
        at each piece of progress; returns what its life is sent back."""
        task = wanted.task

        def downloaded(received: int, total: Optional[int]) -> None:
            check()
            task.received, task.total = received, total

        def finished(done: float) -> None:
            check()
            task.finished = done

        if isinstance(wanted, Fetch):
            try:
                job, key = task.job, str(task.project_key)
                name = video_name(job.filename, self.filename_template, task.position, job.body, key, wanted.url)
                return self.client.save_video(wanted.url, self.folder, name, progress=downloaded)
            except AIStudiosError as error:
                return error if isinstance(error, DownloadError) else DownloadError(str(error))
        assert self.then is not None
        try:
            return self.then(wanted.video, finished)
        except AIStudiosError as error:
            return error
        except Exception as error:  # ffmpeg gone, a full disk...: this job's failure, not the batch's
            return AIStudiosError(f"finishing {wanted.video.name}: {type(error).__name__}: {error}")

    def now(self, wanted: Wanted) -> Any:
        """``wanted`` done on this thread, telling its progress every quarter second."""
        last = time.monotonic()

        def check() -> None:
            nonlocal last
            if time.monotonic() - last >= _PROGRESS_EVERY:
                last = time.monotonic()
                self.tell(wanted)

        return self.work(wanted, check)

    def tell(self, wanted: Wanted) -> None:
        """How far a download or a finishing step is."""
        task = wanted.task
        if isinstance(wanted, Finish):
            self.emit("finishing", task, progress=100.0 * task.finished)
        else:
            self.emit("downloading", task, progress=100.0, received=task.received, total=task.total)

    # --- what an earlier run did ---------------------------------------------

    def recall(self, task: Task) -> bool:
        """Take what the journal knows of this job; True when nothing is left to do."""
        entry = self.journal.get(task.fingerprint)
        if entry is None:
            return False
        if entry.state is JobState.FAILED:
            # Its render was seen to fail; ask once more before paying for a new one.
            task.project_key, task.recheck = entry.project_key, entry.project_key is not None
            return False
        path = self.folder / entry.file if entry.file else None
        if entry.state is JobState.DONE and path and path.is_file() and entry.size in (None, path.stat().st_size):
            task.project_key = entry.project_key
            task.saved = SavedVideo(path, entry.size or path.stat().st_size, entry.sha256 or "", entry.verified)
            if self.then is not None and not (entry.made and (self.folder / entry.made).exists()):
                logger.info("job %d: already downloaded (%s); finishing it", task.position, path)
                return False  # its finishing step was not done, or not kept: only that runs
            logger.info("job %d: already downloaded (%s), skipped", task.position, path)
            self.emit("done", task, progress=100.0, skipped=True)
            return True
        if entry.state in (JobState.SUBMITTED, JobState.DONE) and entry.project_key:
            # Accepted earlier (and maybe downloaded, but the file is gone): poll the same render again.
            task.project_key = entry.project_key
            task.delivered = entry if entry.state is JobState.DONE else None
            return False
        if entry.state in (JobState.UNCERTAIN, JobState.EXPORTING):
            lost = (
                f"job {task.position}: an earlier run sent its export but lost the answer, so it may exist and be "
                "paid for. Check your AI STUDIOS dashboard; to export it anyway, run it on its own with resume=False."
            )
            self.fail(task, ExportUncertain(lost + self.adoption_hint(task)))
            return True
        return False

    def adoption_hint(self, task: Task) -> str:
        """V3: the account's listed projects that may be this job's lost export, with the ``adopt`` that
        takes one: not the project of a job the journal knows, and named with the job's text (all of it,
        or a start of ten characters or more, as a shortened title). Never adopted on its own: the list
        gives a project's name (undocumented), not the request that made it."""
        if not self.client.api.mints_tokens:
            return ""
        if self.projects is None:
            try:
                self.projects = self.client.projects()
            except AIStudiosError as error:
                logger.warning("the list of projects could not be read (%s)", error)
                self.projects = []
        known = {entry.project_key for entry in self.journal.entries.values()}
        text = " ".join(str(task.job.body.get("text", "")).split())
        found: List[Tuple[str, str, str]] = []
        for item in self.projects:
            key = str(item.get("id", "")).strip()
            name = " ".join(str(item.get("name") or "").split())
            stem = name.rstrip(".…").rstrip()
            if key and key not in known and name and (name == text or (len(stem) >= 10 and text.startswith(stem))):
                found.append((key, name, str(item.get("state") or "")))
        if not found:
            return ""
        listed = "; ".join(f"{key} (named {name!r}, {state or 'no state'})" for key, name, state in found[:5])
        key = found[0][0]
        return (
            f" The service lists {len(found)} project(s) that may be it: {listed}. If one is this job's, "
            f"adopt={{{task.position}: {key!r}}} (on the command line --adopt {task.position}={key}) downloads "
            "it without a new export."
        )


class _Cancelled(BaseException):
    """Raised inside a worker's download when the batch stops: its temporary file goes."""


class _Pool:
    """The downloads running beside the lives (concurrency above 1): up to
    ``workers`` threads, named ``aistudios-download``, gone when it stops."""

    def __init__(self, workers: int, work: Callable[[Wanted, Callable[[], None]], Any], tell: Callable[[Wanted], None]):
        self.running: Dict[futures.Future[Any], Tuple[Life, Wanted]] = {}
        self.workers = workers
        self.work, self.tell = work, tell
        self._executor: Optional[futures.ThreadPoolExecutor] = None
        self._cancel = threading.Event()
        self._threads: set[int] = set()  # the workers busy with a download

    def start(self, step: Life, wanted: Wanted) -> None:
        if self._executor is None:
            self._executor = futures.ThreadPoolExecutor(self.workers, "aistudios-download")

        def check() -> None:
            if self._cancel.is_set():
                raise _Cancelled

        def run() -> Any:
            self._threads.add(threading.get_ident())
            try:
                check()  # a batch that stopped starts nothing more
                return self.work(wanted, check)
            finally:
                self._threads.discard(threading.get_ident())

        self.running[self._executor.submit(run)] = (step, wanted)

    def wait(self, until: float) -> List[Tuple[Life, Any]]:
        """Wait until ``until`` or until a download ends, telling the downloads'
        progress meanwhile; the lives whose download ended, with its outcome."""
        while self.running:
            left = until - time.monotonic()
            done, _ = futures.wait(list(self.running), min(max(left, 0.0), _PROGRESS_EVERY), futures.FIRST_COMPLETED)
            if done or left <= 0:
                return [(self.running.pop(future)[0], future.result()) for future in done]
            for _, wanted in list(self.running.values()):
                self.tell(wanted)
        return []

    def stop(self) -> None:
        """Cancel what still runs (its temporary files are removed) and wait for the workers."""
        self._cancel.set()
        for thread in list(self._threads):
            cut_now(thread)  # a read waiting on a slow host ends now, not at its timeout
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
