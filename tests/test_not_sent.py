"""An export is "not sent" only when that is proven: everything that may have
reached the service is uncertain, recorded, and never sent again. Proven
over real sockets: a forwarding proxy that resets once the service took the
export, a TLS front that writes a plaintext 502 into the stream after the
request, answers too large to read, 303 See Other."""

from __future__ import annotations

import contextlib
import shutil
import socket
import ssl
import struct
import subprocess
import threading
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest
import requests

from aistudios_chromakey import (
    BatchError,
    ExportUncertain,
    ServiceError,
    export_chromakeys,
    request_export,
)
from aistudios_chromakey.simulator import Simulator

from .conftest import SECRET

JOB = {"language": "ko", "text": "안녕하세요", "model": "M000004017", "clothes": "BG00006160"}


def _read_request(sock: socket.socket) -> bytes:
    """One whole HTTP request (headers and a Content-Length body)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        body += sock.recv(65536)
    return head + b"\r\n\r\n" + body


def _forward(request: bytes, sim: Simulator) -> bytes:
    """Send ``request`` to the simulator (origin form) and return the start of its answer."""
    line, _, rest = request.partition(b"\r\n")
    method, target, version = line.split(b" ")
    if target.startswith(b"http"):
        target = b"/" + target.split(b"/", 3)[3]
    host, port = sim.base_url.rsplit("/", 1)[1].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as upstream:
        upstream.sendall(b" ".join((method, target, version)) + b"\r\n" + rest)
        return upstream.recv(65536)


def _reset(sock: socket.socket) -> None:
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


class _Front:
    """A server in front of the simulator; ``serve`` handles one connection."""

    def __init__(self, serve: Callable[[socket.socket], None]):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.serve = serve
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._one, args=(sock,), daemon=True).start()

    def _one(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.serve(sock)

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def proxy(sim: Simulator) -> Iterator[str]:
    """An HTTP proxy that delivers the request, waits for the service's answer, then resets."""

    def serve(sock: socket.socket) -> None:
        request = _read_request(sock)
        if request:
            _forward(request, sim)
        _reset(sock)

    front = _Front(serve)
    yield f"http://127.0.0.1:{front.port}"
    front.close()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(folder / "key.pem"),
         "-out", str(folder / "cert.pem")],
        check=True, capture_output=True,
    )  # fmt: skip
    return folder


@pytest.fixture
def tls_front(sim: Simulator, certificate: Path) -> Iterator[str]:
    """HTTPS in front of the simulator that answers a plaintext 502 into the
    TLS stream once the service took the request (as a broken balancer does)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate / "cert.pem", certificate / "key.pem")

    def serve(sock: socket.socket) -> None:
        try:
            tls = context.wrap_socket(sock, server_side=True)
        except (ssl.SSLError, OSError):
            sock.close()
            return
        request = _read_request(tls)
        if request:
            _forward(request, sim)
        raw = socket.socket(fileno=tls.detach())
        raw.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
        _reset(raw)

    front = _Front(serve)
    yield f"https://127.0.0.1:{front.port}"
    front.close()


def _session(**settings: Any) -> requests.Session:
    session = requests.Session()
    for name, value in settings.items():
        setattr(session, name, value)
    return session


@pytest.fixture(autouse=True)
def _no_proxy_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)


def _batch_twice(sim: Simulator, tmp_path: Path, **options: Any) -> List[BatchError]:
    errors = []
    for _ in range(2):
        with pytest.raises(BatchError) as caught:
            export_chromakeys([JOB], SECRET, out_dir=tmp_path, poll_interval=0.05, **options)
        errors.append(caught.value)
    return errors


def test_a_reset_through_a_proxy_after_the_service_took_the_export_is_uncertain(
    sim: Simulator, proxy: str, tmp_path: Path
) -> None:
    session = _session(proxies={"http": proxy})
    with pytest.raises(ExportUncertain, match="may have accepted it"):
        request_export(JOB, SECRET, base_url=sim.base_url, session=session)
    first, again = _batch_twice(sim, tmp_path, base_url=sim.base_url, session=session)
    assert isinstance(first.failures[0][1], ExportUncertain) and isinstance(again.failures[0][1], ExportUncertain)
    assert len(sim.exports) == 2  # the single call, then the batch's once: the re-run sent nothing


def test_a_proxy_that_cannot_be_reached_proves_nothing_was_sent(sim: Simulator, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as unused:
        port = unused.getsockname()[1]
    session = _session(proxies={"http": f"http://127.0.0.1:{port}"})
    with pytest.raises(ServiceError, match="nothing was sent") as caught:
        request_export(JOB, SECRET, base_url=sim.base_url, session=session)
    assert caught.value.unreachable and sim.log == []


def test_a_plaintext_502_in_the_tls_stream_after_the_request_is_uncertain(
    sim: Simulator, tls_front: str, certificate: Path, tmp_path: Path
) -> None:
    session = _session(verify=str(certificate / "cert.pem"))
    first, again = _batch_twice(sim, tmp_path, base_url=tls_front, session=session)
    assert isinstance(first.failures[0][1], ExportUncertain) and isinstance(again.failures[0][1], ExportUncertain)
    assert "nothing was sent" not in str(first)
    assert len(sim.exports) == 1


def test_a_certificate_that_fails_verification_proves_nothing_was_sent(
    sim: Simulator, tls_front: str, tmp_path: Path
) -> None:
    with pytest.raises(ServiceError, match="nothing was sent") as caught:
        export_chromakeys([JOB], SECRET, base_url=tls_front, out_dir=tmp_path, poll_interval=0.05)
    assert caught.value.unreachable and sim.exports == []


@pytest.mark.parametrize(
    "answer",
    [
        {"status": 200, "body": b'{"success": true, "data": {"key": "' + b"x" * (2 * 1024 * 1024) + b'"}}'},
        {"status": 303, "headers": {"Location": "/api/odin/projects/1"}},
    ],
    ids=["over-large-200", "303-see-other"],
)
def test_an_answer_after_delivery_that_cannot_be_used_is_uncertain(
    sim: Simulator, tmp_path: Path, answer: Dict[str, Any]
) -> None:
    sim.fault("export", "accept_then_status", **answer)
    first, again = _batch_twice(sim, tmp_path, base_url=sim.base_url)
    assert isinstance(first.failures[0][1], ExportUncertain) and isinstance(again.failures[0][1], ExportUncertain)
    assert len(sim.exports) == 1
