"""What ``on_progress`` callbacks receive at each step of each job, and
:func:`show_progress` for those who would rather just see it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional, TextIO


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


class _ProgressHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler :func:`show_progress` adds (so that it adds it once)."""


def show_progress(stream: Optional[TextIO] = None) -> None:
    """See every job's progress, in a script or a notebook: the library's
    steps and each tenth of every render, one line each, on ``stream``
    (standard error by default). The library configures no logging of its
    own: calling this once, before the rest, is the one-word way to ask it to."""
    logger = logging.getLogger("aistudios_chromakey")
    if not any(isinstance(handler, _ProgressHandler) for handler in logger.handlers):
        handler = _ProgressHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
