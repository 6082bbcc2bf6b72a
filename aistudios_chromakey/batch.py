"""The whole tutorial loop: export, wait and download every job of a batch.

``concurrency=1`` is the tutorial's sequential loop. ``concurrency=N`` keeps
up to N renders running on the service at once and polls them in turn from
this one thread, downloading each as soon as it is done.

With ``resume=True`` a small journal in the output folder records, for each
job, its fingerprint, project key, state and file, rewritten atomically after
every change. The project key is recorded as soon as the export is accepted,
before the first poll, so re-running an interrupted batch polls the renders
already paid for instead of exporting them again, and skips finished jobs
whose file is still there.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Union

import requests

from ._transport import DEFAULT_REQUEST_TIMEOUT, RequestTimeout, session_scope
from .api import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_RENDER_TIMEOUT,
    ProgressCallback,
    ProgressEvent,
    _base_url,
    _check_timing,
    _export,
    _Flow,
    _flow,
    _pause_for,
    _poll,
    _PollClock,
    _resolve_token,
    _timed_out,
    _validate_jobs,
)
from .download import _download, _Saved, safe_filename
from .errors import (
    AIStudiosError,
    AuthenticationError,
    BatchError,
    DownloadError,
    ExportUncertain,
    JournalError,
    RateLimited,
    RenderFailed,
)

logger = logging.getLogger("aistudios_chromakey")

#: The journal's file name inside the output folder.
JOURNAL_NAME = ".aistudios-chromakey.json"
_JOURNAL_FORMAT = "aistudios-chromakey journal"
_JOURNAL_VERSION = 1

# A refused download address is asked for again this many times (signed links expire).
_STALE_ADDRESS = frozenset({403, 404, 410})
_REFRESHES = 3
# An export rate-limited this many times in a row fails.
_RATE_LIMIT_TRIES = 5

# Journal states. A job absent from the journal has never been accepted.
_SUBMITTED = "submitted"  # accepted: it has a project key, maybe a finished render
_DONE = "done"  # downloaded: it has a file
_FAILED = "failed"  # the render failed: exporting again is a new attempt
_UNCERTAIN = "uncertain"  # the export's answer was lost: it may exist and be paid for
_EXPORTING = "exporting"  # the export was being sent when the run stopped: as uncertain


@dataclass
class _Job:
    position: int
    body: Dict[str, Any]
    fingerprint: str
    state: Optional[str] = None
    project_key: Optional[str] = None
    file: Optional[str] = None
    next_poll: float = 0.0
    deadline: Optional[float] = None
    path: Optional[Path] = None
    error: Optional[BaseException] = None
    saved: Optional[_Saved] = None
    clock: Optional[_PollClock] = None
    progress: float = 0.0
    rate_limits: int = 0
    refreshes: int = 0


def _fingerprints(bodies: List[Dict[str, Any]], flow: _Flow, base: str) -> List[str]:
    """A stable identity per job: its body, the flow and the host. The n-th
    copy of an identical job is a job of its own (``#n``)."""
    seen: Dict[str, int] = {}
    result = []
    for body in bodies:
        canonical = json.dumps({"job": body, "api": flow.name, "host": base}, sort_keys=True, ensure_ascii=False)
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
        seen[digest] = seen.get(digest, 0) + 1
        result.append(f"{digest}#{seen[digest]}")
    return result


class _Journal:
    """The batch's memory across runs, in the output folder. It holds no API
    key and no job text: fingerprints, project keys, states and file names."""

    def __init__(self, folder: Path):
        self.path = folder / JOURNAL_NAME
        self.entries: Dict[str, Dict[str, Any]] = {}

    def load(self) -> None:
        try:
            raw = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as error:
            raise self._unreadable(error.strerror or str(error)) from None
        try:
            content = json.loads(raw)
        except ValueError as error:
            raise self._unreadable(f"not JSON: {error}") from None
        if not isinstance(content, dict) or content.get("format") != _JOURNAL_FORMAT:
            raise self._unreadable("not a journal of aistudios-chromakey")
        if content.get("version") != _JOURNAL_VERSION:
            raise self._unreadable(f"journal version {content.get('version')!r}, expected {_JOURNAL_VERSION}")
        jobs = content.get("jobs")
        if not isinstance(jobs, dict) or not all(isinstance(v, dict) for v in jobs.values()):
            raise self._unreadable("its 'jobs' are not a mapping")
        self.entries = jobs

    def _unreadable(self, reason: str) -> JournalError:
        return JournalError(
            f"the batch journal {self.path} cannot be used ({reason}). It records which jobs were already paid "
            "for, so nothing was sent. Move it aside to start afresh (the jobs it listed will be exported and "
            "paid for again), or run with resume=False (--no-resume)."
        )

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Keep a second run out of this folder's journal while this one runs
        (two runs sharing it would each export what the other did). The lock
        is on the folder itself and dies with the process."""
        if sys.platform == "win32":  # no advisory locks: one run per folder is then up to the user
            yield
            return
        import fcntl

        folder = os.open(self.path.parent, os.O_RDONLY)
        try:
            try:
                fcntl.flock(folder, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                raise JournalError(
                    f"another run is using the batch journal in {self.path.parent}; wait for it to finish, "
                    "or give this batch another output folder. Nothing was sent."
                ) from None
            yield
        finally:
            os.close(folder)  # releases the lock

    def record(self, job: _Job) -> None:
        entry: Dict[str, Any] = {"position": job.position, "state": job.state}
        if job.project_key is not None:
            entry["project_key"] = job.project_key
        if job.file is not None:
            entry["file"] = job.file
        if job.saved is not None:
            entry["size"], entry["sha256"] = job.saved.size, job.saved.sha256
        self.entries[job.fingerprint] = entry
        self._save(job)

    def forget(self, job: _Job) -> None:
        """The job was certainly not accepted: as if never tried."""
        if self.entries.pop(job.fingerprint, None) is not None:
            self._save(job)

    def _save(self, job: _Job) -> None:
        content = {"format": _JOURNAL_FORMAT, "version": _JOURNAL_VERSION, "jobs": self.entries}
        try:
            descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=JOURNAL_NAME + ".", suffix=".tmp")
            try:
                with os.fdopen(descriptor, "w", encoding="utf-8") as out:
                    json.dump(content, out, indent=1, ensure_ascii=False)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
        except OSError as error:
            key = f" Job {job.position}'s project key is {job.project_key}: note it." if job.project_key else ""
            raise JournalError(
                f"cannot write the batch journal {self.path} ({error.strerror or error}); the batch stopped so "
                f"that nothing is paid for twice.{key}"
            ) from None


class _NoJournal(_Journal):
    def load(self) -> None:
        pass

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        yield

    def _save(self, job: _Job) -> None:
        pass


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM stop the batch as cleanly as Ctrl-C (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Optional[FrameType]) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def export_chromakeys(
    jobs: Iterable[Mapping[str, Any]],
    token: Optional[str] = None,
    *,
    out_dir: Union[str, os.PathLike[str]] = "videos",
    api: str = "legacy",
    base_url: Optional[str] = None,
    session: Optional[requests.Session] = None,
    poll_interval: Optional[float] = DEFAULT_POLL_INTERVAL,
    timeout: Optional[float] = DEFAULT_RENDER_TIMEOUT,
    on_progress: Optional[ProgressCallback] = None,
    concurrency: int = 1,
    resume: bool = True,
    request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT,
) -> List[Path]:
    """Export every job and download its video into ``out_dir`` (the
    tutorial's whole loop).

    Every job is checked before the first request is sent. A job that fails
    does not stop the others. Re-running the same batch pays for nothing
    twice: finished jobs are skipped, renders already accepted are polled
    again, and only jobs never accepted are exported. Ctrl-C (or SIGTERM)
    stops cleanly; run the same batch again to resume.

    :param jobs: a list of job dicts (``language``, ``text``, ``model``,
        ``clothes``, plus optional fields of the chosen API).
    :param token: the API key; defaults to ``$AISTUDIOS_API_KEY``.
    :param out_dir: the output folder; created if missing.
    :param api: ``"legacy"`` (the tutorial's endpoints) or ``"v3"``.
    :param base_url: the service's ``scheme://host[:port]``.
    :param session: a ``requests.Session`` to reuse; one is made otherwise.
    :param poll_interval: seconds between two polls of the same render;
        ``None`` (the default) times each poll from the render's progress.
    :param timeout: seconds one render may take, ``None`` for no limit.
    :param on_progress: called with a :class:`ProgressEvent` at each step.
    :param concurrency: how many renders may run on the service at once;
        1 is the tutorial's one-after-the-other loop.
    :param resume: keep a journal in ``out_dir`` and use it to skip or resume
        what an earlier run of this batch did.
    :param request_timeout: seconds to connect and to wait for each answer.
    :return: the downloaded files, in the order of the jobs.
    :rtype: list[pathlib.Path]
    :raises InvalidJob: a job is malformed (nothing was sent).
    :raises AuthenticationError: no key, or the service refused it.
    :raises JournalError: the journal cannot be read (nothing was sent).
    :raises BatchError: some jobs failed; it lists them and keeps the paths
        of those that finished.

    Usage::

        >>> paths = export_chromakeys(jobs, out_dir="videos", concurrency=4)
    """
    flow = _flow(api)
    bodies = _validate_jobs(jobs, flow)
    base = _base_url(flow, base_url)
    secret = _resolve_token(token)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ValueError(f"concurrency must be a whole number >= 1, not {concurrency!r}")
    _check_timing(poll_interval, timeout, request_timeout)
    folder = Path(out_dir)
    journal = _Journal(folder) if resume else _NoJournal(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise JournalError(f"cannot create the output folder {folder}: {error.strerror}; nothing was sent") from None
    batch = [
        _Job(position, body, fingerprint)
        for position, (body, fingerprint) in enumerate(zip(bodies, _fingerprints(bodies, flow, base)), start=1)
    ]
    run = _Run(batch, journal, flow, base, secret, folder, poll_interval, timeout, on_progress, request_timeout)
    with journal.locked(), session_scope(session) as active, _sigterm_as_interrupt():
        journal.load()
        try:
            run.go(active, concurrency)
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
    failures = [(job.position, job.error) for job in batch if job.error is not None]
    done = sum(job.path is not None for job in batch)
    logger.info("batch finished: %d of %d jobs done, %d failed", done, len(batch), len(failures))
    if failures:
        raise BatchError(failures, [job.path for job in batch])
    return [job.path for job in batch if job.path is not None]


class _Run:
    """One run of a batch: the scheduler that exports, polls and downloads,
    all from this one thread."""

    def __init__(
        self,
        batch: List[_Job],
        journal: _Journal,
        flow: _Flow,
        base: str,
        token: str,
        folder: Path,
        poll_interval: Optional[float],
        timeout: Optional[float],
        on_progress: Optional[ProgressCallback],
        request_timeout: RequestTimeout,
    ):
        self.batch = batch
        self.journal = journal
        self.flow = flow
        self.base = base
        self.token = token
        self.folder = folder
        self.poll_interval = poll_interval
        self.timeout = timeout
        self.on_progress = on_progress
        self.request_timeout = request_timeout
        # When the service rate-limits any request, no job sends anything before this.
        self.not_before = 0.0

    def emit(self, kind: str, job: _Job, progress: Optional[float] = None) -> None:
        if self.on_progress is None:
            return
        size, sha256 = (job.saved.size, job.saved.sha256) if job.saved else (None, None)
        event = ProgressEvent(kind, job.position, job.project_key, progress, job.path, job.error, size, sha256)
        self.on_progress(event)

    def _hold(self, until: float, deadline: Optional[float] = None) -> None:
        """Sleep until ``until`` and past any rate-limit pause, but never past
        ``deadline``."""
        wake = max(until, self.not_before)
        if deadline is not None:
            wake = min(wake, deadline)
        pause = wake - time.monotonic()
        if pause > 0:
            time.sleep(pause)

    def _rate_limited(self, job: _Job, error: RateLimited) -> None:
        pause = _pause_for(error)
        self.not_before = max(self.not_before, time.monotonic() + pause)
        job.rate_limits += 1
        logger.warning("job %d: rate limited; the whole batch waits %g s", job.position, pause)

    def go(self, session: requests.Session, concurrency: int) -> None:
        waiting: List[_Job] = []  # never accepted: to export
        rendering: List[_Job] = []  # accepted: to poll
        for job in self.batch:
            self._recall(job)
            if job.path is not None or job.error is not None:
                continue
            if job.state == _SUBMITTED:
                logger.info("job %d: resuming project %s from the journal", job.position, job.project_key)
                self._start_clock(job)
                rendering.append(job)
            else:
                waiting.append(job)
        # Renders resumed from the journal are already running; new exports
        # only fill the slots that are left.
        while waiting or rendering:
            while waiting and len(rendering) < concurrency:
                job = waiting.pop(0)
                self._hold(0.0)
                accepted = self._submit(session, job)
                if accepted is None:
                    waiting.insert(0, job)  # rate limited: the same job goes first after the pause
                    break
                if accepted:
                    rendering.append(job)
            if not rendering:
                continue
            job = min(rendering, key=lambda j: j.next_poll)
            self._hold(job.next_poll, job.deadline)
            if self._poll(session, job):
                rendering.remove(job)

    def _recall(self, job: _Job) -> None:
        """Take what the journal knows of this job."""
        entry = self.journal.entries.get(job.fingerprint)
        if not entry:
            return
        state, key, name, size, sha256 = (entry.get(f) for f in ("state", "project_key", "file", "size", "sha256"))
        if state == _DONE and isinstance(name, str) and self._intact(name, size):
            job.state, job.project_key, job.file, job.path = state, key, name, self.folder / name
            if isinstance(size, int) and isinstance(sha256, str):
                job.saved = _Saved(job.path, size, sha256)
            logger.info("job %d: already done (%s), skipped", job.position, job.path)
            self.emit("done", job, 100.0)
        elif state in (_SUBMITTED, _DONE) and isinstance(key, str) and key:
            # Accepted earlier (and maybe downloaded, but the file is gone): poll the same render again.
            job.state, job.project_key = _SUBMITTED, key
        elif state in (_UNCERTAIN, _EXPORTING):
            job.state = state
            job.error = ExportUncertain(
                f"job {job.position}: an earlier run sent its export but lost the answer, so it may exist and be "
                "paid for. Check your AI STUDIOS dashboard; to export it anyway, run it on its own with resume=False."
            )
            self.emit("failed", job)

    def _intact(self, name: str, size: Any) -> bool:
        """The finished file is still there, at the size it was saved with."""
        path = self.folder / name
        return path.is_file() and (not isinstance(size, int) or path.stat().st_size == size)

    def _start_clock(self, job: _Job) -> None:
        now = time.monotonic()
        job.next_poll = now
        job.deadline = None if self.timeout is None else now + self.timeout
        job.clock = _PollClock(self.poll_interval, now)

    def _fail(self, job: _Job, error: AIStudiosError) -> None:
        text = str(error)
        logger.error("%s", text if text.startswith(f"job {job.position}") else f"job {job.position}: {text}")
        job.error = error
        self.emit("failed", job)

    def _submit(self, session: requests.Session, job: _Job) -> Optional[bool]:
        """Export one job: True when accepted, False when it failed, None when
        rate limited (it goes again after the pause)."""
        # Recorded before sending: if this run dies before the answer is
        # recorded, the next one treats the job as possibly paid for.
        job.state = _EXPORTING
        self.journal.record(job)
        try:
            key = _export(session, job.body, self.flow, self.base, self.token, self.request_timeout, job.position)
        except ExportUncertain as error:
            job.state = _UNCERTAIN
            self.journal.record(job)
            self._fail(job, error)
            return False
        except AIStudiosError as error:
            # Certainly not accepted (refused, rate limited, unreachable): as if never tried.
            job.state = None
            self.journal.forget(job)
            if isinstance(error, AuthenticationError):
                raise
            if isinstance(error, RateLimited) and job.rate_limits < _RATE_LIMIT_TRIES:
                self._rate_limited(job, error)
                return None
            self._fail(job, error)
            return False
        job.state, job.project_key = _SUBMITTED, key
        self.journal.record(job)  # before the first poll: a re-run must never export it again
        self._start_clock(job)
        self.emit("submitted", job, 0.0)
        return True

    def _poll(self, session: requests.Session, job: _Job) -> bool:
        """Poll one render; download it when done. True when the job is over."""
        try:
            return self._step(session, job)
        except (AuthenticationError, JournalError):
            raise
        except AIStudiosError as error:
            if isinstance(error, RenderFailed):
                job.state = _FAILED
                self.journal.record(job)
            self._fail(job, error)
            return True

    def _step(self, session: requests.Session, job: _Job) -> bool:
        assert job.project_key is not None and job.clock is not None
        paused = self.not_before - time.monotonic()
        if paused > 0:  # woken by its deadline inside a rate-limit pause
            self._next_poll(job, paused)
            return False
        try:
            progress, address = _poll(session, job.project_key, self.flow, self.base, self.token, self.request_timeout)
        except RateLimited as error:
            self._rate_limited(job, error)
            self._next_poll(job, self.not_before - time.monotonic())
            return False
        job.progress = progress
        self.emit("progress", job, progress)
        if progress < 100 or not address:
            self._next_poll(job, job.clock.next_wait(time.monotonic(), progress))
            return False
        self.emit("downloading", job, 100.0)
        name = safe_filename(address, job.project_key)
        try:
            job.saved = _download(session, address, self.folder, name, self.request_timeout)
        except DownloadError as error:
            if error.status not in _STALE_ADDRESS or job.refreshes >= _REFRESHES:
                raise
            # Signed addresses expire: the progress answer carries a fresh one.
            job.refreshes += 1
            logger.warning("job %d: the video address was refused (%s); asking for a fresh one", job.position, error)
            job.next_poll = time.monotonic()
            return False
        job.path = job.saved.path
        job.state, job.file = _DONE, job.path.name
        self.journal.record(job)
        logger.info("job %d done: %s", job.position, job.path)
        self.emit("done", job, 100.0)
        return True

    def _next_poll(self, job: _Job, wait: float) -> None:
        """Schedule the job's next poll, or give up once its deadline has passed."""
        assert job.project_key is not None
        now = time.monotonic()
        if job.deadline is not None and now >= job.deadline:
            raise _timed_out(job.project_key, self.timeout, job.progress, f"job {job.position}: ")
        job.next_poll = now + max(wait, 0.0)
        if job.deadline is not None:
            job.next_poll = min(job.next_poll, job.deadline)
