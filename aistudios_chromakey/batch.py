"""The whole tutorial loop for a batch: export, wait, download every job.

``concurrency=1`` is the tutorial's sequential loop. ``concurrency=N`` keeps
up to N jobs going at once: the scheduler exports and polls them in turn
from this one thread, and each video downloads beside it (downloads.py) as
soon as its render is done.

With ``resume=True`` the journal (journal.py) records each job's project
key the moment its export is accepted, before the first poll, so re-running
an interrupted batch polls the renders already paid for instead of
exporting them again, and skips finished jobs whose file is still there.
"""

from __future__ import annotations

import heapq
import logging
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Deque, Iterable, List, Mapping, Optional, Union

from . import polling
from .download import SavedVideo
from .downloads import MAX_DOWNLOADS, Downloads
from .errors import (
    AIStudiosError,
    AuthenticationError,
    BatchError,
    DownloadError,
    ExportRejected,
    ExportUncertain,
    JournalError,
    RateLimited,
    RenderFailed,
    ServiceError,
)
from .events import ProgressCallback, ProgressEvent
from .jobs import Job, check_jobs
from .journal import Entry, JobState, Journal, open_journal, sync_folder
from .names import check_template, video_name
from .polling import DEFAULT_POLL_INTERVAL, DEFAULT_RENDER_TIMEOUT, Watch, check_timing
from .preflight import check_adopted, check_concurrency, check_folder, fingerprints, projects_like
from .preflight import check_catalogue as check_models

if TYPE_CHECKING:
    from .client import Client

logger = logging.getLogger("aistudios_chromakey")

_STALE_ADDRESS = frozenset({403, 404, 410})  # signed links expire: ask for a fresh one...
_REFRESHES = 3  # ...this many times
_RATE_LIMIT_TRIES = 5  # rate-limit pauses a job may wait out
_PROGRESS_EVERY = 0.25  # seconds between two "downloading" events of a job


@dataclass
class _Task:
    """One job of this run, and where it stands."""

    job: Job
    fingerprint: str
    project_key: Optional[str] = None
    watch: Optional[Watch] = None
    next_poll: float = 0.0
    recheck: bool = False  # an earlier run saw it fail: export anew if it still does
    delivered: Optional[Entry] = None  # an earlier run saved its video, which is no longer in the folder
    saved: Optional[SavedVideo] = None
    received: Optional[int] = None  # bytes of its video so far, while it downloads
    total: Optional[int] = None
    error: Optional[AIStudiosError] = None
    rate_limits: int = 0
    refreshes: int = 0
    last_look: bool = False  # polled once after its deadline: the thread may have been held elsewhere

    @property
    def position(self) -> int:
        assert self.job.position is not None
        return self.job.position


@dataclass(frozen=True)
class _Settings:
    folder: Path
    poll_interval: Optional[float]
    timeout: Optional[float]
    on_progress: Optional[ProgressCallback]
    filename_template: Optional[str]


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
) -> List[Path]:
    """:func:`aistudios_chromakey.export_chromakeys` on ``client``."""
    checked = check_jobs(jobs, client.flow)
    client.credentials.resolve()
    check_concurrency(concurrency)
    check_timing(poll_interval, timeout)
    if filename_template is not None:
        check_template(filename_template)
    folder = Path(out_dir)
    check_folder(folder)
    if client.flow.mints_tokens and check_catalogue:
        check_models(client, checked)
    adopted = check_adopted(adopt, len(checked), resume)
    tasks = [_Task(job, f) for job, f in zip(checked, fingerprints(checked, client.flow.name, client.base_url))]
    settings = _Settings(folder, poll_interval, timeout, on_progress, filename_template)
    with open_journal(folder, keep=resume) as journal:
        try:
            _Scheduler(client, journal, settings, concurrency).run(tasks, adopted)
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


def _gone(task: _Task, entry: Entry, folder: Path, error: RenderFailed) -> str:
    digest = f", sha256 {entry.sha256[:16]}..." if entry.sha256 else ""
    return (
        f"job {task.position}: an earlier run saved its video ({entry.file}{digest}), which is no longer in "
        f"{folder}, and the service no longer gives it ({error}). It is not exported again, which would be paid "
        "for twice: put the file back, or to export it anew run this job on its own with resume=False"
    )


class _Scheduler:
    """One run of a batch: exports and polls from this one thread, and hands
    each finished render's video to the downloads beside it."""

    def __init__(self, client: Client, journal: Journal, settings: _Settings, concurrency: int):
        self.client = client
        self.journal = journal
        self.settings = settings
        self.concurrency = concurrency
        self.waiting: Deque[_Task] = deque()  # never accepted: to export
        self.rendering: List[Any] = []  # accepted: a heap of (next poll, position, task)
        self.downloads = Downloads(client, min(concurrency, MAX_DOWNLOADS))
        self.accepted = 0  # exports accepted in this run
        self.projects: Optional[List[Mapping[str, Any]]] = None  # V3: the account's list, once asked

    def run(self, tasks: List[_Task], adopted: Mapping[int, str]) -> None:
        for position, key in adopted.items():  # keys the caller gives back: as if this run got them
            task = tasks[position - 1]
            entry = self.journal.get(task.fingerprint)
            if entry is None or entry.project_key != key:
                logger.info("job %d: adopting project %s", position, key)
                self.journal.put(task.fingerprint, Entry(position, JobState.SUBMITTED, key))
        for task in tasks:
            if self.recall(task):
                continue
            if task.project_key is not None:
                logger.info("job %d: resuming project %s from the journal", task.position, task.project_key)
                self.start_polling(task)
            else:
                self.waiting.append(task)
        try:
            self.loop()
        finally:
            self.downloads.stop()  # an interrupted batch leaves no download behind

    def loop(self) -> None:
        # A job holds its slot from its export to the end of its download, so
        # that concurrency=1 is the tutorial's loop; renders resumed from the
        # journal already hold theirs.
        while self.waiting or self.rendering or self.downloads.running:
            while self.waiting and len(self.rendering) + len(self.downloads.running) < self.concurrency:
                self.idle(self.client.pause.until)
                task = self.waiting.popleft()
                if self.export(task) == "again":
                    self.waiting.appendleft(task)  # rate limited: the same job goes first after the pause
                    break
            if self.rendering:
                when, _, task = self.rendering[0]
                assert task.watch is not None
                wake = max(when, self.client.pause.until)
                self.idle(wake if task.watch.deadline is None else min(wake, task.watch.deadline))
                if time.monotonic() >= min(when, task.watch.deadline or when) and self.rendering[0][2] is task:
                    heapq.heappop(self.rendering)
                    self.poll(task)
            else:
                self.idle(time.monotonic() + 1.0)
            self.collect()

    def idle(self, until: float) -> None:
        """Wait until ``until``, or until a download ends; meanwhile show the
        downloads' progress."""
        while True:
            left = until - time.monotonic()
            if not self.downloads.running:
                if left > 0:
                    time.sleep(left)
                return
            if self.downloads.wait(min(max(left, 0.0), _PROGRESS_EVERY)) or left <= 0:
                return
            for task in self.downloads.running.values():
                self.emit("downloading", task, progress=100.0, received=task.received, total=task.total)

    def emit(self, kind: str, task: _Task, **fields: Any) -> None:
        if self.settings.on_progress is None:
            return
        saved = task.saved
        self.settings.on_progress(
            ProgressEvent(
                kind,
                position=task.position,
                project_key=task.project_key,
                path=saved.path if saved else None,
                error=task.error,
                size=saved.size if saved else None,
                sha256=saved.sha256 if saved else None,
                **fields,
            )
        )

    def fail(self, task: _Task, error: AIStudiosError) -> None:
        text = str(error)
        logger.error("%s", text if text.startswith(f"job {task.position}") else f"job {task.position}: {text}")
        task.error = error
        self.emit("failed", task)

    # --- what an earlier run did ---------------------------------------------

    def recall(self, task: _Task) -> bool:
        """Take what the journal knows of this job; True when nothing is left to do."""
        entry = self.journal.get(task.fingerprint)
        if entry is None:
            return False
        if entry.state is JobState.FAILED:
            # Its render was seen to fail; ask once more before paying for a new one.
            task.project_key, task.recheck = entry.project_key, entry.project_key is not None
            return False
        if entry.state is JobState.DONE and entry.file and self.intact(entry):
            path = self.settings.folder / entry.file
            task.project_key = entry.project_key
            task.saved = SavedVideo(path, entry.size or path.stat().st_size, entry.sha256 or "", entry.verified)
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

    def adoption_hint(self, task: _Task) -> str:
        """V3: the account's listed projects that may be this job's lost
        export, with the ``adopt`` that takes one. Never adopted on its own:
        the list gives a project's name, not the model, clothes or time of
        the request that made it, so no match is certain."""
        if not self.client.flow.mints_tokens:
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
        path = self.settings.folder / entry.file
        return path.is_file() and (entry.size is None or path.stat().st_size == entry.size)

    # --- the steps --------------------------------------------------------------

    def export(self, task: _Task) -> str:
        """Export one job: ``"accepted"``, ``"failed"``, or ``"again"`` after a rate limit."""
        # Recorded before sending: if this run dies before the answer is
        # recorded, the next one treats the job as possibly paid for.
        self.journal.put(task.fingerprint, Entry(task.position, JobState.EXPORTING))
        try:
            key = self.client.request_export(task.job)
        except ExportUncertain as error:
            self.journal.put(task.fingerprint, Entry(task.position, JobState.UNCERTAIN))
            self.fail(task, error)
            return "failed"
        except AIStudiosError as error:
            # Certainly not accepted (refused, rate limited, unreachable): as if never tried.
            self.journal.forget(task.fingerprint)
            wrong_address = (isinstance(error, ServiceError) and error.unreachable) or (
                isinstance(error, ExportRejected) and error.moved
            )
            if isinstance(error, AuthenticationError) or (wrong_address and not self.accepted):
                raise  # every other job would fail the same way: one message, nothing sent
            if isinstance(error, RateLimited) and task.rate_limits < _RATE_LIMIT_TRIES:
                self.rate_limited(task, error)
                return "again"
            self.fail(task, error)
            return "failed"
        task.project_key = key
        self.accepted += 1
        # Before the first poll: a re-run must never export it again.
        self.journal.put(task.fingerprint, Entry(task.position, JobState.SUBMITTED, key))
        self.emit("submitted", task, progress=0.0)
        self.start_polling(task)
        return "accepted"

    def start_polling(self, task: _Task) -> None:
        assert task.project_key is not None
        now = time.monotonic()
        task.watch = Watch(task.project_key, self.settings.poll_interval, self.settings.timeout, now)
        self.schedule(task, now)

    def schedule(self, task: _Task, when: float) -> None:
        assert task.watch is not None
        if task.watch.deadline is not None:
            when = min(when, task.watch.deadline)
        task.next_poll = when
        heapq.heappush(self.rendering, (when, task.position, task))

    def rate_limited(self, task: _Task, error: RateLimited) -> None:
        pause = self.client.pause.extend(error)
        task.rate_limits += 1
        logger.warning("job %d: rate limited; the whole batch waits %g s", task.position, pause)

    def poll(self, task: _Task) -> None:
        """Poll one render, download it when done, or schedule its next poll."""
        try:
            self.step(task)
        except (AuthenticationError, JournalError):
            raise
        except RenderFailed as error:
            if task.delivered is not None:
                # Paid for and delivered once: the user moved the video away and the
                # service let the project go. A new export would be a second payment.
                self.fail(task, RenderFailed(_gone(task, task.delivered, self.settings.folder, error)))
                return
            if task.recheck:
                logger.info("job %d: project %s still failed; exporting it anew", task.position, task.project_key)
                task.project_key, task.recheck = None, False
                self.waiting.append(task)
                return
            self.journal.put(task.fingerprint, Entry(task.position, JobState.FAILED, task.project_key))
            self.fail(task, error)
        except AIStudiosError as error:
            self.fail(task, error)

    def step(self, task: _Task) -> None:
        watch = task.watch
        assert task.project_key is not None and watch is not None
        now = time.monotonic()
        expired = watch.expired(now, f"job {task.position}: ")
        if expired is not None and (task.last_look or watch.deadline is None or task.next_poll >= watch.deadline):
            raise expired  # no look was owed: it was not kept waiting past its deadline by another
        if self.client.pause.until > now and expired is None:  # woken by its deadline inside a rate-limit pause
            self.schedule(task, self.client.pause.until)
            return
        # One slow poll must not starve the other renders, nor make them miss
        # deadlines while it held this thread: a bound of its own, and a last
        # look at a render whose deadline passed meanwhile.
        limit = watch.seconds_left(now)
        if expired is not None:
            limit, task.last_look = polling.LAST_LOOK_SECONDS, True
        elif self.rendering:
            limit = min(limit, polling.POLL_SECONDS)
        started = time.monotonic()
        try:
            progress = self.client.poll(task.project_key, limit=limit)
        except RateLimited as error:
            self.rate_limited(task, error)
            self.schedule(task, self.client.pause.until)
            return
        except RenderFailed as error:
            wait = watch.failed(error, time.monotonic())  # raises once the failure persists
            logger.warning("job %d: %s; looking again in %.1f s", task.position, error, wait)
            self.schedule(task, time.monotonic() + wait)
            return
        except ServiceError as error:  # a poll cut off by the job's deadline: the timeout is the news
            if not task.last_look and limit < watch.seconds_left(started) and time.monotonic() - started >= limit:
                # It took its whole bound already: asked again in its turn, after the others.
                logger.warning("job %d: a poll took over %g s; asking again", task.position, limit)
                self.schedule(task, time.monotonic())
                return
            raise watch.expired(time.monotonic(), f"job {task.position}: ") or error from None
        task.recheck = False
        if self.settings.on_progress is not None:
            self.settings.on_progress(watch.event(progress, task.position))
        if not progress.done:
            self.schedule(task, now + watch.answered(progress, time.monotonic(), f"job {task.position}: "))
            return
        assert progress.address is not None
        self.download(task, progress.address)

    def download(self, task: _Task, address: str) -> None:
        assert task.project_key is not None
        task.received, task.total = 0, None
        self.emit("downloading", task, progress=100.0, received=0)
        name = video_name(task.job, self.settings.filename_template, task.project_key, address)
        self.downloads.start(task, address, self.settings.folder, name)

    def collect(self) -> None:
        """Take the downloads that ended: record them, or ask for a fresh address."""
        for task, outcome in self.downloads.finished():
            if isinstance(outcome, DownloadError):
                if outcome.status in _STALE_ADDRESS and task.refreshes < _REFRESHES:
                    # Signed addresses expire: the progress answer carries a fresh one.
                    task.refreshes += 1
                    logger.warning("job %d: the video address was refused (%s); asking again", task.position, outcome)
                    self.schedule(task, time.monotonic())
                else:
                    self.fail(task, outcome)
                continue
            task.saved = saved = outcome
            if self.journal.keeps:
                sync_folder(self.settings.folder)  # the file's name is on disk before the journal says done
            entry = Entry(task.position, JobState.DONE, task.project_key, saved.path.name, saved.size, saved.sha256,
                          saved.verified)  # fmt: skip
            self.journal.put(task.fingerprint, entry)
            logger.info("job %d done: %s", task.position, saved.path)
            self.emit("done", task, progress=100.0)
