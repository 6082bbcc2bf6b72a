"""The service as today's docs (1.6.x) describe it: V3 credentials choose
V3, ``isExport`` is sent, the model lists may be missing or changed, failures
(credentials included) come as HTTP 200 ``success: false``, and a failed
render may be told by its state alone. Each behaviour the docs leave open is
a simulator knob, and the client is run under each."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Dict, List

import pytest

from aistudios_chromakey import (
    AuthenticationError,
    BatchError,
    Client,
    InvalidJob,
    RenderFailed,
    ServiceError,
    export_chromakeys,
    list_models,
    request_export,
    wait_for_video,
)
from aistudios_chromakey.simulator import RenderPlan, Simulator

from .conftest import SECRET
from .test_cli import cli

V3_KEYS = {"app_id": "sim-app-id", "user_key": "sim-user-key"}
JOB = {"language": "ko", "text": "안녕하세요", "model": "M000004017", "clothes": "BG00006160"}


@pytest.fixture(autouse=True)
def _no_credentials_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AISTUDIOS_BASE_URL", "AISTUDIOS_API_KEY", "AISTUDIOS_APP_ID", "AISTUDIOS_USER_KEY"):
        monkeypatch.delenv(name, raising=False)


# --- 1. the credentials choose the API --------------------------------------------------------


def test_an_appid_and_a_userkey_mean_v3_without_saying_so(sim: Simulator, tmp_path: Path) -> None:
    paths = export_chromakeys([JOB], **V3_KEYS, base_url=sim.base_url, out_dir=tmp_path, poll_interval=0.05)
    assert [e.api for e in sim.exports] == ["v3"]
    assert paths[0].read_bytes() == sim.video(sim.exports[0].key)


def test_v3_credentials_in_the_environment_mean_v3(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AISTUDIOS_APP_ID", "sim-app-id")
    monkeypatch.setenv("AISTUDIOS_USER_KEY", "sim-user-key")
    request_export(JOB, base_url=sim.base_url)
    assert [e.api for e in sim.exports] == ["v3"]


def test_an_api_key_means_the_tutorials_flow_and_an_explicit_api_wins(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    request_export(JOB, SECRET, base_url=sim.base_url)
    monkeypatch.setenv("AISTUDIOS_APP_ID", "sim-app-id")
    monkeypatch.setenv("AISTUDIOS_USER_KEY", "sim-user-key")
    request_export(JOB, SECRET, base_url=sim.base_url)  # an argument comes before the environment
    request_export(JOB, SECRET, api="v3", base_url=sim.base_url)  # a ready token, said to be V3's
    assert [e.api for e in sim.exports] == ["legacy", "legacy", "v3"]


def test_both_kinds_in_the_environment_are_refused_before_anything_is_sent(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AISTUDIOS_APP_ID", "sim-app-id")
    monkeypatch.setenv("AISTUDIOS_USER_KEY", "sim-user-key")
    monkeypatch.setenv("AISTUDIOS_API_KEY", SECRET)
    with pytest.raises(AuthenticationError, match=r"api='v3' or api='legacy'"):
        request_export(JOB, base_url=sim.base_url)
    assert sim.log == []


def test_a_v3_token_given_as_the_api_key_is_told_to_say_v3(sim: Simulator) -> None:
    with Client(api="v3", base_url=sim.base_url, **V3_KEYS) as client:
        client.request_export(JOB)
        token = client.credentials.token
    assert token is not None and token.count(".") == 2
    with pytest.raises(AuthenticationError, match=r"V3 access token: pass api='v3'"):
        request_export(JOB, token, base_url=sim.base_url)
    assert len(sim.exports) == 1


def test_a_legacy_key_given_to_v3_is_told_what_to_do(sim: Simulator) -> None:
    with pytest.raises(AuthenticationError, match=r"api='legacy'"):
        request_export(JOB, "not-a-token", api="v3", base_url=sim.base_url)


def test_the_command_line_runs_v3_from_appid_and_userkey_alone(sim: Simulator, tmp_path: Path) -> None:
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(json.dumps([JOB]), encoding="utf-8")
    v3_env = {"AISTUDIOS_APP_ID": "sim-app-id", "AISTUDIOS_USER_KEY": "sim-user-key"}
    result = cli("run", str(jobs_file), "--base-url", sim.base_url, "--poll-interval", "0.05", "-q",
                 cwd=tmp_path, key=None, env=v3_env)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert [e.api for e in sim.exports] == ["v3"]
    both = cli("run", str(jobs_file), "--base-url", sim.base_url, cwd=tmp_path, env=v3_env)
    assert both.returncode == 2 and "--api v3 or --api legacy" in both.stderr
    assert len(sim.exports) == 1


def test_help_states_the_rule(tmp_path: Path) -> None:
    text = " ".join(cli("run", "--help", cwd=tmp_path).stdout.split())
    assert "the credentials choose the API: an AppId and a UserKey mean v3, an API key legacy" in text


# --- 2. isExport --------------------------------------------------------------------------------


@pytest.mark.parametrize("reading", ["lenient", "strict"])
def test_v3_exports_say_is_export_true_and_render_under_either_reading(tmp_path: Path, reading: str) -> None:
    with Simulator(SECRET, render_seconds=0.2, is_export=reading) as sim:
        paths = export_chromakeys(
            [JOB, JOB], **V3_KEYS, base_url=sim.base_url, out_dir=tmp_path, poll_interval=0.05, timeout=10
        )
        assert [e.body["isExport"] for e in sim.exports] == [True, True]
        assert len(paths) == 2


def test_a_jobs_own_is_export_is_sent_as_given(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    key = request_export(dict(JOB, isExport=False), **V3_KEYS, base_url=sim.base_url)
    assert sim.exports[0].body["isExport"] is False
    assert any("isExport is false" in r.getMessage() for r in caplog.records)
    sim.is_export = "strict"
    with pytest.raises(TimeoutError):  # a draft: what the strict reading says the service does
        wait_for_video(key, **V3_KEYS, base_url=sim.base_url, poll_interval=0.05, timeout=0.5)


# --- 3. the model lists -------------------------------------------------------------------------


def _v3_batch(sim: Simulator, tmp_path: Path, jobs: List[Dict[str, Any]], **options: Any) -> List[Path]:
    return export_chromakeys(jobs, **V3_KEYS, base_url=sim.base_url, out_dir=tmp_path, poll_interval=0.05, **options)


@pytest.mark.parametrize(
    "fault",
    [{"kind": "status", "status": 403}, {"kind": "status", "status": 401}, {"kind": "html502"},
     {"kind": "status", "status": 404}],
)  # fmt: skip
def test_no_answer_of_the_model_pages_stops_a_valid_batch(
    sim: Simulator, tmp_path: Path, fault: Dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    sim.fault("model", times=50, **fault)  # more than the retries of a GET
    sim.fault("dropdown", times=50, **fault)
    assert len(_v3_batch(sim, tmp_path, [JOB, dict(JOB, model="M000045058", clothes="BG00002320")])) == 2
    warnings = [r for r in caplog.records if "model catalogue could not be read" in r.getMessage()]
    assert len(warnings) == 1


@pytest.mark.parametrize("shape", ["empty", "dropdown-only", "bare-dropdown"])
def test_an_empty_or_changed_catalogue_never_refuses_a_valid_job(tmp_path: Path, shape: str) -> None:
    knobs: Dict[str, Any] = {
        "empty": {"catalogue": []},
        "dropdown-only": {"catalogue_pages": "dropdown"},
        "bare-dropdown": {"catalogue_pages": "dropdown", "catalogue_envelope": False},
    }[shape]
    with Simulator(SECRET, render_seconds=0.2, check_catalogue=False, **knobs) as sim:
        assert len(_v3_batch(sim, tmp_path, [dict(JOB, clothes="BG00009999")])) == 1


def test_the_dropdown_list_still_catches_a_model_typo(tmp_path: Path) -> None:
    with Simulator(SECRET, render_seconds=0.2, catalogue_pages="dropdown") as sim:
        with pytest.raises(InvalidJob, match=r"job 2, field 'model'.*did you mean 'M000004017'"):
            _v3_batch(sim, tmp_path, [JOB, dict(JOB, model="M000004071")])
        assert sim.exports == []
        assert [m.clothes for m in list_models(**V3_KEYS, base_url=sim.base_url)] == [None, None, None]


def test_a_typo_against_the_full_catalogue_is_refused_before_paying(sim: Simulator, tmp_path: Path) -> None:
    with pytest.raises(InvalidJob, match=r"job 1, field 'clothes'.*did you mean 'BG00006160'"):
        _v3_batch(sim, tmp_path, [dict(JOB, clothes="BG00006106")])
    assert sim.exports == []


def test_the_check_can_be_turned_off(sim: Simulator, tmp_path: Path) -> None:
    sim.check_catalogue = False
    _v3_batch(sim, tmp_path, [dict(JOB, model="M000000001")], check_catalogue=False)
    assert len(sim.exports) == 1
    assert sim.requests("api", "/api/odin/v3/model") == sim.requests("api", "/api/odin/v3/dropdown") == []


def test_the_command_line_warns_once_and_can_skip_the_check(sim: Simulator, tmp_path: Path) -> None:
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(json.dumps([JOB]), encoding="utf-8")
    sim.fault("model", "status", status=403)
    sim.fault("dropdown", "status", status=403)
    result = cli("run", str(jobs_file), "--api", "v3", "--base-url", sim.base_url, "--poll-interval", "0.05",
                 "--out", "first", cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("warning: the model catalogue could not be read") == 1
    skipped = cli("run", str(jobs_file), "--api", "v3", "--base-url", sim.base_url, "--poll-interval", "0.05",
                  "--out", "second", "--no-catalogue-check", cwd=tmp_path)  # fmt: skip
    assert skipped.returncode == 0, skipped.stderr
    assert len(sim.requests("api", "/api/odin/v3/model")) == 1


# --- 4. refused and expired credentials as HTTP 200 ----------------------------------------------


@pytest.mark.parametrize("status", ["200", "401"])
@pytest.mark.parametrize("words", ["named", "numeric", "message"])
def test_a_token_expiring_mid_batch_is_minted_again_and_nothing_is_paid_twice(
    tmp_path: Path, status: str, words: str
) -> None:
    # Opaque tokens: nothing tells the client when they end, so the service's refusal is what it must read.
    knobs = {"token_ttl": 0.4, "opaque_tokens": True, "expired_token": status, "credential_words": words}
    with Simulator(SECRET, render_seconds=0.2, **knobs) as sim:
        paths = _v3_batch(sim, tmp_path, [JOB, dict(JOB, text="둘"), dict(JOB, text="셋")])
        assert len(paths) == 3 and len(sim.exports) == 3
        assert len(sim.tokens_minted) >= 2


@pytest.mark.parametrize("words", ["named", "numeric", "message"])
def test_a_refused_key_in_a_200_is_an_authentication_error_not_a_refused_job(sim: Simulator, words: str) -> None:
    sim.credential_words = words
    with pytest.raises(AuthenticationError, match="refused the API key"):
        request_export(JOB, "wrong-key", base_url=sim.base_url)
    with pytest.raises(AuthenticationError, match="refused the AppId and UserKey"):
        request_export(JOB, app_id="sim-app-id", user_key="wrong", base_url=sim.base_url)
    assert sim.exports == []


def test_a_token_without_exp_is_renewed_by_its_age(monkeypatch: pytest.MonkeyPatch) -> None:
    from aistudios_chromakey import _access as credentials

    monkeypatch.setattr(credentials, "TOKEN_LIFETIME", 0.5)  # the docs' day, made short
    with Simulator(SECRET, token_ttl=0.6, opaque_tokens=True, expired_token="401") as sim:
        with Client(base_url=sim.base_url, **V3_KEYS) as client:
            client.request_export(JOB)
            time.sleep(0.5)
            client.request_export(JOB)
        assert len(sim.tokens_minted) == 2
        # Renewed before the service had to refuse it: a refusal would have been followed by a resend.
        assert len(sim.requests("api", "/api/odin/v3/simple/video")) == 2


def test_a_token_whose_exp_is_already_past_by_our_clock_is_minted_once(
    sim: Simulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistudios_chromakey import _access as credentials

    class Ahead:  # this machine's clock two days ahead of the service's
        @staticmethod
        def time() -> float:
            return time.time() + 2 * 86400

    monkeypatch.setattr(credentials, "time", Ahead)
    with Client(base_url=sim.base_url, **V3_KEYS) as client:
        for _ in range(4):
            client.request_export(JOB)
    assert len(sim.tokens_minted) == 1 and len(sim.exports) == 4


# --- 5. failure states ---------------------------------------------------------------------------


@pytest.mark.parametrize("state", ["failed", "ERROR", "Cancelled"])
def test_a_state_that_says_failed_ends_the_wait(sim: Simulator, state: str) -> None:
    sim.plan(RenderPlan(seconds=1, fail_at=0, fail_state=state))
    key = request_export(JOB, **V3_KEYS, base_url=sim.base_url)
    started = time.monotonic()
    with pytest.raises(RenderFailed, match=state):
        wait_for_video(key, **V3_KEYS, base_url=sim.base_url, poll_interval=0.05, timeout=30)
    assert time.monotonic() - started < 10
    assert len(sim.polls(key)) >= 3  # one such answer may pass: the failure had to persist


def test_a_failed_state_fails_its_job_and_not_the_batch(sim: Simulator, tmp_path: Path) -> None:
    sim.plan(RenderPlan(seconds=0.2), RenderPlan(seconds=1, fail_at=0, fail_state="failed"))
    with pytest.raises(BatchError) as caught:
        _v3_batch(sim, tmp_path, [JOB, dict(JOB, text="둘")])
    assert [position for position, _ in caught.value.failures] == [2]
    assert isinstance(caught.value.failures[0][1], RenderFailed)


def test_an_unknown_state_is_logged_once_per_render(sim: Simulator, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="aistudios_chromakey")
    sim.progress_state = "other"
    sim.plan(RenderPlan(seconds=0.5))
    key = request_export(JOB, **V3_KEYS, base_url=sim.base_url)
    wait_for_video(key, **V3_KEYS, base_url=sim.base_url, poll_interval=0.05)
    assert len(sim.polls(key)) > 4
    told = [r.getMessage() for r in caplog.records if "its state is" in r.getMessage()]
    assert told == [f"project {key}: the service says its state is 'processing'",
                    f"project {key}: the service says its state is 'finished'"]  # fmt: skip


# --- 6. not stricter than the service ------------------------------------------------------------


def test_the_legacy_references_sample_ids_go_through(sim: Simulator, tmp_path: Path) -> None:
    job = dict(JOB, model="ysy", clothes="1")
    export_chromakeys([job], SECRET, base_url=sim.base_url, out_dir=tmp_path, poll_interval=0.05)
    assert [e.body for e in sim.exports] == [job]


def test_a_field_the_library_does_not_know_is_sent_through_extra(sim: Simulator) -> None:
    request_export(dict(JOB, extra={"ttsType": "neural"}), **V3_KEYS, base_url=sim.base_url)
    assert sim.exports[0].body["ttsType"] == "neural" and "extra" not in sim.exports[0].body
    with pytest.raises(InvalidJob, match=r"field 'ttsType'.*goes in 'extra'"):
        request_export(dict(JOB, ttsType="neural"), **V3_KEYS, base_url=sim.base_url)
    with pytest.raises(InvalidJob, match=r"field 'extra'.*a field of the job itself"):
        request_export(dict(JOB, extra={"text": "other"}), **V3_KEYS, base_url=sim.base_url)
    assert len(sim.exports) == 1


def test_a_table_sends_extra_columns_as_written(sim: Simulator, tmp_path: Path) -> None:
    jobs_file = tmp_path / "jobs.csv"
    jobs_file.write_text("language,text,model,clothes,extra.ttsType\nko,안녕,M000004017,BG00006160,neural\n", "utf-8")
    result = cli("run", str(jobs_file), "--api", "v3", "--base-url", sim.base_url, "--poll-interval", "0.05",
                 cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert sim.exports[0].body["ttsType"] == "neural"


def test_the_china_host_has_a_name() -> None:
    assert Client(base_url="cn", **V3_KEYS).base_url == "https://app.aistudios.cn"
    assert Client(base_url="CN", api="v3").base_url == "https://app.aistudios.cn"
    with pytest.raises(ValueError, match="another API"):
        Client("key", base_url="cn")


def test_a_short_secret_does_not_shred_the_services_message(sim: Simulator) -> None:
    with pytest.raises(AuthenticationError) as caught:  # "a": a typo, a test value; no issued AppId is that short
        request_export(JOB, app_id="a", user_key="sim-user-key", base_url=sim.base_url)
    assert "invalid appId or userKey" in str(caught.value)


def test_a_hanging_token_endpoint_is_asked_once_not_once_per_job(sim: Simulator, tmp_path: Path) -> None:
    sim.fault("token", "hang", times=100, seconds=5)
    jobs = [dict(JOB, text=f"job {n}") for n in range(5)]
    with pytest.raises(BatchError) as caught:
        export_chromakeys(jobs, **V3_KEYS, base_url=sim.base_url, out_dir=tmp_path, poll_interval=0.05,
                          request_timeout=(0.5, 0.5))  # fmt: skip
    assert len(caught.value.failures) == 5
    assert all("minting an access token" in str(error) for _, error in caught.value.failures)
    assert len(sim.requests("api", "/api/odin/v3/auth/token")) == 1 and sim.exports == []


# --- an export paid for but never recorded ----------------------------------------------------


@pytest.mark.parametrize("naming", ["text", "title", "none"])
def test_a_lost_export_is_looked_for_in_the_list_of_projects_and_adopted_by_hand(tmp_path: Path, naming: str) -> None:
    job = dict(JOB, text="안녕하세요, 저는 잃어버린 작업입니다. 다시 찾아 주세요.")
    with Simulator(SECRET, render_seconds=0.2, project_name=naming) as sim:
        sim.fault("export", "accept_then_status", status=502)  # taken, then the answer is lost
        for _ in range(2):  # the run that lost it, then the one that looks for it
            with pytest.raises(BatchError) as caught:
                _v3_batch(sim, tmp_path, [job])
        [export] = sim.exports
        text = str(caught.value)
        if naming == "none":  # nothing to match a project by: the dashboard is the way
            assert "may be it" not in text and "dashboard" in text
            return
        assert f"may be it: {export.key}" in text and f"--adopt 1={export.key}" in text
        assert len(sim.exports) == 1  # offered, never adopted nor exported on its own
        [path] = _v3_batch(sim, tmp_path, [job], adopt={1: export.key})
        assert path.read_bytes() == sim.video(export.key) and len(sim.exports) == 1


def test_a_token_answer_without_a_token_is_the_services_fault_not_the_credentials(sim: Simulator) -> None:
    sim.fault("token", "status", status=200, body=b'{"success": true, "data": {}}')
    with pytest.raises(ServiceError, match="carries no token") as caught:
        request_export(JOB, **V3_KEYS, base_url=sim.base_url)
    assert not isinstance(caught.value, AuthenticationError) and sim.exports == []
