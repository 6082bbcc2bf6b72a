"""What a server sends back: one :class:`Answer` per request.

The routes build answers; the handler (``server.py``) writes them. Keeping
the two apart lets a fault reshape any answer (cut it, pace it, corrupt it)
without knowing which route made it.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Optional, Protocol

__all__ = ["Answer", "PacedWriter", "Stopping", "empty_answer", "json_answer", "raw_answer"]


class Stopping(Exception):
    """The simulator is stopping: abandon the answer being written."""


@dataclass
class Answer:
    """An HTTP answer, written by the handler.

    :ivar status: the status code.
    :ivar content_type: the ``Content-Type``; ``None`` for none.
    :ivar body: the body, as an iterable of chunks (may be lazy, even endless).
    :ivar length: the body's length when known; sent as ``Content-Length``
        unless ``close_delimited``. ``None``: the body ends when the
        connection closes.
    :ivar close_delimited: send no ``Content-Length`` even though it is known.
    :ivar headers: further headers.
    :ivar rate: bytes per second for the whole answer, status line included.
    :ivar stall: after the body, say nothing for this many seconds, then close.
    :ivar close: close the connection after the body.
    :ivar silence: no answer at all: wait this many seconds, then reset the
        connection (0: reset at once).
    """

    status: int
    content_type: Optional[str] = "application/json"
    body: Iterable[bytes] = ()
    length: Optional[int] = None
    close_delimited: bool = False
    headers: Dict[str, str] = field(default_factory=dict)
    rate: Optional[float] = None
    stall: Optional[float] = None
    close: bool = False
    silence: Optional[float] = None


def raw_answer(
    status: int, data: bytes, content_type: Optional[str] = "application/json", headers: Optional[Dict[str, str]] = None
) -> Answer:
    return Answer(status, content_type, [data], len(data), headers=dict(headers or {}))


def json_answer(status: int, payload: Any, headers: Optional[Dict[str, str]] = None) -> Answer:
    return raw_answer(status, json.dumps(payload, ensure_ascii=False).encode("utf-8"), headers=headers)


def empty_answer(status: int, headers: Optional[Dict[str, str]] = None) -> Answer:
    return Answer(status, None, (), 0, headers=dict(headers or {}))


class _Sink(Protocol):
    def write(self, data: Any, /) -> Any: ...
    def flush(self) -> Any: ...


class PacedWriter:
    """Writes to ``raw`` at ``rate`` bytes per second.

    Each piece waits until ``start + sent / rate`` by the clock, so the
    errors of individual sleeps never add up: 40 MB at 20 MB/s take 2 s.
    """

    def __init__(self, raw: _Sink, rate: float, stopping: threading.Event) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, not {rate!r}")
        self.raw = raw
        self.rate = rate
        self.stopping = stopping
        self.piece = max(1, min(64 * 1024, int(rate / 50)))
        self.started = time.monotonic()
        self.sent = 0

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        for offset in range(0, len(view), self.piece):
            delay = self.started + self.sent / self.rate - time.monotonic()
            if delay > 0 and self.stopping.wait(delay):
                raise Stopping
            part = view[offset : offset + self.piece]
            self.raw.write(part)
            self.sent += len(part)
        return len(data)

    def flush(self) -> None:
        self.raw.flush()

    @property
    def closed(self) -> bool:
        return bool(getattr(self.raw, "closed", False))

    def close(self) -> None:
        close = getattr(self.raw, "close", None)
        if close is not None:
            close()
