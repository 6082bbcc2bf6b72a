"""The whole tutorial loop for a batch: every job's life (_life.py), in turn
or interleaved.

``concurrency=1`` is the tutorial's sequential loop: each life runs to its
end on the caller's thread before the next begins. ``concurrency=N`` keeps
up to N lives going at once: this one thread resumes each when its next
poll is due, and each video downloads beside it in a small pool of threads,
the only ones a batch starts. Why threads there: a video streams for seconds
(tens of MB from a storage host that gives each connection a bounded speed),
and while one thread streamed it no render was polled and no export sent;
requests offers no non-blocking reads to interleave chunks in one thread, so
the pool's workers only fill files and report their bytes.

With ``resume=True`` the journal (_journal.py) records each job's project
key the moment its export is accepted, before the first poll, so re-running
an interrupted batch polls the renders already paid for instead of
exporting them again, and skips finished jobs whose file is still there.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import itertools
import logging
import os
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Callable, Dict, Generator, Iterable, List, Mapping, Optional, Tuple, Union

from ._client import Client
from ._deadlines import cut_now
from ._download import SavedVideo
from ._errors import AIStudiosError, BatchError, DownloadError, ExportUncertain
from ._events import ProgressCallback
from ._jobs import check_jobs
from ._journal import Entry, JobState, open_journal
from ._life import Fetch, Finish, Run, Step, Task, Then, life
from ._names import check_template
from ._polling import DEFAULT_POLL_INTERVAL, DEFAULT_RENDER_TIMEOUT, check_timing
from ._preflight import check_adopted, check_concurrency, check_folder, fingerprints, projects_like
from ._preflight import check_catalogue as check_models

logger = logging.getLogger("aistudios_chromakey")

#: The most downloads that run at once (fewer when the batch's concurrency is lower).
MAX_DOWNLOADS = 32
_PROGRESS_EVERY = 0.25  # seconds between two "downloading" events of a job
Life = Generator[Step, Any, None]


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
    check_concurrency(concurrency)
    check_timing(poll_interval, timeout)
    if filename_template is not None:
        check_template(filename_template)
    folder = Path(out_dir)
    check_folder(folder)
    if client.api.mints_tokens and check_catalogue:
        check_models(client, checked)
    adopted = check_adopted(adopt, len(checked), resume)
    tasks = [Task(job, f) for job, f in zip(checked, fingerprints(checked, client.api.name, client.base_url))]
    with open_journal(folder, keep=resume) as journal:
        run = _Batch(client, journal, folder, poll_interval, timeout, on_progress, filename_template, then)
        try:
            run.drive(tasks, adopted, concurrency)
        except KeyboardInterrupt as interrupt:
            if resume:
                message = (
                    f"batch interrupted; the journal is {journal.path}. "
                    "Run the same batch again to resume without paying twice."
                )
            else:
                message = "batch interrupted; resume=False kept no journal, so a new run exports every job again."
            logger.warning("%s", message)
            raise KeyboardInterrupt(message) from interrupt
    failures = [(task.position, task.error) for task in tasks if task.error is not None]
    paths = [task.saved.path if task.saved else None for task in tasks]
    logger.info("batch finished: %d of %d jobs done, %d failed", len(tasks) - len(failures), len(tasks), len(failures))
    if failures:
        raise BatchError(failures, paths)
    return [path for path in paths if path is not None]


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
        waiting = deque(task for task in tasks if not self.recall(task))
        order = itertools.count()
        due: List[Tuple[float, int, Life, Any]] = []  # (when, order, life, what to send it): a heap
        pool = _Pool(min(concurrency, MAX_DOWNLOADS)) if concurrency > 1 else None
        alive = 0

        def start(task: Task) -> None:
            nonlocal alive
            alive += 1
            heapq.heappush(due, (0.0, next(order), life(self, task), None))

        for task in [task for task in waiting if task.project_key is not None]:
            if task.saved is None:
                logger.info("job %d: resuming project %s from the journal", task.position, task.project_key)
            waiting.remove(task)
            start(task)
        try:
            while waiting or due or (pool and pool.running):
                while waiting and alive < concurrency:
                    start(waiting.popleft())
                if pool is not None:
                    for step, outcome in pool.wait(due[0][0] if due else None, self.emit):
                        heapq.heappush(due, (0.0, next(order), step, outcome))
                if not due or due[0][0] > time.monotonic():
                    if due and not (pool and pool.running):  # nothing to wait for but the next life
                        time.sleep(max(0.0, due[0][0] - time.monotonic()))
                    continue
                _, _, step, value = heapq.heappop(due)
                self.queued = len(due)
                try:
                    wanted = step.send(value)
                except StopIteration:
                    alive -= 1
                    continue
                if isinstance(wanted, float):
                    heapq.heappush(due, (wanted, next(order), step, None))
                elif pool is not None:
                    pool.start(step, wanted, self.work(wanted))
                else:  # in turn: on this thread, as the tutorial does
                    heapq.heappush(due, (0.0, next(order), step, self.now(wanted)))
        finally:
            if pool is not None:
                pool.stop()  # an interrupted batch leaves no download behind

    def work(self, wanted: Union[Fetch, Finish]) -> Callable[[Callable[[], None]], Any]:
        """The download or the finishing step ``wanted``, as a function of a
        check called at each piece of progress (which may stop it)."""
        task, folder, then = wanted.task, self.folder, self.then
        if isinstance(wanted, Finish):
            assert then is not None

            def finish(check: Callable[[], None]) -> Any:
                def fraction(done: float) -> None:
                    check()
                    task.finished = done

                try:
                    return then(wanted.video, fraction)
                except (AIStudiosError, _Cancelled):
                    raise
                except Exception as error:  # ffmpeg gone, a full disk...: this job's failure, not the batch's
                    raise AIStudiosError(f"finishing {wanted.video.name}: {type(error).__name__}: {error}") from None

            return finish

        def fetch(check: Callable[[], None]) -> Any:
            def progress(received: int, total: Optional[int]) -> None:
                check()
                task.received, task.total = received, total

            return self.client.save_video(wanted.url, folder, wanted.name, progress=progress)

        return fetch

    def now(self, wanted: Union[Fetch, Finish]) -> Any:
        """``wanted`` done on this thread, telling its progress every quarter second."""
        kind = "finishing" if isinstance(wanted, Finish) else "downloading"
        last = time.monotonic()  # the life has just told its start

        def check() -> None:
            nonlocal last
            if time.monotonic() - last >= _PROGRESS_EVERY:
                last = time.monotonic()
                _tell(self.emit, kind, wanted.task)

        try:
            return self.work(wanted)(check)
        except AIStudiosError as error:
            return error if kind == "finishing" or isinstance(error, DownloadError) else DownloadError(str(error))

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
        if entry.state is JobState.DONE and entry.file and self.intact(entry):
            path = self.folder / entry.file
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
            self.fail(
                task,
                ExportUncertain(
                    f"job {task.position}: an earlier run sent its export but lost the answer, so it may exist and "
                    "be paid for. Check your AI STUDIOS dashboard; to export it anyway, run it on its own with "
                    "resume=False." + self.adoption_hint(task)
                ),
            )
            return True
        return False

    def adoption_hint(self, task: Task) -> str:
        """V3: the account's listed projects that may be this job's lost
        export, with the ``adopt`` that takes one. Never adopted on its own:
        the list gives a project's name, not the model, clothes or time of
        the request that made it, so no match is certain."""
        if not self.client.api.mints_tokens:
            return ""
        if self.projects is None:
            try:
                self.projects = self.client.projects()
            except AIStudiosError as error:
                logger.warning("the list of projects could not be read (%s)", error)
                self.projects = []
        known = {entry.project_key for entry in self.journal.entries.values() if entry.project_key}
        found = projects_like(self.projects, str(task.job.body.get("text", "")), known)
        if not found:
            return ""
        listed = "; ".join(f"{key} (named {name!r}, {state or 'no state'})" for key, name, state in found[:5])
        key = found[0][0]
        return (
            f" The service lists {len(found)} project(s) that may be it: {listed}. If one is this job's, "
            f"adopt={{{task.position}: {key!r}}} (on the command line --adopt {task.position}={key}) downloads "
            "it without a new export."
        )

    def intact(self, entry: Entry) -> bool:
        """The finished file is still there, at the size it was saved with."""
        assert entry.file is not None
        path = self.folder / entry.file
        return path.is_file() and (entry.size is None or path.stat().st_size == entry.size)


class _Cancelled(BaseException):
    """Raised inside a worker's download when the batch stops: its temporary file goes."""


class _Pool:
    """The downloads running beside the lives (concurrency above 1): up to
    ``workers`` threads, named ``aistudios-download``, gone when it stops."""

    def __init__(self, workers: int):
        self.running: Dict[concurrent.futures.Future[Any], Tuple[Life, Task, str]] = {}
        self.workers = workers
        self._executor: Optional[concurrent.futures.ThreadPoolExecutor] = None
        self._cancel = threading.Event()
        self._threads: set[int] = set()  # the workers busy with a download

    def start(self, step: Life, wanted: Union[Fetch, Finish], work: Callable[[Callable[[], None]], Any]) -> None:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(self.workers, "aistudios-download")

        def check() -> None:
            if self._cancel.is_set():
                raise _Cancelled

        def run() -> Any:
            self._threads.add(threading.get_ident())
            try:
                check()  # a batch that stopped starts nothing more
                return work(check)
            finally:
                self._threads.discard(threading.get_ident())

        kind = "finishing" if isinstance(wanted, Finish) else "downloading"
        self.running[self._executor.submit(run)] = (step, wanted.task, kind)

    def wait(self, until: Optional[float], emit: Any) -> List[Tuple[Life, Any]]:
        """Wait until ``until`` (None: until a download ends) while telling
        the downloads' progress; the lives whose download ended, with its outcome."""
        while self.running:
            left = None if until is None else until - time.monotonic()
            if left is not None and left <= 0:
                return [self.outcome(future) for future in list(self.running) if future.done()]
            timeout = _PROGRESS_EVERY if left is None else min(left, _PROGRESS_EVERY)
            done, _ = concurrent.futures.wait(list(self.running), timeout, concurrent.futures.FIRST_COMPLETED)
            if done:
                return [self.outcome(future) for future in done]
            for _, task, kind in list(self.running.values()):
                _tell(emit, kind, task)
        return []

    def outcome(self, future: concurrent.futures.Future[Any]) -> Tuple[Life, Any]:
        step, _, kind = self.running.pop(future)
        error = future.exception()
        if error is None:
            return step, future.result()
        if isinstance(error, AIStudiosError):
            return step, error if kind == "finishing" or isinstance(error, DownloadError) else DownloadError(str(error))
        raise error

    def stop(self) -> None:
        """Cancel what still runs (its temporary files are removed) and wait for the workers."""
        self._cancel.set()
        for thread in list(self._threads):
            cut_now(thread)  # a read waiting on a slow host ends now, not at its timeout
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
        self.running.clear()


def _tell(emit: Any, kind: str, task: Task) -> None:
    if kind == "finishing":
        emit("finishing", task, progress=100.0 * task.finished)
    else:
        emit("downloading", task, progress=100.0, received=task.received, total=task.total)
