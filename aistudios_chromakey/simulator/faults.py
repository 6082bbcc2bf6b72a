"""Scripted misbehaviour: :class:`Fault`, the faults waiting for each route,
and the answers they give: some instead of the route (the service never sees
the request), others the route's own answer, reshaped on its way out."""

from __future__ import annotations

import threading
import zlib
from collections import deque
from dataclasses import dataclass, field, replace
from itertools import chain, repeat
from typing import Deque, Dict, Iterable, Iterator, Optional

from .answer import Answer, json_answer, raw_answer

ROUTES = ("export", "progress", "download", "token", "model", "dropdown", "projects")
#: Kinds that answer instead of the route, on any route.
REPLACING = frozenset({"status", "html502", "reset", "hang", "huge", "endless"})
#: The kinds for one route only; the others apply to any route.
_ONE_ROUTE = {
    "redirect": "download",
    "gzip": "download",
    "corrupt": "download",
    "accept_then_status": "export",
    "echo_key": "progress",
}
KINDS = REPLACING | {"trickle", "truncate", "stall"} | set(_ONE_ROUTE)
#: Bytes per second of an endless body: it never ends, but fills no disk in a test's time.
ENDLESS_RATE = 1024 * 1024.0

HTML_502 = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    b"</center><hr><center>nginx</center></body></html>\n"
)
_UPSTREAM_RESET = b"upstream connect error or disconnect/reset before headers. reset reason: connection termination"


@dataclass
class Fault:
    """One kind of misbehaviour for the next ``times`` requests of a route.

    Kinds that answer instead of the route (on any route):

    - ``"status"``: answer ``status`` with ``body`` (default: a refusal in
      the route's error shape), ``content_type``, ``retry_after``, ``headers``.
    - ``"html502"``: nginx's 502 page.
    - ``"reset"``: close the connection without an answer (a TCP reset).
    - ``"hang"``: say nothing for ``seconds``, then reset.
    - ``"huge"``: an HTML page of ``size`` bytes (default 8 MiB) with status
      ``status`` and a ``Content-Length``, generated as it is sent.
    - ``"endless"``: HTTP 200 without ``Content-Length`` whose body never
      ends: on API routes ``{"success": true, "data": {"progress": 1``
      and spaces; on download an ``video/mp4`` body, the clip and filler.
      It flows at :data:`ENDLESS_RATE` until the client leaves or the
      simulator stops.

    Kinds that reshape the route's own answer:

    - ``"trickle"``: send the whole answer (status line, headers, body) at
      ``rate`` bytes per second.
    - ``"truncate"``: send ``fraction`` of the body, then close.
    - ``"stall"``: send ``fraction`` of the body, go silent for ``seconds``,
      then close.
    - ``"redirect"`` (download): 302 to the same file by another path, or on
      the mirror host with ``other_host``.
    - ``"gzip"`` (download): ``Content-Encoding: gzip``, no
      ``Content-Length``; with ``size``, a gzip bomb instead of the video:
      ``size`` bytes of zeros, compressed as they are sent.
    - ``"corrupt"`` (download): one byte in the middle of the body flipped,
      headers and checksums as for the true bytes.
    - ``"accept_then_status"`` (export): the service takes the job (the
      project exists and is listed in ``Simulator.exports``), then the answer
      is ``status`` (e.g. 503, as a proxy whose upstream reset), with
      ``body``, or an HTML page when ``content_type`` is ``"text/html"``,
      else the text of Envoy's "upstream reset".
    - ``"echo_key"`` (progress): the ``Authorization`` value received is
      quoted back, with status ``status``: in ``msg``, as ``progress`` and in
      the address field; with ``content_type="text/html"`` and a status of
      400 or more, in an HTML page, after its first 200 bytes.
    """

    kind: str
    times: int = 1
    status: int = 500
    body: Optional[bytes] = None
    content_type: str = "application/json"
    retry_after: Optional[str] = None
    fraction: float = 0.5
    seconds: float = 30.0
    other_host: bool = False
    headers: Dict[str, str] = field(default_factory=dict)
    rate: float = 1.0
    size: Optional[int] = None


class FaultBook:
    """The faults waiting for each route."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: Dict[str, Deque[Fault]] = {route: deque() for route in ROUTES}

    def add(self, route: str, fault: Fault) -> None:
        if route not in self._queues:
            raise ValueError(f"route must be one of {list(ROUTES)}, not {route!r}")
        if fault.kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, not {fault.kind!r}")
        if _ONE_ROUTE.get(fault.kind, route) != route:
            raise ValueError(f"a {fault.kind!r} fault applies to {[_ONE_ROUTE[fault.kind]]}, not {route!r}")
        with self._lock:
            self._queues[route].append(fault)

    def take(self, route: str) -> Optional[Fault]:
        """The fault for this request of ``route``, if any (O(1))."""
        with self._lock:
            queue = self._queues.get(route)
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.popleft()
            return replace(fault)


def replacement(fault: Fault, route: str, refusal: bytes, clip: bytes) -> Answer:
    """The answer of a :data:`REPLACING` fault; ``refusal`` is the default
    body of a ``"status"`` fault (a refusal in the route's error shape)."""
    if fault.kind == "reset":
        return Answer(0, silence=0.0)
    if fault.kind == "hang":
        return Answer(0, silence=fault.seconds)
    if fault.kind == "html502":
        return raw_answer(502, HTML_502, "text/html")
    if fault.kind == "huge":
        size = 8 * 1024 * 1024 if fault.size is None else fault.size
        head = b"<!DOCTYPE html><html><head><title>Error</title></head><body>\n"
        block = b"<p>The service is temporarily unavailable. Please try again later.</p>\n" * 900
        return Answer(fault.status, "text/html", _first(chain([head], repeat(block)), size), size)
    if fault.kind == "endless":
        if route == "download":
            return Answer(200, "video/mp4", chain([clip], repeat(b"\0" * 4096)), rate=ENDLESS_RATE)
        start = b'{"success": true, "data": {"progress": 1'
        return Answer(200, "application/json", chain([start], repeat(b" " * 4096)), rate=ENDLESS_RATE)
    headers = dict(fault.headers)
    if fault.retry_after:
        headers["Retry-After"] = fault.retry_after
    body = refusal if fault.body is None else fault.body
    return raw_answer(fault.status, body, fault.content_type, headers)


def echo_key(fault: Fault, credential: str, address_field: str, storage_url: str) -> Answer:
    """An answer that quotes the credential back (a service that echoes it)."""
    if fault.status >= 400 and fault.content_type == "text/html":
        padding = "<!-- " + "-" * 240 + " -->\n"
        page = f"<html><head><title>Error</title></head><body>{padding}<p>invalid token: {credential}</p></body></html>"
        return raw_answer(fault.status, page.encode("utf-8"), "text/html", fault.headers)
    payload = {
        "success": fault.status < 400,
        "msg": f"invalid token: {credential}",
        "data": {"progress": credential, address_field: f"{storage_url}/v/echo.mp4?token={credential}"},
    }
    return json_answer(fault.status, payload, fault.headers)


def reshape(fault: Fault, answer: Answer) -> Answer:
    """The route's ``answer`` as a reshaping fault sends it."""
    if fault.kind == "accept_then_status":  # the service took the job; then this
        if fault.body is not None:
            return raw_answer(fault.status, fault.body, fault.content_type, fault.headers)
        if fault.content_type == "text/html":
            page = f"<html><head><title>{fault.status}</title></head><body><h1>{fault.status}</h1></body></html>\n"
            return raw_answer(fault.status, page.encode(), "text/html", fault.headers)
        return raw_answer(fault.status, _UPSTREAM_RESET, "text/plain", fault.headers)
    if fault.kind == "trickle":
        return replace(answer, rate=fault.rate)
    if fault.kind in ("truncate", "stall") and answer.length is not None:
        cut = int(answer.length * fault.fraction)
        body = _first(answer.body, cut)
        stall = fault.seconds if fault.kind == "stall" else None
        return replace(answer, body=body, stall=stall, close=True)
    if fault.kind == "corrupt" and answer.length:
        return replace(answer, body=_flipped(answer.body, answer.length // 2))
    if fault.kind == "gzip":
        headers = {k: v for k, v in answer.headers.items() if k not in ("Content-MD5", "x-amz-checksum-sha256")}
        headers["Content-Encoding"] = "gzip"
        source = answer.body if fault.size is None else _first(repeat(bytes(1024 * 1024)), fault.size)
        return replace(answer, body=_gzip(source), length=None, headers=headers)
    return answer


def _first(chunks: Iterable[bytes], count: int) -> Iterator[bytes]:
    for chunk in chunks:
        if count <= 0:
            return
        yield chunk[:count]
        count -= len(chunk)


def _flipped(chunks: Iterable[bytes], at: int) -> Iterator[bytes]:
    position = 0
    for chunk in chunks:
        if position <= at < position + len(chunk):
            data = bytearray(chunk)
            data[at - position] ^= 0xFF
            chunk = bytes(data)
        yield chunk
        position += len(chunk)


def _gzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    for chunk in chunks:
        packed = packer.compress(chunk)
        if packed:
            yield packed
    yield packer.flush()
