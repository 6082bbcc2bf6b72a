"""What the library reports: the exceptions it raises (all derive from
:class:`AIStudiosError`, some also from a builtin that code knowing nothing
of this library catches; no message contains a credential), and what
``on_progress`` callbacks receive, or :func:`show_progress` shows."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence, TextIO, Tuple


class AIStudiosError(Exception):
    """Base class of every error raised by ``aistudios_chromakey``."""


class InvalidJob(AIStudiosError, ValueError):
    """A job is malformed (at its 1-based ``position`` in the batch, ``None``
    for a single job; ``field``, or ``None`` for the whole job); raised
    before anything is sent or paid for."""

    def __init__(self, message: str, *, position: Optional[int] = None, field: Optional[str] = None):
        where = ("job" if position is None else f"job {position}") + ("" if field is None else f", field {field!r}")
        super().__init__(f"{where}: {message}")
        self.position = position
        self.field = field


class AuthenticationError(AIStudiosError):
    """The service refused the API key (HTTP 401/403), or no key was given."""


class ServiceError(AIStudiosError):
    """The service could not be reached, or answered something unusable (an
    HTTP error, not JSON, JSON without the expected fields). ``status`` is
    the HTTP status, when there was an answer; ``unreachable`` is True when
    no connection could be made at all: nothing was sent."""

    def __init__(self, message: str, *, status: Optional[int] = None, unreachable: bool = False):
        super().__init__(message)
        self.status = status
        self.unreachable = unreachable


class RateLimited(ServiceError):
    """The service still answered 429 (too many requests) after the retries;
    ``retry_after``: the seconds its last ``Retry-After`` asked for, if any."""

    def __init__(self, message: str, *, status: Optional[int] = 429, retry_after: Optional[float] = None):
        super().__init__(message, status=status)
        self.retry_after = retry_after


class ExportRejected(AIStudiosError):
    """The service refused an export request (``success: false`` for an
    unknown model...); nothing was rendered or charged. ``moved`` is True for
    a redirect (the service moved): every export there would be refused."""

    def __init__(self, message: str, *, moved: bool = False):
        super().__init__(message)
        self.moved = moved


class ExportUncertain(AIStudiosError):
    """The export request was sent but its answer was lost (a timeout, a reset
    connection): the service may have accepted it and may charge for it. It
    is never resent automatically: a second request is a second paid render."""


class RenderFailed(AIStudiosError):
    """The service reported that a render failed, or no longer knows it."""


class RenderTimeout(AIStudiosError, TimeoutError):
    """A render did not finish within the deadline given by ``timeout``."""


class DownloadError(AIStudiosError):
    """A video could not be downloaded whole, or what arrived was not a video;
    nothing is left under the final file name. ``status``: the download
    host's HTTP status, when it refused."""

    def __init__(self, message: str, *, status: Optional[int] = None):
        super().__init__(message)
        self.status = status


class JournalError(AIStudiosError):
    """The output folder or its batch journal cannot be used. ``nothing_sent``
    is True (the usual case) when found before anything was sent; False when
    the journal could not be written mid-batch, which then stopped so that
    nothing is paid for twice."""

    def __init__(self, message: str, *, nothing_sent: bool = True):
        super().__init__(message)
        self.nothing_sent = nothing_sent


class BatchError(AIStudiosError):
    """Some jobs of a batch failed; the others finished. ``failures`` holds
    ``(position, error)`` for each failed job (1-based); ``paths``, per job in
    order, the downloaded file, or ``None`` for a job that failed."""

    def __init__(self, failures: Sequence[Tuple[int, BaseException]], paths: Sequence[Optional[Path]]):
        shown = [str(error) if str(error).startswith(f"job {at}") else f"job {at}: {error}" for at, error in failures]
        super().__init__("\n  ".join([f"{len(failures)} of {len(paths)} jobs failed:", *shown]))
        self.failures = list(failures)
        self.paths = list(paths)


@dataclass(frozen=True)
class ProgressEvent:
    """One step of one job. ``kind`` is ``"submitted"``, ``"progress"``,
    ``"downloading"`` (``received`` bytes so far, of ``total`` when
    announced), ``"finishing"`` (making the clip ``transparent=`` or
    ``background=`` asked for; ``progress`` is its percent), ``"done"``
    (``path``, its ``size`` and ``sha256`` in hex; ``skipped`` for a job an
    earlier run finished: nothing was sent or paid for it in this run) or
    ``"failed"`` (``error``). ``position`` is the job's 1-based position in a
    batch, or ``None``; ``project_key`` is there once the export was
    accepted; ``progress`` (percent), ``seconds_left`` (the render's
    estimate) and ``state`` (the service's own word for it, V3) when known.
    """

    kind: str
    position: Optional[int] = None
    project_key: Optional[str] = None
    progress: Optional[float] = None
    path: Optional[Path] = None
    error: Optional[BaseException] = None
    size: Optional[int] = None
    sha256: Optional[str] = None
    state: Optional[str] = None
    seconds_left: Optional[float] = None
    received: Optional[int] = None
    total: Optional[int] = None
    skipped: bool = False


ProgressCallback = Callable[[ProgressEvent], None]


def show_progress(stream: Optional[TextIO] = None) -> None:
    """See every job's progress, in a script or a notebook: the library's
    steps and each tenth of every render, one line each, on ``stream``
    (standard error by default). The library configures no logging of its
    own: calling this once, before the rest, is the one-word way to ask it to."""
    logger = logging.getLogger("aistudios_chromakey")
    if not any(handler.get_name() == "show_progress" for handler in logger.handlers):  # added once
        handler = logging.StreamHandler(stream)
        handler.set_name("show_progress")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
