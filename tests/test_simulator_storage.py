"""The simulated storage host's knobs, its logging, counters and speed."""

from __future__ import annotations

import base64
import hashlib
import http.client
import logging
import re
import time
import tracemalloc
from typing import Any, Dict, List, Tuple

import pytest
import requests

from aistudios_chromakey.simulator import RenderPlan, Simulator

from .conftest import SECRET
from .test_simulator import HEADERS, _export, _progress


def _ready(sim: Simulator, jobs: List[Dict[str, Any]], **plan: Any) -> Tuple[str, str]:
    sim.plan(RenderPlan(seconds=0, **plan))
    key = _export(sim, jobs[0])["data"]["key"]
    url: str = _progress(sim, key)["data"]["url"]
    return key, url


def test_without_if_range_the_host_answers_206_to_a_stale_validator(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    key, url = _ready(sim, jobs, size=10_000)
    sim.if_range = False
    stale = requests.get(url, headers={"Range": "bytes=4000-", "If-Range": '"stale"'}, timeout=5)
    assert stale.status_code == 206 and stale.content == sim.video(key)[4000:]


def test_a_replaced_video_has_other_bytes_and_another_etag(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    key, url = _ready(sim, jobs, size=50_000)
    before = requests.get(url, timeout=5)
    sim.replace_video(key)
    after = requests.get(url, timeout=5)
    assert after.headers["ETag"] != before.headers["ETag"]
    assert len(after.content) == 50_000 and after.content != before.content
    assert after.content == sim.video(key)
    resumed = requests.get(url, headers={"Range": "bytes=25000-", "If-Range": before.headers["ETag"]}, timeout=5)
    assert resumed.status_code == 200 and resumed.content == after.content
    sim.replace_video(key, size=70_000)
    assert len(requests.get(url, timeout=5).content) == 70_000


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data).digest()


@pytest.mark.parametrize(
    "integrity, header, expected",
    [
        ("etag-md5", "ETag", lambda data: '"' + _md5(data).hex() + '"'),
        ("content-md5", "Content-MD5", lambda data: base64.b64encode(_md5(data)).decode()),
        (
            "sha256",
            "x-amz-checksum-sha256",
            lambda data: base64.b64encode(hashlib.sha256(data).digest()).decode(),
        ),
    ],
)
def test_integrity_headers_describe_the_whole_object(
    sim: Simulator, jobs: List[Dict[str, Any]], integrity: str, header: str, expected: Any
) -> None:
    key, url = _ready(sim, jobs, size=300_000)
    assert header not in requests.get(url, timeout=5).headers or header == "ETag"
    sim.integrity = integrity
    answer = requests.get(url, timeout=5)
    assert answer.headers[header] == expected(sim.video(key))
    if header != "ETag":
        part = requests.get(url, headers={"Range": "bytes=10-"}, timeout=5)
        assert part.status_code == 206 and header not in part.headers


def test_a_multipart_etag_is_no_md5_of_the_bytes(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    key, url = _ready(sim, jobs)
    sim.integrity = "multipart-etag"
    etag = requests.get(url, timeout=5).headers["ETag"]
    assert re.fullmatch(r'"[0-9a-f]{32}-3"', etag)
    assert etag.strip('"').split("-")[0] != hashlib.md5(sim.video(key)).hexdigest()


def test_download_rate_bounds_each_connection(jobs: List[Dict[str, Any]]) -> None:
    with Simulator(SECRET, download_rate=4_000_000) as sim:
        _, url = _ready(sim, jobs, size=2_000_000)
        started = time.monotonic()
        assert len(requests.get(url, timeout=5).content) == 2_000_000
        assert time.monotonic() - started == pytest.approx(0.5, abs=0.12)
        sim.download_rate = None
        started = time.monotonic()
        requests.get(url, timeout=5)
        assert time.monotonic() - started < 0.2


def test_large_videos_cost_no_memory(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    tracemalloc.start()
    try:
        for _ in range(50):
            sim.plan(RenderPlan(seconds=0, size=40_000_000))
            _export(sim, jobs[0])
        sim.integrity = "sha256"
        for export in sim.exports[:3]:
            url = _progress(sim, export.key)["data"]["url"]
            with requests.get(url, stream=True, timeout=5) as answer:
                assert sum(len(chunk) for chunk in answer.iter_content(1 << 20)) == 40_000_000
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16_000_000


def test_every_request_is_logged_without_credentials(
    sim: Simulator, jobs: List[Dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aistudios_chromakey.simulator")
    key, url = _ready(sim, jobs, link_ttl=60)
    requests.get(url, timeout=5)
    sim.fault("progress", "reset")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sim.base_url}/api/odin/editor/progress/{key}", headers=HEADERS, timeout=5)
    lines = [r.getMessage() for r in caplog.records if r.name == "aistudios_chromakey.simulator"]
    assert lines == [
        "api POST /api/odin/simple/video 200",
        f"api GET /api/odin/editor/progress/{key} 200",
        f"download GET /v/{key}/{key}.mp4 200",
        f"api GET /api/odin/editor/progress/{key} reset",
    ]
    assert all(SECRET not in r.getMessage() and "signature" not in r.getMessage() for r in caplog.records)


def test_stats_count_routes_and_the_peak_of_polls(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    key, _ = _ready(sim, jobs)
    for _ in range(9):
        _progress(sim, key)
    stats = sim.stats()
    assert stats["routes"] == {"export": 1, "progress": 10}
    assert stats["polls"] == 10 and stats["peak_polls"] == 10
    assert stats["requests"] == len(sim.log) == 11


def test_hundreds_of_renders_and_thousands_of_polls_stay_quick(jobs: List[Dict[str, Any]]) -> None:
    with Simulator(SECRET, render_seconds=60) as sim:
        host, port = sim.base_url.split("//")[1].split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=5)
        headers = dict(HEADERS)
        body = requests.models.complexjson.dumps(jobs[0])
        keys = []
        for _ in range(500):
            connection.request("POST", "/api/odin/simple/video", body=body, headers=headers)
            keys.append(requests.models.complexjson.loads(connection.getresponse().read())["data"]["key"])
        started = time.monotonic()
        for i in range(3000):
            connection.request("GET", f"/api/odin/editor/progress/{keys[i % 500]}", headers=headers)
            assert connection.getresponse().read().startswith(b'{"success": true')
        elapsed = time.monotonic() - started
        connection.close()
        assert sim.max_in_flight() == 500
        assert 3000 / elapsed > 500, f"{3000 / elapsed:.0f} polls/s"
        assert sim.stats()["peak_polls"] > 500
