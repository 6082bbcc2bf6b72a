"""HTTP over real sockets: a threading server per host, and the handler that
reads a request, records it, asks the router, and writes the answer
(paced, cut, stalled or reset as the answer says)."""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Set, Tuple, cast
from urllib.parse import urlsplit

from .answer import Answer, PacedWriter, Stopping
from .records import RecordedRequest, Recorder
from .routes import Request, Router, route_of

__all__ = ["LOGGER", "Handler", "Server"]

#: Every request served is logged here at DEBUG: server, method, path (no
#: query), status. Never a header value.
LOGGER = logging.getLogger("aistudios_chromakey.simulator")

_GONE = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, Stopping)


class Server(ThreadingHTTPServer):
    """One host (``"api"``, ``"download"``, ``"mirror"`` or ``"old"``)."""

    daemon_threads = True
    request_queue_size = 1024  # hundreds of clients may connect at once

    def __init__(
        self,
        address: Tuple[str, int],
        name: str,
        router: Router,
        recorder: Recorder,
        stopping: threading.Event,
        clock: Callable[[], float],
    ) -> None:
        super().__init__(address, Handler)
        self.name = name
        self.router = router
        self.recorder = recorder
        self.stopping = stopping
        self.clock = clock
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
        self._log(str(getattr(code, "value", code)))

    def _log(self, outcome: str) -> None:
        if LOGGER.isEnabledFor(logging.DEBUG):
            LOGGER.debug("%s %s %s %s", self.server.name, self.command, urlsplit(self.path).path, outcome)

    def handle_one_request(self) -> None:
        self.wfile = self._socket_writer  # pacing belongs to one answer, never the next
        try:
            super().handle_one_request()
        except _GONE:
            self.close_connection = True  # the client went away, or we are stopping
        except OSError:
            self.close_connection = True  # the connection was shut at stop

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Request(self.server.name, self.command, self.path, self.headers, body)
        route = route_of(request.server, request.method, request.path)
        self.server.recorder.record(
            RecordedRequest(
                server=request.server,
                method=request.method,
                path=request.target,
                headers=dict(self.headers.items()),
                body=body,
                time=self.server.clock(),
                client=cast(Tuple[str, int], tuple(self.client_address[:2])),
                route=route,
            )
        )
        self._write(self.server.router.answer(request, route))

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def do_HEAD(self) -> None:
        self._serve()

    def _write(self, answer: Answer) -> None:
        if answer.silence is not None:
            if answer.silence > 0:
                self.server.stopping.wait(answer.silence)
            self._log("reset")
            self._reset()
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

    def _reset(self) -> None:
        """Drop the connection without an answer (a TCP reset)."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
