"""The simulator's fault kinds, each seen over a real socket."""

from __future__ import annotations

import gzip
import hashlib
import socket
import time
import zlib
from typing import Any, Dict, List, Tuple

import pytest
import requests

from aistudios_chromakey.simulator import RenderPlan, Simulator

from .conftest import SECRET
from .test_simulator import HEADERS, _export, _progress


def _ready(sim: Simulator, jobs: List[Dict[str, Any]], **plan: Any) -> Tuple[str, str]:
    """A finished export's project key and video address."""
    sim.plan(RenderPlan(seconds=0, **plan))
    key = _export(sim, jobs[0])["data"]["key"]
    url: str = _progress(sim, key)["data"]["url"]
    return key, url


def _raw_get(url: str, headers: str = "", limit: int = 1 << 30, timeout: float = 5) -> bytes:
    """Everything a server sends for a GET, up to ``limit`` bytes or the close."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].split(":")
    path = "/" + url.split("//", 1)[1].split("/", 1)[1]
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        request = f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{headers}\r\n"
        connection.sendall(request.encode())
        received = bytearray()
        while len(received) < limit:
            chunk = connection.recv(65536)
            if not chunk:
                break
            received += chunk
        return bytes(received)


def _split(raw: bytes) -> Tuple[str, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return head.decode("latin-1"), body


def test_faults_are_checked_when_scripted(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        sim.fault("progress", "gremlins")
    with pytest.raises(ValueError, match="applies to"):
        sim.fault("progress", "gzip")
    with pytest.raises(ValueError, match="route must be one of"):
        sim.fault("webhook", "reset")


def test_trickle_paces_the_whole_answer(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    key, _ = _ready(sim, jobs)
    sim.fault("progress", "trickle", rate=1000)
    url = f"{sim.base_url}/api/odin/editor/progress/{key}"
    started = time.monotonic()
    raw = _raw_get(url, f"Authorization: {SECRET}\r\n")
    elapsed = time.monotonic() - started
    head, body = _split(raw)
    assert head.startswith("HTTP/1.1 200") and b'"url"' in body
    assert elapsed == pytest.approx(len(raw) / 1000, abs=0.1)
    fast = time.monotonic()
    _raw_get(url, f"Authorization: {SECRET}\r\n")
    assert time.monotonic() - fast < 0.1  # one answer only


@pytest.mark.parametrize("route", ["progress", "download"])
def test_endless_bodies_never_end(sim: Simulator, jobs: List[Dict[str, Any]], route: str) -> None:
    key, video_url = _ready(sim, jobs)
    sim.fault(route, "endless")
    url = video_url if route == "download" else f"{sim.base_url}/api/odin/editor/progress/{key}"
    raw = _raw_get(url, f"Authorization: {SECRET}\r\n", limit=300_000)
    head, body = _split(raw)
    assert head.startswith("HTTP/1.1 200") and "Content-Length" not in head
    assert len(body) >= 300_000 - len(head) - 4  # still flowing when we left
    if route == "download":
        assert "video/mp4" in head and body.startswith(sim.video(key)[:4096])  # the clip begins the video
    else:
        assert "application/json" in head
        assert body.startswith(b'{"success": true, "data": {"progress": 1') and body.endswith(b" ")


def test_huge_is_a_long_html_page_with_its_length(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.fault("export", "huge", size=3_000_000, status=502)
    answer = requests.post(sim.base_url + "/api/odin/simple/video", json=jobs[0], headers=HEADERS, timeout=5)
    assert answer.status_code == 502 and answer.headers["Content-Type"] == "text/html"
    assert int(answer.headers["Content-Length"]) == len(answer.content) == 3_000_000
    assert answer.content.startswith(b"<!DOCTYPE html>")
    assert sim.exports == []


@pytest.mark.parametrize("content_type, expected", [("text/html", "text/html"), ("application/json", "text/plain")])
def test_accept_then_status_takes_the_job_and_answers_an_error(
    sim: Simulator, jobs: List[Dict[str, Any]], content_type: str, expected: str
) -> None:
    sim.fault("export", "accept_then_status", status=503, content_type=content_type)
    answer = requests.post(sim.base_url + "/api/odin/simple/video", json=jobs[0], headers=HEADERS, timeout=5)
    assert answer.status_code == 503 and answer.headers["Content-Type"] == expected
    assert len(sim.exports) == 1 and sim.exports[0].body == jobs[0]


def test_echo_key_quotes_the_credential_back(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    key, _ = _ready(sim, jobs)
    sim.fault("progress", "echo_key", status=200)
    body = _progress(sim, key)
    assert SECRET in body["msg"] and body["data"]["progress"] == SECRET and SECRET in body["data"]["url"]
    sim.fault("progress", "echo_key", status=502, content_type="text/html")
    page = requests.get(f"{sim.base_url}/api/odin/editor/progress/{key}", headers=HEADERS, timeout=5)
    assert page.status_code == 502 and page.headers["Content-Type"] == "text/html"
    assert page.content.index(SECRET.encode()) > 200


def test_truncate_without_content_length_is_a_clean_close(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    key, url = _ready(sim, jobs, size=100_000)
    sim.content_length = False
    head, body = _split(_raw_get(url))
    assert "Content-Length" not in head and body == sim.video(key)
    sim.fault("download", "truncate", fraction=0.25)
    head, body = _split(_raw_get(url))
    assert "Content-Length" not in head and body == sim.video(key)[:25_000]


def test_truncate_with_content_length_leaves_the_client_short(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    key, url = _ready(sim, jobs, size=100_000)
    sim.fault("download", "truncate", fraction=0.5)
    head, body = _split(_raw_get(url))
    assert "Content-Length: 100000" in head and body == sim.video(key)[:50_000]


def test_gzip_sends_the_video_compressed(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    key, url = _ready(sim, jobs, size=200_000)
    sim.fault("download", "gzip")
    head, body = _split(_raw_get(url))
    assert "Content-Encoding: gzip" in head and "Content-Length" not in head
    assert gzip.decompress(body) == sim.video(key)


def test_a_gzip_bomb_is_small_and_inflates_to_size(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    _, url = _ready(sim, jobs)
    sim.fault("download", "gzip", size=200_000_000)
    head, body = _split(_raw_get(url))
    assert "Content-Encoding: gzip" in head
    assert len(body) < 1_000_000
    inflater = zlib.decompressobj(31)
    total = 0
    data = body
    while data:
        out = inflater.decompress(data, 16 * 1024 * 1024)
        assert not out.strip(b"\0")
        total += len(out)
        data = inflater.unconsumed_tail
    assert total == 200_000_000


def test_corrupt_flips_one_byte_under_true_checksums(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    key, url = _ready(sim, jobs, size=100_000)
    sim.integrity = "etag-md5"
    sim.fault("download", "corrupt")
    answer = requests.get(url, timeout=5)
    true = sim.video(key)
    assert len(answer.content) == len(true)
    assert sum(a != b for a, b in zip(answer.content, true)) == 1
    assert answer.headers["ETag"] == '"' + hashlib.md5(true).hexdigest() + '"'
