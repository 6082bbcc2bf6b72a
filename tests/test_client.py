"""The client as a real account would use it: the documented hosts, V3
access tokens minted from an AppId and a UserKey, the documented error
shape, transient failures, and the model catalogue."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional

import pytest

from aistudios_chromakey import (
    AuthenticationError,
    BatchError,
    Client,
    ExportRejected,
    ExportUncertain,
    InvalidJob,
    JournalError,
    ProgressEvent,
    RenderFailed,
    RenderTimeout,
    ServiceError,
    export_chromakeys,
    list_models,
    request_export,
    wait_for_video,
)
from aistudios_chromakey.simulator import RenderPlan, Simulator

from .conftest import SECRET

V3_JOB = {"language": "en", "text": "Hello.", "model": "M000045058", "clothes": "BG00002320"}


@pytest.fixture
def v3(sim: Simulator) -> Dict[str, Any]:
    """A V3 client's keywords: the simulator's address, its AppId and UserKey, quick polling."""
    return {"api": "v3", "base_url": sim.base_url, "app_id": "sim-app-id", "user_key": "sim-user-key",
            "poll_interval": 0.05}  # fmt: skip


def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AISTUDIOS_BASE_URL", "AISTUDIOS_API_KEY", "AISTUDIOS_APP_ID", "AISTUDIOS_USER_KEY"):
        monkeypatch.delenv(name, raising=False)


# --- hosts ------------------------------------------------------------------------


def test_the_default_hosts_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    _no_env(monkeypatch)
    assert Client("k").base_url == "https://v2.aistudios.com"
    assert Client("k", api="v3").base_url == "https://app.aistudios.com"


@pytest.fixture
def v2_host(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """``v2.aistudios.com`` resolved to the simulator, in this process only."""
    real = socket.getaddrinfo

    def resolver(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        return real("127.0.0.1" if host == "v2.aistudios.com" else host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    yield f"http://v2.aistudios.com:{sim.base_url.rsplit(':', 1)[1]}"


def test_a_legacy_batch_speaks_to_v2_aistudios_com(
    sim: Simulator, jobs: List[Dict[str, Any]], v2_host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _no_env(monkeypatch)
    assert Client(SECRET).base_url == "https://v2.aistudios.com"  # the same host, over https, by default
    paths = export_chromakeys(jobs, SECRET, base_url=v2_host, out_dir=tmp_path, poll_interval=0.05)
    assert {r.headers["Host"] for r in sim.requests("api")} == {v2_host.split("//")[1]}
    assert [p.read_bytes() for p in paths] == [sim.video(e.key) for e in sim.exports]


def test_the_old_host_is_an_error_naming_the_new_one_and_nothing_follows_it(
    sim: Simulator, jobs: List[Dict[str, Any]]
) -> None:
    with pytest.raises(ExportRejected, match=rf"redirected to {sim.base_url}/api/odin/simple/video; check base_url"):
        request_export(jobs[0], SECRET, base_url=sim.old_base_url)
    assert sim.exports == []
    assert sim.requests("api") == []  # the redirect was not followed: the key went nowhere else


# --- V3 credentials ----------------------------------------------------------------


def test_a_v3_batch_given_only_appid_and_userkey_mints_one_token(
    sim: Simulator, v3: Dict[str, Any], tmp_path: Path
) -> None:
    paths = export_chromakeys([V3_JOB] * 3, out_dir=tmp_path, concurrency=3, **v3)
    assert len(sim.tokens_minted) == 1
    token = sim.tokens_minted[0]
    calls = [r for r in sim.requests("api") if r.route != "token"]
    assert calls and {r.headers.get("Authorization") for r in calls} == {token}
    assert not any("Authorization" in r.headers for r in sim.requests("download"))
    journal = (tmp_path / ".aistudios-chromakey.json").read_text(encoding="utf-8")
    assert token not in journal and "sim-user-key" not in journal and "sim-app-id" not in journal
    assert [p.read_bytes() for p in paths] == [sim.video(e.key) for e in sim.exports]


def test_a_token_that_expires_mid_batch_is_minted_again_without_a_second_export(
    sim: Simulator, v3: Dict[str, Any], tmp_path: Path
) -> None:
    sim.token_ttl = 0.6
    sim.plan(RenderPlan(seconds=1.5), RenderPlan(seconds=1.5))
    paths = export_chromakeys([V3_JOB, dict(V3_JOB, text="Again.")], out_dir=tmp_path, concurrency=2, **v3)
    assert len(sim.tokens_minted) >= 2
    assert len(sim.exports) == 2
    assert [p.read_bytes() for p in paths] == [sim.video(e.key) for e in sim.exports]


def test_a_401_for_an_expired_token_mints_a_new_one_and_asks_again(sim: Simulator, v3: Dict[str, Any]) -> None:
    sim.token_ttl = 0.3
    client = Client(app_id="sim-app-id", user_key="sim-user-key", api="v3", base_url=sim.base_url)
    key = client.request_export(V3_JOB)
    client.credentials.expires = time.time() + 3600  # a clock behind the service's: only the 401 tells
    time.sleep(0.4)
    assert client.poll(key).progress >= 0
    assert len(sim.tokens_minted) == 2
    # The expired token was refused, a new one minted, and the poll asked again with it.
    assert [r.headers["Authorization"] for r in sim.polls(key)] == sim.tokens_minted
    client.close()


def test_a_wrong_userkey_is_refused_before_any_export(sim: Simulator, v3: Dict[str, Any], tmp_path: Path) -> None:
    v3["user_key"] = "not-the-key"
    with pytest.raises(AuthenticationError, match="refused the AppId and UserKey") as caught:
        export_chromakeys([V3_JOB], out_dir=tmp_path, **v3)
    assert "not-the-key" not in str(caught.value)
    assert sim.exports == []


def test_appid_and_userkey_come_from_the_environment(sim: Simulator, monkeypatch: pytest.MonkeyPatch) -> None:
    _no_env(monkeypatch)
    monkeypatch.setenv("AISTUDIOS_APP_ID", "sim-app-id")
    monkeypatch.setenv("AISTUDIOS_USER_KEY", "sim-user-key")
    key = request_export(V3_JOB, api="v3", base_url=sim.base_url)
    assert key == sim.exports[0].key
    assert len(sim.tokens_minted) == 1


def test_appid_and_userkey_are_refused_for_the_legacy_flow(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    with pytest.raises(AuthenticationError, match="V3 credentials"):
        request_export(jobs[0], app_id="a", user_key="b", api="legacy", base_url=sim.base_url)
    assert sim.log == []


def test_credentials_never_appear_in_a_repr() -> None:
    client = Client("the-legacy-key", base_url="http://127.0.0.1:9")
    v3_client = Client(app_id="the-app-id", user_key="the-user-key", api="v3", base_url="http://127.0.0.1:9")
    shown = repr(client) + repr(v3_client) + repr(v3_client.credentials) + str(vars(client))
    assert "the-legacy-key" not in repr(client) and "the-user-key" not in shown and "the-app-id" not in shown


def test_verify_credentials_sends_no_export(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    good = Client(app_id="sim-app-id", user_key="sim-user-key", api="v3", base_url=sim.base_url)
    assert good.verify_credentials() is True
    assert Client("wrong", api="v3", base_url=sim.base_url).verify_credentials() is False
    assert Client(SECRET, base_url=sim.base_url).verify_credentials() is None  # legacy: no check endpoint
    assert sim.exports == []


# --- the documented error shape, state, and failures that pass --------------------------


def test_a_nested_error_is_shown_as_text(sim: Simulator, v3: Dict[str, Any]) -> None:
    sim.plan(RenderPlan(reject="text does not match the model's language"))
    with pytest.raises(ExportRejected) as caught:
        request_export(V3_JOB, **{k: v for k, v in v3.items() if k != "poll_interval"})
    message = str(caught.value)
    assert "text does not match the model's language" in message
    assert "{" not in message  # never a Python dict


def test_v3_state_reaches_events_and_the_log(
    sim: Simulator, v3: Dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="aistudios_chromakey")
    sim.plan(RenderPlan(seconds=0.3))
    options = {k: v for k, v in v3.items() if k != "poll_interval"}
    key = request_export(V3_JOB, **options)
    events: List[ProgressEvent] = []
    wait_for_video(key, on_progress=events.append, poll_interval=0.05, **options)
    assert {e.state for e in events} >= {"exporting", "exported"}
    assert any("(exporting)" in r.getMessage() for r in caplog.records)


def test_a_failure_that_passes_is_not_a_failed_render(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    sim.plan(RenderPlan(seconds=0.3, flaky_polls=2))
    paths = export_chromakeys(jobs[:1], SECRET, base_url=sim.base_url, out_dir=tmp_path, poll_interval=0.05)
    assert len(sim.exports) == 1
    assert paths[0].read_bytes() == sim.video(sim.exports[0].key)


def test_a_failure_that_persists_fails_after_several_answers(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    from aistudios_chromakey import _polling as polling

    sim.plan(RenderPlan(seconds=1, fail_at=0))
    key = request_export(jobs[0], SECRET, base_url=sim.base_url)
    with pytest.raises(RenderFailed, match="could not be synthesised"):
        wait_for_video(key, SECRET, base_url=sim.base_url, poll_interval=0.05)
    polls = sim.polls(key)
    assert len(polls) >= polling.FAILED_ANSWERS
    assert polls[-1].time - polls[0].time >= polling.FAILED_SECONDS


def test_a_rerun_asks_a_failed_project_again_before_paying_anew(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    from aistudios_chromakey import _polling as polling

    # The service says "failed" for longer than the failure rule waits, then carries on.
    sim.plan(RenderPlan(seconds=0.2, flaky_polls=polling.FAILED_ANSWERS + 1))
    options: Dict[str, Any] = {"base_url": sim.base_url, "out_dir": tmp_path, "poll_interval": 0.05}
    with pytest.raises(BatchError, match=r"did not report success|render failed"):
        export_chromakeys(jobs[:1], SECRET, **options)
    paths = export_chromakeys(jobs[:1], SECRET, **options)
    assert len(sim.exports) == 1  # the same project, asked again, was fine after all
    assert paths[0].read_bytes() == sim.video(sim.exports[0].key)


def test_a_rerun_exports_anew_what_the_service_still_says_failed(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    sim.plan(RenderPlan(seconds=0.2, fail_at=0), RenderPlan(seconds=0.2))
    options: Dict[str, Any] = {"base_url": sim.base_url, "out_dir": tmp_path, "poll_interval": 0.05}
    with pytest.raises(BatchError):
        export_chromakeys(jobs[:1], SECRET, **options)
    paths = export_chromakeys(jobs[:1], SECRET, **options)
    assert len(sim.exports) == 2
    assert paths[0].read_bytes() == sim.video(sim.exports[1].key)


# --- the model catalogue -----------------------------------------------------------------


def test_the_catalogue_lists_models_and_their_clothes(sim: Simulator, v3: Dict[str, Any]) -> None:
    models = list_models(app_id="sim-app-id", user_key="sim-user-key", base_url=sim.base_url)
    by_id = {m.id: m for m in models}
    assert [c.id for c in by_id["M000004017"].clothes] == ["BG00006160", "BG00001004"]
    assert by_id["M000045058"].names.get("en")


@pytest.mark.parametrize("envelope", [True, False])
def test_the_catalogue_is_read_with_or_without_the_envelope(sim: Simulator, envelope: bool) -> None:
    sim.catalogue_envelope = envelope
    assert any(m.id == "M000045058" for m in list_models(SECRET, base_url=sim.base_url))


def test_an_unknown_model_fails_before_any_export_with_a_suggestion(
    sim: Simulator, v3: Dict[str, Any], tmp_path: Path
) -> None:
    jobs = [V3_JOB, dict(V3_JOB, model="M00045058")]
    with pytest.raises(InvalidJob, match=r"job 2, field 'model'.*did you mean 'M000045058'") as caught:
        export_chromakeys(jobs, out_dir=tmp_path, **v3)
    assert caught.value.position == 2
    assert sim.exports == []


def test_clothes_of_another_model_are_refused_before_any_export(
    sim: Simulator, v3: Dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(InvalidJob, match=r"field 'clothes'.*model M000045058"):
        export_chromakeys([dict(V3_JOB, clothes="BG00006160")], out_dir=tmp_path, **v3)
    assert sim.exports == []


def test_the_legacy_flow_documents_no_catalogue(sim: Simulator) -> None:
    with pytest.raises(ValueError, match="legacy API documents no model catalogue"):
        list_models(SECRET, api="legacy", base_url=sim.base_url)
    assert sim.log == []


def test_the_official_sample_jobs_pass_the_catalogue(sim: Simulator) -> None:
    body = json.loads(json.dumps(V3_JOB))
    assert request_export(body, SECRET, api="v3", base_url=sim.base_url)


# --- a hostile network and a misbehaving service -----------------------------------------


def test_a_poll_answer_trickling_a_byte_a_second_cannot_outlast_the_timeout(
    sim: Simulator, jobs: List[Dict[str, Any]]
) -> None:
    key = request_export(jobs[0], SECRET, base_url=sim.base_url)
    sim.fault("progress", "trickle", rate=1.0, times=100)
    started = time.monotonic()
    with pytest.raises((RenderTimeout, ServiceError)):
        wait_for_video(key, SECRET, base_url=sim.base_url, timeout=1.5, poll_interval=0.05)
    assert time.monotonic() - started < 1.5 + 1.0  # the render's timeout held, whatever the network did


def test_a_trickling_poll_does_not_keep_a_batch_past_its_timeout(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    sim.plan(*[RenderPlan(seconds=30) for _ in jobs])
    sim.fault("progress", "trickle", rate=1.0, times=100)
    started = time.monotonic()
    with pytest.raises(BatchError) as caught:
        export_chromakeys(jobs, SECRET, base_url=sim.base_url, out_dir=tmp_path, timeout=1.0, concurrency=3,
                          poll_interval=0.05)  # fmt: skip
    assert time.monotonic() - started < 3 * 1.0 + 2.0
    assert [position for position, _ in caught.value.failures] == [1, 2, 3]


def test_an_export_answer_that_trickles_is_uncertain_within_the_request_timeout(
    sim: Simulator, jobs: List[Dict[str, Any]]
) -> None:
    sim.fault("export", "trickle", rate=4.0)  # a byte every 0.25 s: each read in time, the whole far too slow
    started = time.monotonic()
    with pytest.raises(ExportUncertain, match=r"no complete answer within 1\.5 s"):
        request_export(jobs[0], SECRET, base_url=sim.base_url, request_timeout=(0.5, 1.0))
    assert time.monotonic() - started < 2.5  # each read got a byte in time: only the whole was too slow
    assert len(sim.requests("api")) == 1


@pytest.mark.parametrize("kind", ["endless", "huge"])
def test_an_answer_far_larger_than_any_answer_is_refused_unread(
    sim: Simulator, jobs: List[Dict[str, Any]], kind: str
) -> None:
    key = request_export(jobs[0], SECRET, base_url=sim.base_url)
    sim.fault("progress", kind, times=100, size=100_000_000, status=502, content_type="text/html")
    with pytest.raises(ServiceError, match="larger than 1048576 bytes") as caught:
        Client(SECRET, base_url=sim.base_url).poll(key)
    assert caught.value.status in (200, 502)


def test_a_service_that_echoes_the_key_never_shows_it(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    key = request_export(jobs[0], SECRET, base_url=sim.base_url)
    sim.fault("progress", "echo_key", status=200, times=10)
    with pytest.raises((ServiceError, RenderFailed)) as caught:
        wait_for_video(key, SECRET, base_url=sim.base_url, poll_interval=0.05, timeout=0.2)
    error: Optional[BaseException] = caught.value
    while error is not None:  # nor anything it was raised from or during
        assert SECRET not in str(error) and SECRET[:15] not in str(error)
        assert not hasattr(error, "request")
        error = error.__cause__ or error.__context__
    sim.fault("progress", "echo_key", status=502, content_type="text/html", times=10)
    with pytest.raises(ServiceError) as html:
        Client(SECRET, base_url=sim.base_url).poll(key)
    assert SECRET not in str(html.value) and SECRET[:15] not in str(html.value)


def test_a_lost_answer_does_not_carry_the_request_or_its_key(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.fault("export", "reset")
    with pytest.raises(ExportUncertain) as caught:
        request_export(jobs[0], SECRET, base_url=sim.base_url)
    chain: Optional[BaseException] = caught.value
    while chain is not None:
        assert not hasattr(chain, "request"), chain
        chain = chain.__cause__ or chain.__context__


@pytest.mark.parametrize(
    "body",
    [
        {"success": "false", "data": {"progress": 100, "url": "http://127.0.0.1:9/v/x.mp4"}},
        {"success": True, "data": [{"progress": 100}]},
        {"data": {"progress": 100, "url": "http://127.0.0.1:9/v/x.mp4"}},
    ],
)
def test_anything_but_success_true_is_not_a_success(
    sim: Simulator, jobs: List[Dict[str, Any]], body: Dict[str, Any]
) -> None:
    key = request_export(jobs[0], SECRET, base_url=sim.base_url)
    sim.fault("progress", "status", status=200, body=json.dumps(body).encode(), times=100)
    with pytest.raises(RenderFailed):
        wait_for_video(key, SECRET, base_url=sim.base_url, poll_interval=0.05, timeout=5)
    assert not sim.requests("download")


@pytest.mark.parametrize(
    "spelling, canonical",
    [
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("HTTP://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://[::ffff:127.0.0.1]:8080", "http://127.0.0.1:8080"),
        ("https://AISTUDIOS.COM:443/", "https://aistudios.com"),
        ("https://aistudios.com.", "https://aistudios.com"),
        ("http://v2.aistudios.com:80", "http://v2.aistudios.com"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_one_service_has_one_address_whatever_its_spelling(spelling: str, canonical: str) -> None:
    assert Client("k", base_url=spelling).base_url == canonical


def test_the_same_job_under_another_spelling_of_the_host_is_not_paid_twice(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    port = sim.base_url.rsplit(":", 1)[1]
    for base in (sim.base_url, f"http://[::ffff:127.0.0.1]:{port}/", sim.base_url.upper()):
        export_chromakeys(jobs[:1], SECRET, base_url=base, out_dir=tmp_path, poll_interval=0.05)
    assert len(sim.exports) == 1


def test_a_second_run_on_a_folder_is_told_to_wait_not_to_pay_again_elsewhere(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    import fcntl
    import os

    held = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(held, fcntl.LOCK_EX)
    try:
        with pytest.raises(JournalError) as caught:
            export_chromakeys(jobs, SECRET, base_url=sim.base_url, out_dir=tmp_path)
    finally:
        os.close(held)
    message = str(caught.value)
    assert "wait for it to finish, or stop it" in message
    assert "another output folder" not in message
    assert sim.log == []


# --- the environment, read once ----------------------------------------------------------


def test_proxies_from_the_environment_still_apply_and_no_proxy_too(
    sim: Simulator, jobs: List[Dict[str, Any]], monkeypatch: pytest.MonkeyPatch, refused_port: int
) -> None:
    dead = f"http://127.0.0.1:{refused_port}"  # a proxy that is not there
    monkeypatch.setenv("HTTP_PROXY", dead)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert request_export(jobs[0], SECRET, base_url=sim.base_url)  # NO_PROXY: straight to the service
    monkeypatch.delenv("NO_PROXY")
    with pytest.raises(ServiceError, match=r"proxy refused.*nothing was sent"):
        Client(SECRET, base_url=sim.base_url).request_export(jobs[1])
    assert len(sim.exports) == 1


def test_a_batch_polls_no_faster_than_its_cap_however_many_renders_run(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    many = [dict(jobs[0], text=f"job {n}") for n in range(12)]
    sim.plan(*[RenderPlan(seconds=1.0) for _ in many])
    with Client(SECRET, base_url=sim.base_url, max_polls_per_second=10) as client:
        export_chromakeys(many, out_dir=tmp_path, concurrency=12, poll_interval=0.05, client=client)
    times = sorted(r.time for r in sim.polls())
    assert len(times) > 12
    # Never more than 10 in any second (measured on arrival, so a little jitter is allowed).
    assert all(times[i + 10] - times[i] >= 1.0 * 0.9 for i in range(len(times) - 10))


def test_a_nonsense_poll_cap_is_refused() -> None:
    with pytest.raises(ValueError, match="max_polls_per_second"):
        Client("k", base_url="http://127.0.0.1:9", max_polls_per_second=0)


# --- one client per credentials ----------------------------------------------------------


def test_a_client_given_to_the_plain_functions_mints_one_token_for_the_whole_tutorial_loop(
    sim: Simulator, v3: Dict[str, Any], tmp_path: Path
) -> None:
    from aistudios_chromakey import download_video, request_export, wait_for_video

    settings = {k: v for k, v in v3.items() if k != "poll_interval"}
    with Client(**settings) as client:
        for job in (V3_JOB, dict(V3_JOB, text="Again.")):
            key = request_export(job, client=client)
            download_video(wait_for_video(key, client=client, poll_interval=0.05), tmp_path, client=client)
        export_chromakeys([V3_JOB], out_dir=tmp_path / "batch", poll_interval=0.05, client=client)
    assert len(sim.tokens_minted) == 1 and len(sim.exports) == 3


def test_a_client_and_the_settings_of_another_are_refused_before_anything_is_sent(
    sim: Simulator, v3: Dict[str, Any]
) -> None:
    settings = {k: v for k, v in v3.items() if k != "poll_interval"}
    with Client(**settings) as client, pytest.raises(ValueError, match=r"either client= or .*app_id"):
        request_export(V3_JOB, client=client, app_id="another")
    assert sim.log == []


def test_the_plain_functions_leave_no_connection_or_file_open(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    def open_descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    def settled() -> int:
        """The count once the simulator's threads, in this process too, have closed their ends."""
        counts = [open_descriptors()]
        for _ in range(30):
            time.sleep(0.1)
            counts.append(open_descriptors())
            if counts[-1] == counts[-2]:
                break
        return counts[-1]

    export_chromakeys(jobs[:1], SECRET, base_url=sim.base_url, out_dir=tmp_path / "warm", poll_interval=0.05)
    before = settled()
    for run in range(5):
        export_chromakeys(jobs, SECRET, base_url=sim.base_url, out_dir=tmp_path / str(run), poll_interval=0.05,
                          concurrency=3)  # fmt: skip
    assert settled() <= before  # a client kept open would hold its connections: 2 or more per run


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this system")
def test_a_forked_child_still_bounds_its_requests_and_no_thread_outlives_a_call(
    sim: Simulator, jobs: List[Dict[str, Any]]
) -> None:
    import signal
    import threading

    key = request_export(jobs[0], SECRET, base_url=sim.base_url)
    assert [t.name for t in threading.enumerate() if t.name.startswith("aistudios")] == []  # none outlives a call
    sim.fault("progress", "hang", seconds=2)
    polling = threading.Thread(target=lambda: Client(SECRET, base_url=sim.base_url).poll(key))
    polling.start()  # a guarded request in flight: the watchdog runs as the process forks
    time.sleep(0.3)
    sim.fault("export", "trickle", rate=4.0)  # a byte every 0.25 s: only the wall-clock guard ends it
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through its exit status)
        started, status = time.monotonic(), 3
        try:
            request_export(jobs[1], SECRET, base_url=sim.base_url, request_timeout=(0.5, 1.0))
        except ExportUncertain:
            status = 0 if time.monotonic() - started < 2.5 else 4
        finally:
            os._exit(status)
    polling.join()
    for _ in range(100):  # up to 10 s; a child whose requests are unbounded trickles for a minute
        ended, status = os.waitpid(child, os.WNOHANG)
        if ended:
            break
        time.sleep(0.1)
    else:
        os.kill(child, signal.SIGKILL)
        os.waitpid(child, 0)
        pytest.fail("the forked child's request was not cut at its bound")
    assert os.waitstatus_to_exitcode(status) == 0


def test_bad_arguments_are_refused_before_anything_is_sent(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    from aistudios_chromakey import download_video

    with pytest.raises(ValueError, match="max_text_length must be a whole number"):
        Client(SECRET, base_url=sim.base_url, max_text_length=0)
    with pytest.raises(ValueError, match="project_key must be a non-empty string"):
        wait_for_video(" ", SECRET, base_url=sim.base_url)
    with pytest.raises(ValueError, match=r"url must be an http\(s\) address"):
        download_video("file:///etc/passwd", tmp_path)
    with pytest.raises(ValueError, match="adopt must map job positions to project keys"):
        export_chromakeys(jobs, SECRET, base_url=sim.base_url, out_dir=tmp_path, adopt=[(1, "key")])  # type: ignore[arg-type]
    assert sim.log == [] and list(tmp_path.iterdir()) == []
