"""A local simulator of the AI STUDIOS service, for tests and demos.

Standard library only. It speaks both documented flows over real HTTP on
loopback: the legacy one of the tutorial (``POST /api/odin/simple/video``,
``GET /api/odin/editor/progress/<key>``, the address in ``data.url`` or
``data.videoUrl``) and V3 (``data.projectId``, ``data.downloadUrl``). The
finished videos are served by a second server, standing for the storage host,
as real, playable MP4 chroma-key clips, each made distinct by its project key.

Usage::

    from aistudios_chromakey import export_chromakeys
    from aistudios_chromakey.simulator import Simulator

    with Simulator() as sim:
        paths = export_chromakeys(jobs, sim.token, base_url=sim.base_url,
                                  poll_interval=0.2)
        assert paths[0].read_bytes() == sim.video(sim.exports[0].key)

Renders follow a :class:`RenderPlan` (how long they take, which field names
the address, whether they fail...); :meth:`Simulator.plan` scripts the next
ones. :meth:`Simulator.fault` makes the next requests of a route misbehave
(an HTTP error, a reset connection, a cut-off or stalled body, a redirect).
Everything the servers saw is in :attr:`Simulator.log`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import posixpath
import re
import secrets
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Deque, Dict, Iterator, List, Optional, Tuple
from urllib.parse import parse_qsl, urlsplit

__all__ = ["Export", "Fault", "RecordedRequest", "RenderPlan", "Simulator"]

#: The API key the simulator accepts unless told otherwise.
DEFAULT_TOKEN = "sim-key"

_EXPORT_PATHS = {"/api/odin/simple/video": "legacy", "/api/odin/v3/simple/video": "v3"}
_PROGRESS_PREFIXES = {"/api/odin/editor/progress/": "legacy", "/api/odin/v3/editor/progress/": "v3"}
_REQUIRED = ("language", "text", "model", "clothes")
_MODEL_ID = re.compile(r"^M\d{9}$")
_CLOTHES_ID = re.compile(r"^BG\d{8}$")
_CATALOGUE = [
    {
        "id": "M000004017",
        "label": {"ko": "사라", "en": "Sarah"},
        "thumbnail": "",
        "clothes": [
            {"id": "BG00006160", "label": {"ko": "정장", "en": "Suit"}, "thumbnail": ""},
            {"id": "BG00001004", "label": {"ko": "캐주얼", "en": "Casual"}, "thumbnail": ""},
        ],
    }
]
_HTML_502 = (
    b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
    b"</center><hr><center>nginx</center></body></html>\n"
)


@dataclass
class RenderPlan:
    """How the simulator renders one export.

    :ivar seconds: how long the render takes; progress rises linearly.
    :ivar address_after_polls: polls at 100 % that still show no address
        (the tutorial keeps polling through them); ``None``: never any.
    :ivar url_field: the field naming the address; ``None`` for the flow's
        own (``url`` on legacy, ``downloadUrl`` on V3).
    :ivar progress_as_string: send progress as ``"42.0"`` rather than ``42.0``.
    :ivar fail_at: progress at which the render fails (``success: false``).
    :ivar finish: ``False`` for a render stuck below 100 forever.
    :ivar filename: the last segment of the address's path, as sent (already
        percent-encoded where needed); default ``<key>.mp4``.
    :ivar size: the video's size in bytes; default the clip plus a little.
    :ivar reject: refuse the export with this message (``success: false``).
    :ivar curve: how progress rises: ``"linear"``, ``"slow-start"`` (slow,
        then fast) or ``"uneven"`` (a leap, a long crawl, a final rush).
    :ivar link_ttl: seconds a signed video address stays valid; each progress
        answer signs a fresh one. ``None``: plain, unsigned addresses.
    """

    seconds: float = 1.0
    address_after_polls: Optional[int] = 0
    url_field: Optional[str] = None
    progress_as_string: bool = False
    fail_at: Optional[float] = None
    finish: bool = True
    filename: Optional[str] = None
    size: Optional[int] = None
    reject: Optional[str] = None
    curve: str = "linear"
    link_ttl: Optional[float] = None


_CURVES = {
    "linear": lambda x: x,
    "slow-start": lambda x: x * x,
    # Through (0, 0), (0.2, 0.6), (0.8, 0.9), (1, 1).
    "uneven": lambda x: 3 * x if x < 0.2 else 0.6 + (x - 0.2) * 0.5 if x < 0.8 else 0.9 + (x - 0.8) * 0.5,
}


@dataclass
class Fault:
    """One kind of misbehaviour for the next ``times`` requests of a route.

    :ivar kind: ``"status"`` (answer ``status`` with ``body``), ``"html502"``,
        ``"reset"`` (close the connection without an answer), ``"truncate"``
        (send ``fraction`` of a download, then close), ``"stall"`` (send
        ``fraction``, then go silent for ``seconds``), ``"hang"`` (say
        nothing for ``seconds``, then reset), ``"redirect"`` (302 to
        the same file at another path, or on the mirror host with
        ``other_host``).
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


@dataclass(frozen=True)
class RecordedRequest:
    """A request one of the simulator's servers received."""

    server: str  # "api", "download" or "mirror"
    method: str
    path: str
    headers: Dict[str, str]
    body: bytes
    time: float  # time.monotonic() on arrival
    client: Tuple[str, int]

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


@dataclass(frozen=True)
class Export:
    """An export the simulator accepted."""

    key: str
    api: str
    body: Dict[str, Any]
    accepted: float = 0.0  # time.monotonic() when accepted
    render_seconds: float = 0.0  # as planned; the render ends at accepted + render_seconds


@dataclass
class _Project:
    key: str
    api: str
    body: Dict[str, Any]
    plan: RenderPlan
    created: float
    polls_at_100: int = 0


class _Video:
    """A project's video: the shipped clip followed by an MP4 ``free`` box
    that carries the project key, padded to the planned size. Players skip
    ``free`` boxes, so every file plays; each is distinct by its key. Ranges
    are generated on demand, so a 1 GiB video costs no memory."""

    def __init__(self, clip: bytes, key: str, size: Optional[int]):
        note = f"aistudios-chromakey simulator: project {key}\n".encode()
        box_size = max(8 + len(note), (size or 0) - len(clip))
        self.head = clip + struct.pack(">I", box_size) + b"free" + note
        self.size = len(clip) + box_size
        self.filler = hashlib.sha256(key.encode()).digest() * 2048  # 64 KiB
        self.etag = '"' + hashlib.sha256(self.head).hexdigest()[:16] + f"-{self.size}" + '"'

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive), in chunks."""
        position = start
        while position < end:
            if position < len(self.head):
                chunk = self.head[position : min(end, len(self.head))]
            else:
                offset = (position - len(self.head)) % len(self.filler)
                chunk = self.filler[offset : offset + min(end - position, len(self.filler) - offset)]
            yield chunk
            position += len(chunk)

    def read(self) -> bytes:
        return b"".join(self.chunks(0, self.size))


def _clip() -> bytes:
    return resources.files("aistudios_chromakey").joinpath("data/chromakey.mp4").read_bytes()


class Simulator:
    """The service (API host) and its storage (download host) on loopback.

    :param token: the API key it accepts.
    :param render_seconds: how long each render takes by default.
    :param url_field: the legacy flow's address field, ``"url"`` (the
        tutorial's) or ``"videoUrl"`` (the reference page's).
    :param host: the loopback address to listen on.
    :param port: the API server's port (0: any free one).
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        render_seconds: float = 1.0,
        url_field: str = "url",
        host: str = "127.0.0.1",
        port: int = 0,
    ):
        self.token = token
        self.default_plan = RenderPlan(seconds=render_seconds, url_field=url_field)
        self.log: List[RecordedRequest] = []
        #: Whether the download host honours ``Range`` (set False for one that ignores it).
        self.ranges = True
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._plans: Deque[RenderPlan] = deque()
        self._faults: Dict[str, Deque[Fault]] = {"export": deque(), "progress": deque(), "download": deque()}
        self._projects: Dict[str, _Project] = {}
        self._exports: List[Export] = []
        self._videos: Dict[str, _Video] = {}
        self._clip = _clip()
        self._signing_key = secrets.token_bytes(16)
        self._servers: Dict[str, ThreadingHTTPServer] = {}
        self._threads: List[threading.Thread] = []
        self._stopping = threading.Event()

    # --- life cycle ---------------------------------------------------------

    def start(self) -> Simulator:
        for name, port in (("api", self._port), ("download", 0), ("mirror", 0)):
            server = _Server((self._host, port), _Handler)
            server.simulator = self
            server.name = name
            self._servers[name] = server
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._stopping.set()
        # Shut the servers down side by side: each takes up to a poll interval.
        stoppers = [threading.Thread(target=server.shutdown) for server in self._servers.values()]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        for server in self._servers.values():
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _url(self, server: str) -> str:
        return f"http://{self._host}:{self._servers[server].server_address[1]}"

    @property
    def base_url(self) -> str:
        """The API host, for ``base_url=``."""
        return self._url("api")

    @property
    def download_url(self) -> str:
        """The download (storage) host."""
        return self._url("download")

    # --- scripting ----------------------------------------------------------

    def plan(self, *plans: RenderPlan, **changes: Any) -> None:
        """Script the next exports: each plan is used by one export, in order.
        Keyword arguments instead change the default plan of all later ones."""
        with self._lock:
            self._plans.extend(plans)
            if changes:
                self.default_plan = replace(self.default_plan, **changes)

    def fault(self, route: str, kind: str, times: int = 1, **options: Any) -> None:
        """Make the next ``times`` requests to ``route`` (``"export"``,
        ``"progress"`` or ``"download"``) misbehave; see :class:`Fault`."""
        if route not in self._faults:
            raise ValueError(f"route must be one of {sorted(self._faults)}, not {route!r}")
        with self._lock:
            self._faults[route].append(Fault(kind, times, **options))

    def _take_fault(self, route: str) -> Optional[Fault]:
        with self._lock:
            queue = self._faults[route]
            if not queue:
                return None
            fault = queue[0]
            fault.times -= 1
            if fault.times <= 0:
                queue.popleft()
            return fault

    # --- what it saw ----------------------------------------------------------

    @property
    def exports(self) -> List[Export]:
        """The exports it accepted, in order."""
        with self._lock:
            return list(self._exports)

    def requests(self, server: Optional[str] = None, path_prefix: str = "") -> List[RecordedRequest]:
        """Recorded requests, optionally of one server and path prefix."""
        with self._lock:
            return [r for r in self.log if (server is None or r.server == server) and r.path.startswith(path_prefix)]

    def polls(self, key: Optional[str] = None) -> List[RecordedRequest]:
        """Progress requests, optionally for one project key."""
        return [
            r
            for r in self.requests("api")
            if any(r.path.startswith(prefix) for prefix in _PROGRESS_PREFIXES)
            and (key is None or r.path.rsplit("/", 1)[-1] == key)
        ]

    def max_in_flight(self) -> int:
        """The most renders that were running on the service at one moment
        (from the export's acceptance to the render's end)."""
        with self._lock:
            edges = []
            for project in self._projects.values():
                plan = project.plan
                share = 1.0 if plan.fail_at is None else plan.fail_at / 100
                end = project.created + plan.seconds * share if plan.finish else float("inf")
                edges += [(project.created, 1), (end, -1)]
        running = peak = 0
        for _, step in sorted(edges, key=lambda edge: (edge[0], edge[1])):
            running += step
            peak = max(peak, running)
        return peak

    def video(self, key: str) -> bytes:
        """The exact bytes the download host serves for a project."""
        return self._video(key).read()

    def _video(self, key: str) -> _Video:
        with self._lock:
            if key not in self._videos:
                self._videos[key] = _Video(self._clip, key, self._projects[key].plan.size)
            return self._videos[key]

    # --- the service's logic ------------------------------------------------------

    def _record(self, server: str, handler: _Handler, body: bytes) -> None:
        entry = RecordedRequest(
            server=server,
            method=handler.command,
            path=handler.path,
            headers={k: v for k, v in handler.headers.items()},
            body=body,
            time=time.monotonic(),
            client=handler.client_address[:2],
        )
        with self._lock:
            self.log.append(entry)

    def _export(self, api: str, payload: Any) -> Tuple[int, Dict[str, Any]]:
        if not isinstance(payload, dict):
            return 200, {"success": False, "msg": "request body must be a JSON object"}
        for name in _REQUIRED:
            if not isinstance(payload.get(name), str) or not payload[name].strip():
                return 200, {"success": False, "msg": f"{name} is required"}
        if not _MODEL_ID.match(payload["model"]):
            return 200, {"success": False, "msg": f"model not found: {payload['model']}"}
        if not _CLOTHES_ID.match(payload["clothes"]):
            return 200, {"success": False, "msg": f"clothes not found: {payload['clothes']}"}
        with self._lock:
            plan = self._plans.popleft() if self._plans else self.default_plan
            if plan.reject:
                return 200, {"success": False, "msg": plan.reject}
            key = secrets.token_hex(12)
            now = time.monotonic()
            self._projects[key] = _Project(key, api, dict(payload), plan, now)
            self._exports.append(Export(key, api, dict(payload), now, plan.seconds))
        return 200, {"success": True, "data": ({"key": key} if api == "legacy" else {"projectId": key})}

    def _progress(self, api: str, key: str) -> Tuple[int, Dict[str, Any]]:
        with self._lock:
            project = self._projects.get(key)
            if project is None or project.api != api:
                return 200, {"success": False, "msg": "project not found"}
            plan = project.plan
            elapsed = time.monotonic() - project.created
            if not plan.finish:
                progress = min(99.0, round(elapsed * 10, 1))
            elif plan.seconds <= 0 or elapsed >= plan.seconds:
                progress = 100.0
            else:
                progress = min(99.9, round(100 * _CURVES[plan.curve](elapsed / plan.seconds), 1))
            if plan.fail_at is not None and progress >= plan.fail_at:
                return 200, {"success": False, "msg": "render failed: the avatar could not be synthesised"}
            data: Dict[str, Any] = {"progress": str(progress) if plan.progress_as_string else progress}
            if progress >= 100:
                project.polls_at_100 += 1
                ready = plan.address_after_polls is not None and project.polls_at_100 > plan.address_after_polls
                if ready:
                    field_name = plan.url_field if api == "legacy" and plan.url_field else None
                    field_name = field_name or ("url" if api == "legacy" else "downloadUrl")
                    data[field_name] = self._address(project)
        return 200, {"success": True, "data": data}

    def _address(self, project: _Project) -> str:
        name = project.plan.filename if project.plan.filename is not None else f"{project.key}.mp4"
        address = f"{self._url('download')}/v/{project.key}/{name}"
        if project.plan.link_ttl is None:
            return address
        expires = f"{time.time() + project.plan.link_ttl:.3f}"
        return f"{address}?expires={expires}&signature={self._sign(project.key, expires)}"

    def _sign(self, key: str, expires: str) -> str:
        return hmac.new(self._signing_key, f"{key}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def _link_refused(self, key: str, query: str) -> Optional[str]:
        """Why a signed address is refused, or None when it is good (or the
        project's addresses are not signed)."""
        if self._projects[key].plan.link_ttl is None:
            return None
        fields = dict(parse_qsl(query))
        expires, signature = fields.get("expires", ""), fields.get("signature", "")
        if not hmac.compare_digest(signature, self._sign(key, expires)):
            return "SignatureDoesNotMatch"
        if float(expires) < time.time():
            return "Request has expired"
        return None

    def _video_for_path(self, path: str) -> Optional[Tuple[str, _Video]]:
        parts = posixpath.normpath(urlsplit(path).path).split("/")
        if len(parts) < 3 or parts[1] != "v" or parts[2] not in self._projects:
            return None
        return parts[2], self._video(parts[2])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    simulator: Simulator
    name: str


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    server_version = "aistudios-simulator/1"

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without this, Nagle's
        # algorithm and the client's delayed ACK add 40 ms to every answer.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the record in Simulator.log replaces the console log

    @property
    def sim(self) -> Simulator:
        return self.server.simulator

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(
        self,
        status: int,
        payload: Any = None,
        *,
        raw: Optional[bytes] = None,
        content_type: str = "application/json",
        headers: Optional[Dict[str, str]] = None,
    ) -> None:
        data = raw if raw is not None else json.dumps(payload, ensure_ascii=False).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _reset(self) -> None:
        """Drop the connection without an answer (a TCP reset)."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def _apply_fault(self, route: str) -> bool:
        """Answer with the next fault of ``route``, if any; True if it did."""
        fault = self.sim._take_fault(route)
        if fault is None or fault.kind in ("truncate", "stall", "redirect"):
            if fault is not None:
                self._fault = fault
            return False
        if fault.kind == "reset":
            self._reset()
        elif fault.kind == "hang":
            self.sim._stopping.wait(fault.seconds)
            self._reset()
        elif fault.kind == "html502":
            self._send(502, raw=_HTML_502, content_type="text/html")
        else:
            headers = dict(fault.headers)
            if fault.retry_after:
                headers["Retry-After"] = fault.retry_after
            body = (
                fault.body
                if fault.body is not None
                else json.dumps({"success": False, "msg": f"simulated HTTP {fault.status}"}).encode()
            )
            self._send(fault.status, raw=body, content_type=fault.content_type, headers=headers)
        return True

    _fault: Optional[Fault] = None

    def handle_one_request(self) -> None:
        self._fault = None  # a download fault belongs to one request, never the next on this connection
        try:
            super().handle_one_request()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away; nothing to tell it

    def do_POST(self) -> None:
        body = self._body()
        self.sim._record(self.server.name, self, body)
        path = urlsplit(self.path).path
        if self.server.name != "api" or path not in _EXPORT_PATHS:
            self._send(404, {"success": False, "msg": "not found"})
            return
        if not self._authorised() or self._apply_fault("export"):
            return
        try:
            payload = json.loads(body.decode("utf-8"))
        except ValueError:
            self._send(400, {"success": False, "msg": "request body is not JSON"})
            return
        self._send(*self.sim._export(_EXPORT_PATHS[path], payload))

    def do_GET(self) -> None:
        self.sim._record(self.server.name, self, b"")
        if self.server.name != "api":
            self._download()
            return
        path = urlsplit(self.path).path
        if path == "/api/odin/v3/auth":
            self._send(200, {"isAuthenticated": self.headers.get("Authorization") == self.sim.token})
            return
        if not self._authorised():
            return
        if path == "/api/odin/v3/model":
            self._send(200, {"success": True, "data": {"models": _CATALOGUE}})
            return
        for prefix, api in _PROGRESS_PREFIXES.items():
            if path.startswith(prefix):
                if not self._apply_fault("progress"):
                    self._send(*self.sim._progress(api, path[len(prefix) :]))
                return
        self._send(404, {"success": False, "msg": "not found"})

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == self.sim.token:
            return True
        self._send(401, {"success": False, "msg": "Unauthorized: invalid API key"})
        return False

    def _download(self) -> None:
        if self._apply_fault("download"):
            return
        found = self.sim._video_for_path(self.path)
        if found is None:
            self._send(404, raw=b"<Error><Code>NoSuchKey</Code></Error>", content_type="application/xml")
            return
        key, video = found
        refused = self.sim._link_refused(key, urlsplit(self.path).query)
        if refused:
            body = f"<Error><Code>AccessDenied</Code><Message>{refused}</Message></Error>".encode()
            self._send(403, raw=body, content_type="application/xml")
            return
        fault, self._fault = self._fault, None
        if fault is not None and fault.kind == "redirect":
            base = self.sim._url("mirror") if fault.other_host else ""
            target = f"{base}/v/{key}/../{key}/{posixpath.basename(urlsplit(self.path).path)}"
            self.send_response(302)
            self.send_header("Location", target)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        start, end, status = 0, video.size, 200
        wanted = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", "").strip())
        if_range = self.headers.get("If-Range")
        if wanted and self.sim.ranges and (if_range is None or if_range == video.etag):
            start = int(wanted.group(1))
            end = min(video.size, int(wanted.group(2)) + 1) if wanted.group(2) else video.size
            if start >= video.size:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{video.size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", str(end - start))
        self.send_header("Accept-Ranges", "bytes" if self.sim.ranges else "none")
        self.send_header("ETag", video.etag)
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{video.size}")
        self.end_headers()
        cut = end
        if fault is not None and fault.kind in ("truncate", "stall"):
            cut = start + int((end - start) * fault.fraction)
        try:
            for chunk in video.chunks(start, cut):
                self.wfile.write(chunk)
            if cut < end and fault is not None:
                self.wfile.flush()
                if fault.kind == "stall":
                    self.sim._stopping.wait(fault.seconds)
                self.close_connection = True
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
