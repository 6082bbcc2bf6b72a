"""One job's life: the tutorial's loop body, written once.

The tutorial (``multiple-chromakey-export``) does this for each job::

    let projectKey = await fetch('.../api/odin/simple/video', {method: 'POST', ...})  // 1
    while (true) {
      const res = await fetch('.../api/odin/editor/progress/' + projectKey)             // 2
      if (res.data.progress >= 100 && res.data.url) {
        https.get(res.data.url, response => response.pipe(file)); break                // 3
      }
      await new Promise(resolve => setTimeout(resolve, 3000))
    }

:func:`life` is that body, plus the journal's records (a re-run never pays
twice), a failure that counts once it persists, an expired address asked
again. Where the JavaScript awaits, it yields what it waits for; the batch
resumes it then.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Generator, Optional, Union

from . import _polling as polling
from . import _reports as errors
from ._answers import Progress
from ._client import Client
from ._http import SavedVideo
from ._jobs import Job
from ._journal import Entry, JobState, Journal, sync_folder
from ._reports import ProgressCallback, ProgressEvent

logger = logging.getLogger("aistudios_chromakey")

_STALE_ADDRESS = frozenset({403, 404, 410})  # signed links expire: ask for a fresh one...
_REFRESHES = 3  # ...this many times
_RATE_LIMIT_TRIES = 5  # rate-limit pauses one export may wait out


@dataclass
class Task:
    """One job of this run (the ``position``-th), and where it stands."""

    position: int
    job: Job
    fingerprint: str
    project_key: Optional[str] = None
    recheck: bool = False  # an earlier run saw it fail: export anew if it still does
    delivered: Optional[Entry] = None  # an earlier run saved its video, which is no longer in the folder
    saved: Optional[SavedVideo] = None
    received: Optional[int] = None  # bytes of its video so far, while it downloads
    total: Optional[int] = None
    finished: float = 0.0  # how far its finishing step is, from 0 to 1
    error: Optional[errors.AIStudiosError] = None


@dataclass(frozen=True)
class Fetch:
    """A video to download; the life is sent back the :class:`SavedVideo`, or the :class:`DownloadError`."""

    task: Task
    url: str


@dataclass(frozen=True)
class Finish:
    """A video to finish (``then``); the life is sent back the made file's path, or the error."""

    task: Task
    video: Path


Step = Union[float, Fetch, Finish]  # a time.monotonic() to be woken at, a download, or a finishing step


@dataclass
class Run:
    """What every life of one batch shares."""

    client: Client
    journal: Journal
    folder: Path
    poll_interval: Optional[float]
    timeout: Optional[float]
    on_progress: Optional[ProgressCallback]
    filename_template: Optional[str]
    then: Optional[Callable[[Path, Callable[[float], None]], Path]] = None  # the batch's last step (_batch.Then)
    accepted: int = 0  # exports accepted in this run
    queued: int = 0  # the other lives waiting for the thread while one runs

    def emit(self, kind: str, task: Task, **fields: Any) -> None:
        if self.on_progress is not None:
            if task.saved is not None:
                fields.update(path=task.saved.path, size=task.saved.size, sha256=task.saved.sha256)
            self.on_progress(ProgressEvent(kind, task.position, task.project_key, error=task.error, **fields))

    def fail(self, task: Task, error: errors.AIStudiosError) -> None:
        text = str(error)
        logger.error("%s", text if text.startswith(f"job {task.position}") else f"job {task.position}: {text}")
        task.error = error
        self.emit("failed", task)


def life(run: Run, task: Task) -> Generator[Step, Any, None]:
    """One job: ask for the render, poll until it is done, download it
    (and finish it, when the batch has a ``then``)."""
    refreshes = 0
    while task.saved is None:
        # 1. Ask for the render, unless an earlier run's was recorded.
        if task.project_key is None:
            if not (yield from export(run, task)):
                return
            yield time.monotonic()  # the other jobs' exports go before this one's first poll
        key = task.project_key
        assert key is not None

        # 2. Poll until progress reaches 100 and an address appears.
        try:
            address = yield from _polls(run, task, key)
        except errors.RenderFailed as error:
            if task.delivered is not None:
                # Paid for and delivered once: the user moved the video away and the
                # service let the project go. A new export would be a second payment.
                gone = f"an earlier run saved its video ({task.delivered.file}), which is no longer in {run.folder}"
                again = "It is not exported again: put the file back, or run this job alone with resume=False"
                run.fail(task, errors.RenderFailed(f"{gone}, and the service lost it ({error}). {again}"))
            elif task.recheck:
                logger.info("job %d: project %s still failed; exporting it anew", task.position, key)
                task.project_key, task.recheck = None, False
                continue
            else:
                run.journal.put(task.fingerprint, Entry(task.position, JobState.FAILED, key))
                run.fail(task, error)
            return
        except errors.AuthenticationError:
            raise  # every other job would fail the same way
        except errors.AIStudiosError as error:
            run.fail(task, error)
            return

        # 3. Download it: streamed into a temporary file, named when whole.
        task.received, task.total = 0, None
        run.emit("downloading", task, progress=100.0, received=0)
        outcome = yield Fetch(task, address)
        if isinstance(outcome, errors.DownloadError):
            if outcome.status in _STALE_ADDRESS and refreshes < _REFRESHES:
                # Signed addresses expire: the progress answer carries a fresh one.
                refreshes += 1
                logger.warning("job %d: the video address was refused (%s); asking again", task.position, outcome)
                continue
            run.fail(task, outcome)
            return
        task.saved = outcome
        if run.journal.keeps:
            sync_folder(run.folder)  # the file's name is on disk before the journal says done
        saved = (outcome.path.name, outcome.size, outcome.sha256, outcome.verified)  # the record of its file
        run.journal.put(task.fingerprint, Entry(task.position, JobState.DONE, key, *saved))

    # 4. Finish it (optional): made under a temporary name, renamed when whole.
    made = None
    if run.then is not None:
        made = yield Finish(task, task.saved.path)
        if isinstance(made, errors.AIStudiosError):
            run.fail(task, made)
            return
        done = run.journal.get(task.fingerprint)  # this run's record of the video, or an earlier run's
        assert done is not None
        run.journal.put(task.fingerprint, replace(done, made=made.name))
    logger.info("job %d done: %s%s", task.position, task.saved.path, f", made {made}" if made else "")
    run.emit("done", task, progress=100.0)


def _polls(run: Run, task: Task, key: str) -> Generator[float, None, str]:
    """Step 2 by the one poll policy, against a fresh deadline; while other
    lives wait for this thread, one poll is bounded."""
    watch = polling.Watch(key, run.poll_interval, run.timeout, time.monotonic(), f"job {task.position}: ")

    def report(progress: Progress) -> None:
        task.recheck = False  # it answered: a failure seen before was not this render's end
        if run.on_progress is not None:
            run.on_progress(watch.event(progress, task.position))

    return polling.until_done(
        lambda limit: run.client.poll(key, limit=limit),
        watch,
        run.client.pause,
        report,
        bound=lambda: polling.POLL_SECONDS if run.queued else math.inf,
        doubt=lambda error: run.emit(
            "progress", task, progress=watch.progress, state="the service says it failed; asking again"
        ),
    )


def export(run: Run, task: Task) -> Generator[float, Any, bool]:
    """Step 1: the export request, recorded before it is sent and once it is
    accepted; True when accepted. A rate limit is waited out, by every job."""
    tries = 0
    while True:
        if run.client.pause.until > time.monotonic():
            yield run.client.pause.until
        # Recorded before sending: if this run dies before the answer is
        # recorded, the next one treats the job as possibly paid for.
        run.journal.put(task.fingerprint, Entry(task.position, JobState.EXPORTING))
        try:
            task.project_key = run.client.request_export(task.job)
        except errors.ExportUncertain as error:
            run.journal.put(task.fingerprint, Entry(task.position, JobState.UNCERTAIN))
            run.fail(task, error)
            return False
        except errors.AIStudiosError as error:
            # Certainly not accepted (refused, rate limited, unreachable): as if never tried.
            run.journal.forget(task.fingerprint)
            wrong_address = (isinstance(error, errors.ServiceError) and error.unreachable) or (
                isinstance(error, errors.ExportRejected) and error.moved
            )
            if isinstance(error, errors.AuthenticationError) or (wrong_address and not run.accepted):
                raise  # every other job would fail the same way: one message, nothing sent
            if isinstance(error, errors.RateLimited) and tries < _RATE_LIMIT_TRIES:
                tries += 1
                pause = run.client.pause.extend(error)
                logger.warning("job %d: rate limited; the whole batch waits %g s", task.position, pause)
                continue
            run.fail(task, error)
            return False
        run.accepted += 1
        # Before the first poll: a re-run must never export it again.
        run.journal.put(task.fingerprint, Entry(task.position, JobState.SUBMITTED, task.project_key))
        run.emit("submitted", task, progress=0.0)
        return True
