"""The HTTP side: which route a request is for, the answer it gets (faults
included), what the servers saw, and a threading server per host whose
handler writes each answer (paced, cut, stalled or reset as it says)."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import socket
import struct
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Dict, List, Optional, Set, Tuple, cast
from urllib.parse import urlsplit

from .answer import Answer, empty_answer
from .faults import REPLACING, FaultBook, echo_key, replacement, reshape
from .service import Service
from .settings import Settings
from .storage import Storage

#: Every request served is logged here at DEBUG: server, method, path (no
#: query), status. Never a header value.
LOGGER = logging.getLogger("aistudios_chromakey.simulator")

_PROGRESS_PREFIXES = ("/api/odin/editor/progress/", "/api/odin/v3/editor/progress/")
_API_ROUTES = {
    ("POST", "/api/odin/simple/video"): "export",
    ("POST", "/api/odin/v3/simple/video"): "export",
    ("POST", "/api/odin/v3/auth/token"): "token",
    ("GET", "/api/odin/v3/auth"): "auth",
    ("GET", "/api/odin/v3/model"): "model",
    ("GET", "/api/odin/v3/dropdown/models"): "dropdown",
    ("GET", "/api/odin/v3/editor/project"): "projects",
}


def route_of(server: str, method: str, path: str) -> str:
    """The route name of a request (also the name faults are scripted by)."""
    if server != "api":
        return "moved" if server == "old" else "download"
    if method == "GET" and path.startswith(_PROGRESS_PREFIXES):
        return "progress"
    return _API_ROUTES.get((method, path), "other")


@dataclass(frozen=True)
class RecordedRequest:
    """A request one of the simulator's servers received."""

    server: str  # "api", "download", "mirror" or "old"
    method: str
    path: str  # as sent: path and query
    headers: Dict[str, str]
    body: bytes
    time: float  # time.monotonic() on arrival
    client: Tuple[str, int]
    route: str = ""  # "export", "progress", "download", "token", "model", "dropdown", "auth", "moved" or "other"

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class Recorder:
    """Keeps the log of every request, in order of arrival."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: List[RecordedRequest] = []

    def record(self, entry: RecordedRequest) -> None:
        with self.lock:
            self.log.append(entry)

    def select(self, server: Optional[str], path_prefix: str = "") -> List[RecordedRequest]:
        with self.lock:
            return [r for r in self.log if (server is None or r.server == server) and r.path.startswith(path_prefix)]

    def stats(self, window: float) -> Dict[str, Any]:
        """Requests per route, and the most polls that arrived within any
        ``window`` seconds (``peak_polls``)."""
        with self.lock:
            routes = dict(Counter(r.route for r in self.log))
            times = [r.time for r in self.log if r.route == "progress"]
        peak = first = 0
        for last, arrival in enumerate(times):  # arrivals are in order
            while arrival - times[first] > window:
                first += 1
            peak = max(peak, last - first + 1)
        return {"requests": sum(routes.values()), "routes": routes, "polls": len(times), "peak_polls": peak}


class Router:
    """Answers each request: the route's logic, reshaped by its fault."""

    def __init__(self, settings: Settings, service: Service, storage: Storage, faults: FaultBook) -> None:
        self.settings = settings
        self.service = service
        self.storage = storage
        self.faults = faults
        #: The API host's address, for the old host's redirects.
        self.api_url = ""

    def answer(self, route: str, target: str, headers: Message, body: bytes) -> Answer:
        if route == "moved":
            # The old host processes nothing: it only says where the service went.
            return empty_answer(self.settings.old_host_status, {"Location": self.api_url + target})
        api = "v3" if urlsplit(target).path.startswith("/api/odin/v3/") else "legacy"
        if route == "other":
            return self.service.refusal(api, "NOT_FOUND", "not found", 404)
        credential = headers.get("Authorization")
        if route == "auth":
            return self.service.is_authenticated(credential)
        if route in ("export", "progress", "model", "dropdown", "projects"):
            refused = self.service.authorise(api, credential)
            if refused is not None:
                return refused
        fault = self.faults.take(route)
        if fault is None:
            return self._serve(route, api, target, headers, body)
        if fault.kind in REPLACING:
            refusal = self.service.refusal(api, "SIMULATED", f"simulated HTTP {fault.status}").body
            return replacement(fault, route, b"".join(refusal), self.storage.clip)
        if fault.kind == "echo_key":
            field = self.service.address_field(api, self.service.default_plan)
            return echo_key(fault, credential or "", field, self.storage.url)
        if fault.kind == "redirect" and self.storage.key_of(target) is not None:
            return self.storage.redirect(target, fault.other_host)
        return reshape(fault, self._serve(route, api, target, headers, body))

    def _serve(self, route: str, api: str, target: str, headers: Message, body: bytes) -> Answer:
        if route == "download":
            return self.storage.answer(target, headers.get("Range", ""), headers.get("If-Range"))
        if route == "export":
            return self.service.export(api, body)
        if route == "token":
            return self.service.mint(body)
        if route == "projects":
            return self.service.project_list()
        if route in ("model", "dropdown"):
            return self.service.catalogue_answer("old" if route == "model" else "dropdown")
        return self.service.progress(api, urlsplit(target).path.split("/progress/", 1)[1])


class Stopping(Exception):
    """The simulator is stopping: abandon the answer being written."""


class PacedWriter:
    """Writes to ``raw`` at ``rate`` bytes per second.

    Each piece waits until ``start + sent / rate`` by the clock, so the
    errors of individual sleeps never add up: 40 MB at 20 MB/s take 2 s.
    """

    def __init__(self, raw: io.BufferedIOBase, rate: float, stopping: threading.Event) -> None:
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


class Server(ThreadingHTTPServer):
    """One host (``"api"``, ``"download"``, ``"mirror"`` or ``"old"``)."""

    daemon_threads = True
    request_queue_size = 1024  # hundreds of clients may connect at once

    def __init__(
        self, address: Tuple[str, int], name: str, router: Router, recorder: Recorder, stopping: threading.Event
    ) -> None:
        super().__init__(address, Handler)
        self.name = name
        self.router = router
        self.recorder = recorder
        self.stopping = stopping
        self._connections: Set[socket.socket] = set()
        self._connections_lock = threading.Lock()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Shut every open connection, waking handlers blocked on a slow client."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "aistudios-simulator/1"
    server: Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's
        # algorithm and the client's delayed ACK add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._socket_writer = self.wfile

    def log_message(self, format: str, *args: Any) -> None:
        pass  # Simulator.log and LOGGER replace the console log

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        if LOGGER.isEnabledFor(logging.DEBUG):
            path = urlsplit(self.path).path
            LOGGER.debug("%s %s %s %s", self.server.name, self.command, path, getattr(code, "value", code))

    def handle_one_request(self) -> None:
        try:
            super().handle_one_request()
        except (OSError, Stopping):
            self.close_connection = True  # the client went away, or we are stopping
        finally:
            self.wfile = self._socket_writer  # pacing belongs to one answer, never the next

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        route = route_of(self.server.name, self.command, urlsplit(self.path).path)
        client = cast(Tuple[str, int], tuple(self.client_address[:2]))
        headers = dict(self.headers.items())
        entry = RecordedRequest(
            self.server.name, self.command, self.path, headers, body, time.monotonic(), client, route
        )
        self.server.recorder.record(entry)
        self._write(self.server.router.answer(route, self.path, self.headers, body))

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve  # noqa: N815 (the names http.server calls)

    def _write(self, answer: Answer) -> None:
        if answer.silence is not None:  # no answer: wait, then reset the connection
            self.server.stopping.wait(answer.silence)
            self.log_request("reset")
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.connection.close()
            return
        if answer.rate is not None:
            paced = PacedWriter(self._socket_writer, answer.rate, self.server.stopping)
            self.wfile = cast(io.BufferedIOBase, paced)
        self.send_response(answer.status)
        if answer.content_type is not None:
            self.send_header("Content-Type", answer.content_type)
        if answer.length is not None and not answer.close_delimited:
            self.send_header("Content-Length", str(answer.length))
        else:
            self.send_header("Connection", "close")  # the body ends when the connection does
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            for chunk in answer.body:
                self.wfile.write(chunk)
        if answer.stall is not None:
            self.wfile.flush()
            self.server.stopping.wait(answer.stall)
        if answer.close or answer.stall is not None:
            self.close_connection = True
