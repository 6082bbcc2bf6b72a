"""What a server sends back: one :class:`Answer` per request, built by the
routes and written by the handler, so that a fault can reshape any answer
without knowing which route made it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Optional


@dataclass
class Answer:
    """An HTTP answer.

    ``body`` is an iterable of chunks (may be lazy, even endless); ``length``,
    when known, is sent as ``Content-Length`` unless ``close_delimited``.
    ``rate`` paces the whole answer (bytes per second, status line included).
    ``close`` closes the connection after the body, ``stall`` too after that
    many seconds of silence; ``silence`` means no answer at all: wait that
    many seconds, then reset the connection.
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
