"""The simulator itself: it must speak the documented protocol faithfully,
since every other test trusts it. Requests here are plain ``requests`` calls,
as any client would make."""

from __future__ import annotations

import time
from typing import Any, Dict, List

import pytest
import requests

from aistudios_chromakey.simulator import RenderPlan, Simulator

from .conftest import SECRET

HEADERS = {"Authorization": SECRET, "Content-Type": "application/json"}


def _export(sim: Simulator, job: Dict[str, Any], api: str = "legacy") -> Dict[str, Any]:
    path = "/api/odin/simple/video" if api == "legacy" else "/api/odin/v3/simple/video"
    answer = requests.post(sim.base_url + path, json=job, headers=HEADERS, timeout=5)
    assert answer.status_code == 200
    body: Dict[str, Any] = answer.json()
    return body


def _progress(sim: Simulator, key: str, api: str = "legacy") -> Dict[str, Any]:
    path = "/api/odin/editor/progress/" if api == "legacy" else "/api/odin/v3/editor/progress/"
    body: Dict[str, Any] = requests.get(sim.base_url + path + key, headers=HEADERS, timeout=5).json()
    return body


def test_legacy_answers_a_key_and_then_the_address_in_url(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.plan(RenderPlan(seconds=0))
    body = _export(sim, jobs[0])
    assert body["success"] is True and set(body["data"]) == {"key"}
    progress = _progress(sim, body["data"]["key"])
    assert progress["success"] is True
    assert progress["data"]["progress"] == 100
    assert progress["data"]["url"].startswith(sim.download_url)


def test_v3_answers_a_project_id_and_a_download_url(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.plan(RenderPlan(seconds=0))
    body = _export(sim, jobs[0], "v3")
    assert set(body["data"]) == {"projectId"}
    progress = _progress(sim, body["data"]["projectId"], "v3")
    assert set(progress["data"]) == {"progress", "downloadUrl"}


def test_progress_rises_with_time_and_the_address_comes_at_100(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.plan(RenderPlan(seconds=0.4))
    key = _export(sim, jobs[0])["data"]["key"]
    first = _progress(sim, key)["data"]
    assert first["progress"] < 100 and "url" not in first
    time.sleep(0.45)
    last = _progress(sim, key)["data"]
    assert last["progress"] == 100 and "url" in last


def test_the_reference_pages_videourl_spelling(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.plan(RenderPlan(seconds=0, url_field="videoUrl"))
    key = _export(sim, jobs[0])["data"]["key"]
    assert set(_progress(sim, key)["data"]) == {"progress", "videoUrl"}


def test_a_wrong_key_is_401(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    answer = requests.post(
        sim.base_url + "/api/odin/simple/video", json=jobs[0], headers={"Authorization": "x"}, timeout=5
    )
    assert answer.status_code == 401 and answer.json()["success"] is False
    assert sim.exports == []


def test_a_missing_field_is_success_false_with_http_200(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    job = dict(jobs[0])
    del job["clothes"]
    answer = requests.post(sim.base_url + "/api/odin/simple/video", json=job, headers=HEADERS, timeout=5)
    assert answer.status_code == 200
    assert answer.json() == {"success": False, "msg": "clothes is required"}


def test_v3_auth_and_model_catalogue(sim: Simulator) -> None:
    assert requests.get(sim.base_url + "/api/odin/v3/auth", headers=HEADERS, timeout=5).json() == {
        "isAuthenticated": True
    }
    models = requests.get(sim.base_url + "/api/odin/v3/model", headers=HEADERS, timeout=5).json()["data"]["models"]
    assert models[0]["id"] == "M000004017"
    assert {c["id"] for c in models[0]["clothes"]} == {"BG00006160", "BG00001004"}


def _video_url(sim: Simulator, jobs: List[Dict[str, Any]], **plan: Any) -> str:
    sim.plan(RenderPlan(seconds=0, **plan))
    key = _export(sim, jobs[0])["data"]["key"]
    url: str = _progress(sim, key)["data"]["url"]
    return url


def test_videos_are_mp4_and_distinct_per_project(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    first = requests.get(_video_url(sim, jobs), timeout=5)
    second = requests.get(_video_url(sim, jobs), timeout=5)
    assert first.headers["Content-Type"] == "video/mp4"
    assert first.content[4:8] == b"ftyp"
    assert first.content != second.content
    assert int(first.headers["Content-Length"]) == len(first.content)
    assert first.content == sim.video(sim.exports[0].key)


def test_ranges_are_served(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    url = _video_url(sim, jobs, size=10_000)
    whole = sim.video(sim.exports[0].key)
    part = requests.get(url, headers={"Range": "bytes=4000-"}, timeout=5)
    assert part.status_code == 206
    assert part.headers["Content-Range"] == "bytes 4000-9999/10000"
    assert part.content == whole[4000:]
    stale = requests.get(url, headers={"Range": "bytes=4000-", "If-Range": '"stale"'}, timeout=5)
    assert stale.status_code == 200 and stale.content == whole
    fresh = requests.get(url, headers={"Range": "bytes=4000-", "If-Range": part.headers["ETag"]}, timeout=5)
    assert fresh.status_code == 206
    beyond = requests.get(url, headers={"Range": "bytes=10000-"}, timeout=5)
    assert beyond.status_code == 416


def test_everything_is_recorded(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    url = _video_url(sim, jobs)
    requests.get(url, headers={"X-Probe": "1"}, timeout=5)
    export, poll = sim.requests("api")
    assert export.method == "POST" and export.json() == jobs[0]
    assert poll.method == "GET" and sim.polls(sim.exports[0].key) == [poll]
    [download] = sim.requests("download")
    assert download.headers["X-Probe"] == "1"


def test_scripted_faults_apply_to_the_next_requests_only(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.plan(RenderPlan(seconds=0))
    key = _export(sim, jobs[0])["data"]["key"]
    sim.fault("progress", "html502")
    sim.fault("progress", "status", status=429, retry_after="2")
    url = sim.base_url + "/api/odin/editor/progress/" + key
    html = requests.get(url, headers=HEADERS, timeout=5)
    assert html.status_code == 502 and html.headers["Content-Type"] == "text/html"
    limited = requests.get(url, headers=HEADERS, timeout=5)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "2"
    assert requests.get(url, headers=HEADERS, timeout=5).status_code == 200
    sim.fault("progress", "reset")
    with pytest.raises(requests.ConnectionError):
        requests.get(url, headers=HEADERS, timeout=5)
