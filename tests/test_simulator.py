"""The simulator itself: it must speak the documented protocol faithfully,
since every other test trusts it. Requests here are plain ``requests`` calls,
as any client would make."""

from __future__ import annotations

import base64
import json
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
    assert set(progress["data"]) == {"progress", "downloadUrl", "state"}
    assert progress["data"]["state"] == "exported"


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


@pytest.mark.parametrize("knob, status", [("200", 200), ("401", 401)])
def test_a_wrong_key_is_refused_as_the_knob_says(jobs: List[Dict[str, Any]], knob: str, status: int) -> None:
    with Simulator(SECRET, bad_credentials=knob) as sim:
        answer = requests.post(
            sim.base_url + "/api/odin/simple/video", json=jobs[0], headers={"Authorization": "x"}, timeout=5
        )
        assert answer.status_code == status
        assert answer.json() == {"success": False, "msg": "Unauthorized: invalid API key"}
        assert sim.exports == []


def test_by_default_a_wrong_key_is_http_200_as_the_docs_samples_expect(sim: Simulator) -> None:
    answer = requests.get(sim.base_url + "/api/odin/v3/editor/progress/x", headers={"Authorization": "x"}, timeout=5)
    assert answer.status_code == 200
    assert answer.json() == {"success": False, "error": {"code": "UNAUTHORIZED", "msg": "Unauthorized: invalid token"}}


@pytest.mark.parametrize(
    "words, expected",
    [
        ("named", {"code": "TOKEN_EXPIRED", "msg": "token expired"}),
        ("numeric", {"code": "401", "msg": "Unauthorized"}),
        ("message", {"msg": "Access token has expired"}),
    ],
)
def test_a_refused_credential_names_itself_as_the_knob_says(
    jobs: List[Dict[str, Any]], words: str, expected: Dict[str, str]
) -> None:
    with Simulator(SECRET, token_ttl=0.2, credential_words=words) as sim:
        token = _mint(sim).json()["data"]["token"]
        time.sleep(0.25)
        auth = {"Authorization": token}
        answer = requests.post(sim.base_url + "/api/odin/v3/simple/video", json=jobs[0], headers=auth, timeout=5)
        assert answer.json() == {"success": False, "error": expected}


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


# --- the old host -----------------------------------------------------------------


@pytest.mark.parametrize("status", [301, 308])
def test_the_old_host_redirects_everything_to_the_new_one_and_creates_nothing(
    jobs: List[Dict[str, Any]], status: int
) -> None:
    with Simulator(SECRET, render_seconds=0, old_host_status=status) as sim:
        answer = requests.post(
            sim.old_base_url + "/api/odin/simple/video?x=1", json=jobs[0], headers=HEADERS, allow_redirects=False
        )
        assert answer.status_code == status
        assert answer.headers["Location"] == sim.base_url + "/api/odin/simple/video?x=1"
        assert answer.content == b""
        poll = requests.get(sim.old_base_url + "/api/odin/editor/progress/k", headers=HEADERS, allow_redirects=False)
        assert poll.headers["Location"] == sim.base_url + "/api/odin/editor/progress/k"
        assert sim.exports == []
        assert [r.server for r in sim.log] == ["old", "old"]


# --- V3 tokens -------------------------------------------------------------------------

TOKEN_PATH = "/api/odin/v3/auth/token"


def _mint(sim: Simulator, app_id: str = "sim-app-id", user_key: str = "sim-user-key") -> requests.Response:
    return requests.post(sim.base_url + TOKEN_PATH, json={"appId": app_id, "userKey": user_key}, timeout=5)


def _jwt_payload(token: str) -> Dict[str, Any]:
    segment = token.split(".")[1]
    payload: Dict[str, Any] = json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    return payload


def test_the_token_endpoint_mints_a_jwt_that_v3_accepts(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    answer = _mint(sim)
    assert answer.status_code == 200 and answer.json()["success"] is True
    token = answer.json()["data"]["token"]
    assert token.count(".") == 2 and sim.tokens_minted == [token]
    payload = _jwt_payload(token)
    assert payload["appId"] == sim.app_id
    assert payload["exp"] - time.time() == pytest.approx(86400, abs=5)
    auth = {"Authorization": token}
    export = requests.post(sim.base_url + "/api/odin/v3/simple/video", json=jobs[0], headers=auth, timeout=5)
    assert export.json()["success"] is True
    assert requests.get(sim.base_url + "/api/odin/v3/auth", headers=auth, timeout=5).json() == {"isAuthenticated": True}
    # A V3 token is no legacy API key.
    legacy = requests.post(sim.base_url + "/api/odin/simple/video", json=jobs[0], headers=auth, timeout=5)
    assert legacy.json()["success"] is False and sim.exports[-1].api == "v3"


def test_v3_also_takes_the_ready_token_and_refuses_unknown_ones(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    ready = requests.post(sim.base_url + "/api/odin/v3/simple/video", json=jobs[0], headers=HEADERS, timeout=5)
    assert ready.json()["success"] is True
    forged = _mint(sim).json()["data"]["token"][:-2] + "xx"
    answer = requests.post(
        sim.base_url + "/api/odin/v3/simple/video", json=jobs[0], headers={"Authorization": forged}, timeout=5
    )
    assert answer.status_code == 200
    assert answer.json()["error"]["code"] == "UNAUTHORIZED"
    assert requests.get(sim.base_url + "/api/odin/v3/auth", headers={"Authorization": forged}).json() == {
        "isAuthenticated": False
    }


@pytest.mark.parametrize("knob, status", [("401", 401), ("200", 200)])
def test_an_expired_token_is_refused(jobs: List[Dict[str, Any]], knob: str, status: int) -> None:
    with Simulator(SECRET, token_ttl=0.2, expired_token=knob) as sim:
        token = _mint(sim).json()["data"]["token"]
        time.sleep(0.25)
        answer = requests.post(
            sim.base_url + "/api/odin/v3/simple/video", json=jobs[0], headers={"Authorization": token}, timeout=5
        )
        assert answer.status_code == status
        assert answer.json() == {"success": False, "error": {"code": "TOKEN_EXPIRED", "msg": "token expired"}}
        assert sim.exports == []


@pytest.mark.parametrize("knob, status", [("401", 401), ("200", 200)])
@pytest.mark.parametrize(
    "app_id, user_key, code",
    [("wrong", "sim-user-key", "INVALID_APP_ID"), ("sim-app-id", "wrong", "INVALID_USER_KEY")],
)
def test_wrong_credentials_mint_nothing(knob: str, status: int, app_id: str, user_key: str, code: str) -> None:
    with Simulator(SECRET, bad_credentials=knob) as sim:
        answer = _mint(sim, app_id, user_key)
        assert answer.status_code == status
        assert answer.json() == {"success": False, "error": {"code": code, "msg": "invalid appId or userKey"}}
        assert sim.tokens_minted == []


def test_credentials_are_knobs(jobs: List[Dict[str, Any]]) -> None:
    with Simulator(SECRET, app_id="my-app", user_key="my-key") as sim:
        assert _mint(sim).json()["success"] is False
        assert _mint(sim, "my-app", "my-key").json()["success"] is True


def test_the_token_route_takes_faults(sim: Simulator) -> None:
    sim.fault("token", "status", status=503)
    assert _mint(sim).status_code == 503
    assert _mint(sim).status_code == 200


# --- error shapes ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "shape, api, expected",
    [
        ("auto", "legacy", {"success": False, "msg": "project not found"}),
        ("auto", "v3", {"success": False, "error": {"code": "PROJECT_NOT_FOUND", "msg": "project not found"}}),
        ("flat", "v3", {"success": False, "msg": "project not found"}),
        ("nested", "legacy", {"success": False, "error": {"code": "PROJECT_NOT_FOUND", "msg": "project not found"}}),
    ],
)
def test_refusals_take_the_configured_shape(shape: str, api: str, expected: Dict[str, Any]) -> None:
    with Simulator(SECRET, error_shape=shape) as sim:
        assert _progress(sim, "no-such-key", api) == expected


def test_every_refusal_uses_the_shape(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.error_shape = "nested"
    unauthorised = requests.get(sim.base_url + "/api/odin/editor/progress/x", headers={"Authorization": "no"})
    assert unauthorised.json()["error"]["code"] == "UNAUTHORIZED"
    job = dict(jobs[0])
    del job["text"]
    assert _export(sim, job)["error"] == {"code": "INVALID_PARAMETER", "msg": "text is required"}
    sim.plan(RenderPlan(seconds=0, fail_at=0))
    key = _export(sim, jobs[0])["data"]["key"]
    assert _progress(sim, key)["error"]["code"] == "RENDER_FAILED"
    with pytest.raises(ValueError, match="error_shape"):
        sim.error_shape = "round"


# --- V3 progress state, catalogue ------------------------------------------------------------


def test_v3_progress_carries_a_state_unless_told_not_to(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.plan(RenderPlan(seconds=0.3))
    key = _export(sim, jobs[0], "v3")["data"]["projectId"]
    assert _progress(sim, key, "v3")["data"]["state"] == "exporting"
    time.sleep(0.35)
    assert _progress(sim, key, "v3")["data"]["state"] == "exported"
    sim.progress_state = "complete"
    assert _progress(sim, key, "v3")["data"]["state"] == "Complete"
    sim.progress_state = "none"
    assert "state" not in _progress(sim, key, "v3")["data"]
    sim.plan(RenderPlan(seconds=0))
    legacy = _export(sim, jobs[0])["data"]["key"]
    sim.progress_state = "exported"
    assert "state" not in _progress(sim, legacy)["data"]


def test_a_failure_can_be_told_in_the_state_beside_success(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.plan(RenderPlan(seconds=1, fail_at=0, fail_state="failed"))
    key = _export(sim, jobs[0], "v3")["data"]["projectId"]
    assert _progress(sim, key, "v3") == {"success": True, "data": {"progress": 0, "state": "failed"}}


def test_under_the_strict_reading_an_export_without_is_export_stays_a_draft(
    sim: Simulator, jobs: List[Dict[str, Any]]
) -> None:
    sim.is_export = "strict"
    sim.plan(RenderPlan(seconds=0), RenderPlan(seconds=0))
    draft = _export(sim, jobs[0], "v3")["data"]["projectId"]
    exported = _export(sim, dict(jobs[0], isExport=True), "v3")["data"]["projectId"]
    assert _progress(sim, draft, "v3")["data"] == {"progress": 0, "state": "draft"}
    assert _progress(sim, exported, "v3")["data"]["state"] == "exported"
    sim.is_export = "lenient"
    assert "downloadUrl" in _progress(sim, draft, "v3")["data"]


def test_the_legacy_references_own_sample_ids_are_accepted(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    assert _export(sim, dict(jobs[0], model="ysy", clothes="1"))["success"] is True
    assert _export(sim, dict(jobs[0], model="ysx", clothes="1"))["success"] is False  # a near miss is still refused


def test_both_model_pages_are_served_and_each_can_be_missing(sim: Simulator) -> None:
    old = requests.get(sim.base_url + "/api/odin/v3/model", headers=HEADERS, timeout=5).json()
    dropdown = requests.get(sim.base_url + "/api/odin/v3/dropdown/models", headers=HEADERS, timeout=5).json()
    assert [m["id"] for m in dropdown["data"]] == [m["id"] for m in old["data"]["models"]]
    assert set(dropdown["data"][0]) == {"id", "label", "avatarType"} and isinstance(dropdown["data"][0]["label"], str)
    sim.catalogue_pages = "dropdown"
    assert requests.get(sim.base_url + "/api/odin/v3/model", headers=HEADERS, timeout=5).status_code == 404
    sim.catalogue_pages = "old"
    assert requests.get(sim.base_url + "/api/odin/v3/dropdown/models", headers=HEADERS, timeout=5).status_code == 404


def test_opaque_tokens_carry_no_expiry_and_still_expire(jobs: List[Dict[str, Any]]) -> None:
    with Simulator(SECRET, token_ttl=0.3, opaque_tokens=True) as sim:
        token = _mint(sim).json()["data"]["token"]
        assert token.count(".") != 2
        auth = {"Authorization": token}
        path = sim.base_url + "/api/odin/v3/simple/video"
        assert requests.post(path, json=jobs[0], headers=auth, timeout=5).json()["success"] is True
        time.sleep(0.35)
        assert requests.post(path, json=jobs[0], headers=auth, timeout=5).json()["error"]["code"] == "TOKEN_EXPIRED"


def test_the_default_catalogue_has_the_tutorials_and_the_samples_models(sim: Simulator) -> None:
    answer = requests.get(sim.base_url + "/api/odin/v3/model", headers=HEADERS, timeout=5).json()
    models = {m["id"]: m for m in answer["data"]["models"]}
    assert {c["id"] for c in models["M000004017"]["clothes"]} >= {"BG00006160", "BG00001004"}
    assert {c["id"] for c in models["M000045058"]["clothes"]} >= {"BG00002320"}
    for model in models.values():
        assert set(model) == {"id", "label", "thumbnail", "clothes"} and set(model["label"]) == {"ko", "en"}
        for clothes in model["clothes"]:
            assert set(clothes) == {"id", "label", "thumbnail"}


def test_the_catalogue_can_be_bare_or_replaced_and_needs_a_credential() -> None:
    mine = [{"id": "M000000001", "label": {"ko": "가", "en": "A"}, "thumbnail": "", "clothes": []}]
    with Simulator(SECRET, catalogue=mine, catalogue_envelope=False) as sim:
        assert requests.get(sim.base_url + "/api/odin/v3/model", headers=HEADERS, timeout=5).json() == {"models": mine}
        assert requests.get(sim.base_url + "/api/odin/v3/model", timeout=5).json()["success"] is False
        sim.fault("model", "html502")
        assert requests.get(sim.base_url + "/api/odin/v3/model", headers=HEADERS, timeout=5).status_code == 502


def test_v3_exports_must_name_a_catalogued_model_and_clothes(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    stranger = dict(jobs[0], model="M999999999")
    assert _export(sim, stranger, "v3")["error"]["code"] == "MODEL_NOT_FOUND"
    wrong_clothes = dict(jobs[0], clothes="BG00002320")  # the sample's clothes, not this model's
    assert _export(sim, wrong_clothes, "v3")["error"]["code"] == "CLOTHES_NOT_FOUND"
    assert _export(sim, stranger)["success"] is True  # legacy checks the ID's pattern only
    sim.check_catalogue = False
    assert _export(sim, stranger, "v3")["success"] is True
    assert len(sim.exports) == 2


# --- transient poll failures -----------------------------------------------------------------


@pytest.mark.parametrize("first", [1, 3])
def test_flaky_polls_fail_once_and_the_render_carries_on(
    sim: Simulator, jobs: List[Dict[str, Any]], first: int
) -> None:
    sim.plan(RenderPlan(seconds=0, flaky_polls=2, flaky_from=first))
    key = _export(sim, jobs[0])["data"]["key"]
    answers = [_progress(sim, key)["success"] for _ in range(6)]
    expected = [True] * 6
    expected[first - 1 : first + 1] = [False, False]
    assert answers == expected
    assert "url" in _progress(sim, key)["data"]


def test_a_failed_render_stays_failed(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.plan(RenderPlan(seconds=0, fail_at=50))
    key = _export(sim, jobs[0])["data"]["key"]
    assert [_progress(sim, key)["success"] for _ in range(3)] == [False] * 3
