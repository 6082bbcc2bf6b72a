"""The exceptions the library raises: all derive from :class:`AIStudiosError`,
some also from a builtin (``ValueError``, ``TimeoutError``) that code knowing
nothing of this library catches. No message ever contains a credential.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence, Tuple


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
        lines = [f"{len(failures)} of {len(paths)} jobs failed:"]
        for position, error in failures:
            text = str(error)
            lines.append("  " + (text if text.startswith(f"job {position}") else f"job {position}: {text}"))
        super().__init__("\n".join(lines))
        self.failures = list(failures)
        self.paths = list(paths)
