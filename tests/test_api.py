"""request_export and wait_for_video against the simulator, over real HTTP."""

from __future__ import annotations

import email.utils
import json
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, Iterator, List

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from aistudios_chromakey import (
    AIStudiosError,
    AuthenticationError,
    Client,
    ExportRejected,
    ExportUncertain,
    InvalidJob,
    ProgressEvent,
    RateLimited,
    RenderFailed,
    RenderTimeout,
    ServiceError,
    request_export,
    wait_for_video,
)
from aistudios_chromakey._http import retry_after_seconds
from aistudios_chromakey._polling import PollClock
from aistudios_chromakey.simulator import RenderPlan, Simulator

from .conftest import SECRET, TUTORIAL_JOBS

# --- the export request -------------------------------------------------------------


@pytest.mark.parametrize("api, path", [("legacy", "/api/odin/simple/video"), ("v3", "/api/odin/v3/simple/video")])
def test_export_posts_the_job_as_json_with_the_raw_key(
    sim: Simulator, jobs: List[Dict[str, Any]], api: str, path: str
) -> None:
    key = request_export(jobs[0], SECRET, api=api, base_url=sim.base_url)

    [export] = sim.exports
    assert key == export.key
    assert export.api == api
    [sent] = sim.requests("api")
    assert (sent.method, sent.path) == ("POST", path)
    assert sent.headers["Authorization"] == SECRET  # raw key, no "Bearer"
    assert sent.headers["Content-Type"] == "application/json"
    # V3's isExport defaults to false on the service: every export says true unless the job says otherwise.
    assert sent.json() == (dict(jobs[0], isExport=True) if api == "v3" else jobs[0])


def test_optional_fields_are_passed_through_unchanged(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    job = dict(jobs[0], resolution="720", isExport=True, webhookUrl="https://example.invalid/hook")
    request_export(job, SECRET, api="v3", base_url=sim.base_url)
    assert sim.requests("api")[0].json() == job


def test_the_key_may_come_from_the_environment(
    sim: Simulator, jobs: List[Dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AISTUDIOS_API_KEY", SECRET + "\n")  # as pasted from a file
    request_export(jobs[0], base_url=sim.base_url)
    assert sim.requests("api")[0].headers["Authorization"] == SECRET


def test_no_key_at_all_is_an_authentication_error_before_sending(
    sim: Simulator, jobs: List[Dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AISTUDIOS_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="AISTUDIOS_API_KEY"):
        request_export(jobs[0], base_url=sim.base_url)
    assert sim.log == []


def test_a_key_with_a_line_break_inside_is_refused_without_echoing_it(
    sim: Simulator, jobs: List[Dict[str, Any]]
) -> None:
    with pytest.raises(AuthenticationError) as caught:
        request_export(jobs[0], "abc\ndef-secret", base_url=sim.base_url)
    assert "def-secret" not in str(caught.value)
    assert sim.log == []


def test_a_wrong_key_is_an_authentication_error_without_retry_or_poll(
    sim: Simulator, jobs: List[Dict[str, Any]]
) -> None:
    with pytest.raises(AuthenticationError) as caught:
        request_export(jobs[0], "wrong-key", base_url=sim.base_url)
    assert isinstance(caught.value, AIStudiosError)
    assert "Unauthorized" in str(caught.value)  # the server's own words
    assert len(sim.log) == 1
    assert sim.polls() == []


def test_an_export_refused_with_success_false_raises_the_servers_message(
    sim: Simulator, jobs: List[Dict[str, Any]]
) -> None:
    sim.plan(RenderPlan(reject="text does not match the model's language"))
    with pytest.raises(ExportRejected, match="text does not match the model's language"):
        request_export(jobs[0], SECRET, base_url=sim.base_url)
    assert sim.exports == []
    assert sim.polls() == []


def test_an_unknown_model_is_rejected_by_the_service(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    with pytest.raises(ExportRejected, match="model not found"):
        request_export(dict(jobs[0], model="M4017"), SECRET, base_url=sim.base_url)


# --- validation -----------------------------------------------------------------


@pytest.mark.parametrize(
    "job, field, message",
    [
        ({"language": "ko", "text": "hi", "model": "M000004017"}, "clothes", "missing"),
        ({"language": "ko", "text": "", "model": "M000004017", "clothes": "BG00006160"}, "text", "empty"),
        ({"language": "ko", "text": "  ", "model": "M000004017", "clothes": "BG00006160"}, "text", "empty"),
        ({"language": "ko", "text": 42, "model": "M000004017", "clothes": "BG00006160"}, "text", "string"),
        ({"language": None, "text": "hi", "model": "M000004017", "clothes": "BG00006160"}, "language", "string"),
        (
            {"language": "ko", "text": "hi", "model": "M000004017", "clothes": "BG00006160", "uppercut": "1"},
            "uppercut",
            "number",
        ),
        (
            {"language": "ko", "text": "hi", "model": "M000004017", "clothes": "BG00006160", "cloths": "x"},
            "cloths",
            "did you mean 'clothes'",
        ),
        (
            {"language": "ko", "text": "hi", "model": "M000004017", "clothes": "BG00006160", "resolution": "1080"},
            "resolution",
            "api='v3'",
        ),
    ],
)
def test_a_bad_job_names_the_field_and_sends_nothing(
    sim: Simulator, job: Dict[str, Any], field: str, message: str
) -> None:
    with pytest.raises(InvalidJob, match=message) as caught:
        request_export(job, SECRET, base_url=sim.base_url)
    assert caught.value.field == field
    assert repr(field) in str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert sim.log == []


def test_a_job_that_is_not_a_dict_is_invalid(sim: Simulator) -> None:
    with pytest.raises(InvalidJob, match="must be a dict"):
        request_export(["ko", "hi"], SECRET, base_url=sim.base_url)  # type: ignore[arg-type]
    assert sim.log == []


def test_v3_fields_are_checked_on_v3(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    with pytest.raises(InvalidJob, match="one of '4k', '1080', '720', '480'"):
        request_export(dict(jobs[0], resolution="2160"), SECRET, api="v3", base_url=sim.base_url)
    assert sim.log == []


@pytest.mark.parametrize("base_url", ["aistudios.com", "ftp://aistudios.com", "https://aistudios.com/api/odin"])
def test_a_malformed_base_url_is_refused(jobs: List[Dict[str, Any]], base_url: str) -> None:
    with pytest.raises(ValueError, match="base_url"):
        request_export(jobs[0], SECRET, base_url=base_url)


def test_an_unknown_api_is_refused(jobs: List[Dict[str, Any]]) -> None:
    with pytest.raises(ValueError, match="'legacy' or 'v3'"):
        request_export(jobs[0], SECRET, api="v2")


# --- waiting -------------------------------------------------------------------


def _export(sim: Simulator, jobs: List[Dict[str, Any]], api: str = "legacy") -> str:
    return request_export(jobs[0], SECRET, api=api, base_url=sim.base_url)


@pytest.mark.parametrize(
    "api, field", [("legacy", "url"), ("legacy", "videoUrl"), ("legacy", "download_url"), ("v3", None)]
)
def test_wait_returns_the_address_whatever_field_names_it(
    sim: Simulator, jobs: List[Dict[str, Any]], api: str, field: str
) -> None:
    sim.plan(RenderPlan(seconds=0.2, url_field=field))
    key = _export(sim, jobs, api)
    url = wait_for_video(key, SECRET, api=api, base_url=sim.base_url, poll_interval=0.05)
    assert url.startswith(sim.download_url) and key in url


def test_wait_polls_until_progress_reaches_100(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.plan(RenderPlan(seconds=0.5))
    key = _export(sim, jobs)
    seen: List[ProgressEvent] = []
    wait_for_video(key, SECRET, base_url=sim.base_url, poll_interval=0.05, on_progress=seen.append)
    progress = [event.progress for event in seen]
    assert len(progress) == len(sim.polls(key)) >= 3
    assert progress == sorted(progress)
    assert progress[0] < 100 and progress[-1] == 100  # type: ignore[operator]


def test_progress_100_without_an_address_keeps_polling(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.plan(RenderPlan(seconds=0, address_after_polls=3))
    key = _export(sim, jobs)
    seen: List[ProgressEvent] = []
    url = wait_for_video(key, SECRET, base_url=sim.base_url, poll_interval=0.05, on_progress=seen.append)
    assert key in url
    assert [event.progress for event in seen] == [100.0] * 4  # three without an address, then the address


def test_progress_sent_as_a_string_works(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.plan(RenderPlan(seconds=0.2, progress_as_string=True))
    key = _export(sim, jobs)
    assert key in wait_for_video(key, SECRET, base_url=sim.base_url, poll_interval=0.05)


def test_a_render_that_never_ends_times_out(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.plan(RenderPlan(finish=False))
    key = _export(sim, jobs)
    with pytest.raises(RenderTimeout) as caught:
        wait_for_video(key, SECRET, base_url=sim.base_url, poll_interval=0.2, timeout=1)
    assert isinstance(caught.value, TimeoutError)
    assert isinstance(caught.value, AIStudiosError)
    assert key in str(caught.value)


def test_a_render_stuck_at_100_without_an_address_times_out(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.plan(RenderPlan(seconds=0, address_after_polls=None))
    key = _export(sim, jobs)
    with pytest.raises(RenderTimeout, match="no video address"):
        wait_for_video(key, SECRET, base_url=sim.base_url, poll_interval=0.1, timeout=0.5)


def test_success_false_while_polling_is_a_failed_render(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.plan(RenderPlan(seconds=1, fail_at=10))
    key = _export(sim, jobs)
    with pytest.raises(RenderFailed, match="could not be synthesised"):
        wait_for_video(key, SECRET, base_url=sim.base_url, poll_interval=0.05)


def test_an_unknown_project_key_is_a_failed_render(sim: Simulator) -> None:
    with pytest.raises(RenderFailed, match="project not found"):
        wait_for_video("no-such-project", SECRET, base_url=sim.base_url)


def test_a_wrong_key_while_polling_is_an_authentication_error(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    key = _export(sim, jobs)
    with pytest.raises(AuthenticationError):
        wait_for_video(key, "wrong-key", base_url=sim.base_url)
    assert len(sim.polls(key)) == 1


def test_a_poll_that_is_never_answered_times_out(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    """A server that accepts the connection but never answers must not hang us."""
    key = _export(sim, jobs)
    sim.fault("progress", "hang", times=10, seconds=30)
    with pytest.raises(ServiceError, match="could not be reached"):
        wait_for_video(key, SECRET, base_url=sim.base_url, request_timeout=0.2)


def test_an_export_that_is_never_answered_is_reported_as_uncertain_not_resent(
    sim: Simulator, jobs: List[Dict[str, Any]]
) -> None:
    sim.fault("export", "hang", times=10, seconds=30)
    with pytest.raises(ExportUncertain, match="may have accepted it"):
        request_export(jobs[0], SECRET, base_url=sim.base_url, request_timeout=0.3)
    assert len(sim.requests("api")) == 1


# --- surviving the network and the service ---------------------------------------


def test_polling_survives_5xx_a_reset_and_an_html_502_in_a_row(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.plan(RenderPlan(seconds=0))
    key = _export(sim, jobs)
    for status in (500, 502, 503):
        sim.fault("progress", "status", status=status)
    sim.fault("progress", "reset")
    sim.fault("progress", "html502")
    url = wait_for_video(key, SECRET, base_url=sim.base_url)
    assert key in url
    assert len(sim.polls(key)) == 6
    assert len(sim.exports) == 1


def test_a_429_on_a_poll_is_waited_out_as_retry_after_says(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.plan(RenderPlan(seconds=0))
    key = _export(sim, jobs)
    sim.fault("progress", "status", status=429, retry_after="2")
    wait_for_video(key, SECRET, base_url=sim.base_url)
    limited, answered = sim.polls(key)
    assert answered.time - limited.time >= 2.0


def test_a_429_on_the_export_is_waited_out_and_sent_once_more(
    sim: Simulator, jobs: List[Dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistudios_chromakey import _http as _transport

    monkeypatch.setattr(_transport, "IN_REQUEST_WAIT_MAX", 5.0)  # the documented in-request wait
    sim.fault("export", "status", status=429, retry_after="1")
    key = _export(sim, jobs)
    refused, accepted = sim.requests("api")
    assert accepted.time - refused.time >= 1.0
    assert [e.key for e in sim.exports] == [key]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_a_5xx_after_the_export_was_taken_is_uncertain_and_never_resent(
    sim: Simulator, jobs: List[Dict[str, Any]], status: int
) -> None:
    """A proxy answers 503 for "upstream reset before headers" after the service took the job."""
    sim.fault("export", "accept_then_status", status=status)
    with pytest.raises(ExportUncertain, match="may have accepted it"):
        request_export(jobs[0], SECRET, base_url=sim.base_url)
    assert len(sim.requests("api")) == 1
    assert len(sim.exports) == 1  # one render, paid once


@pytest.mark.parametrize("kind", ["reset", "html502"])
def test_a_lost_export_answer_is_uncertain_and_never_resent(
    sim: Simulator, jobs: List[Dict[str, Any]], kind: str
) -> None:
    sim.fault("export", kind)
    with pytest.raises(ExportUncertain, match="check your AI STUDIOS dashboard"):
        _export(sim, jobs)
    assert len(sim.requests("api")) == 1


@pytest.mark.parametrize(
    "fault",
    [
        {"status": 500},
        {"status": 504},
        {"status": 200, "body": b"<html>ok</html>", "content_type": "text/html"},
        {"status": 200, "body": b'{"success": true, "data": {}}'},
    ],
)
def test_an_export_answer_that_may_hide_an_accepted_job_is_uncertain_and_not_resent(
    sim: Simulator, jobs: List[Dict[str, Any]], fault: Dict[str, Any]
) -> None:
    sim.fault("export", "status", **fault)
    with pytest.raises(ExportUncertain, match="may have accepted it"):
        _export(sim, jobs)
    assert len(sim.requests("api")) == 1


def test_a_redirected_export_is_not_followed(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.fault("export", "status", status=301, body=b"", headers={"Location": "https://aistudios.com/"})
    with pytest.raises(ExportRejected, match=r"redirected to https://aistudios\.com/; check base_url"):
        _export(sim, jobs)
    assert len(sim.requests("api")) == 1


def test_a_service_that_cannot_be_reached_sent_nothing(jobs: List[Dict[str, Any]], refused_port: int) -> None:
    port = refused_port
    with pytest.raises(ServiceError, match="nothing was sent"):
        request_export(jobs[0], SECRET, base_url=f"http://127.0.0.1:{port}")


def test_a_poll_answered_with_html_and_status_200_is_a_clear_error(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    key = _export(sim, jobs)
    sim.fault("progress", "status", status=200, body=b"<html>maintenance</html>", content_type="text/html")
    with pytest.raises(ServiceError, match=r"did not answer JSON.*text/html.*maintenance"):
        wait_for_video(key, SECRET, base_url=sim.base_url)


def test_rate_limiting_that_never_ends_is_reported_as_such(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    key = _export(sim, jobs)
    sim.fault("progress", "status", status=429, retry_after="0", times=50)
    with pytest.raises(RateLimited):
        wait_for_video(key, SECRET, base_url=sim.base_url, timeout=2)
    assert 2 <= len(sim.polls(key)) <= 10  # bounded retries, paced by backoff


# Any JSON value the service might answer.
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
_ANSWER = st.one_of(
    _JSON,
    st.fixed_dictionaries(
        {"success": st.one_of(st.booleans(), _JSON)},
        optional={
            "data": st.fixed_dictionaries(
                {},
                optional={
                    "progress": st.one_of(st.integers(), st.floats(), st.text(max_size=8), _JSON),
                    "url": st.one_of(st.text(max_size=30), _JSON),
                    "videoUrl": st.one_of(st.just("http://["), st.text(max_size=30)),
                    "key": _JSON,
                    "projectId": _JSON,
                },
            ),
            "msg": _JSON,
        },
    ),
)


@pytest.fixture(scope="module")
def shared_sim() -> Iterator[Simulator]:
    with Simulator(SECRET, render_seconds=0) as simulator:
        yield simulator


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(answer=_ANSWER, status=st.sampled_from([200, 200, 200, 400, 404, 409]))
def test_whatever_the_service_answers_we_return_or_raise_our_own_error(
    shared_sim: Simulator, answer: Any, status: int
) -> None:
    body = json.dumps(answer).encode()
    job = TUTORIAL_JOBS[0]
    shared_sim.fault("export", "status", status=status, body=body)
    try:
        key = request_export(job, SECRET, base_url=shared_sim.base_url)
    except AIStudiosError:
        key = request_export(job, SECRET, base_url=shared_sim.base_url)
    else:
        assert isinstance(key, str) and key
    shared_sim.fault("progress", "status", status=status, body=body)
    try:
        url = wait_for_video(key, SECRET, base_url=shared_sim.base_url, poll_interval=0.01, timeout=0.01)
    except AIStudiosError:
        return
    assert url.startswith("http")


def test_the_service_address_may_come_from_the_environment(
    sim: Simulator, jobs: List[Dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AISTUDIOS_BASE_URL", sim.base_url)
    key = request_export(jobs[0], SECRET)
    assert key in wait_for_video(key, SECRET, poll_interval=0.05)


# --- adaptive polling ------------------------------------------------------------------


def test_the_poll_clock_aims_just_after_the_estimated_finish() -> None:
    clock = PollClock(None, started=0.0)
    assert clock.next_wait(0.01, 0.0) == pytest.approx(1.0)  # no rate known yet
    assert clock.next_wait(1.0, 10.0) == pytest.approx(1.1)  # 9 s to go, but no longer than it has run
    assert clock.next_wait(2.0, 20.0) == pytest.approx(2.1)
    assert clock.next_wait(4.0, 40.0) == pytest.approx(4.1)
    assert clock.next_wait(8.0, 80.0) == pytest.approx(2.1)  # 10 %/s, 20 % to go, then a margin
    assert clock.next_wait(9.0, 99.0) == pytest.approx(0.5)  # bounded below
    assert PollClock(None, 0.0).next_wait(20.0, 1.0) == pytest.approx(15.0)  # bounded above
    assert clock.next_wait(9.5, 100.0) == pytest.approx(0.5)  # done, waiting for the address


@pytest.mark.parametrize("seconds", [2.5, 10.0, 60.0])
def test_a_render_that_starts_slowly_is_seen_done_soon_after_it_ends(seconds: float) -> None:
    # Progress as the square of the time (the simulator's "slow-start"): the rate
    # of its first seconds would put the finish far too late.
    clock, now, polls = PollClock(None, started=0.0), 0.0, 0
    while True:
        progress = min(100.0, 100 * (now / seconds) ** 2)
        polls += 1
        if progress >= 100:
            break
        now += clock.next_wait(now, progress)
    assert now - seconds <= max(1.0, seconds / 10) and polls <= 10, (now, polls)


def test_the_poll_clock_backs_off_while_progress_stands_still() -> None:
    clock = PollClock(None, started=0.0)
    waits = [clock.next_wait(t, 0.0) for t in (0.0, 4.0, 12.0, 60.0)]
    assert waits == [1.0, 2.0, 6.0, 15.0]


def test_a_given_poll_interval_is_kept_fixed() -> None:
    clock = PollClock(3.0, started=0.0)
    assert [clock.next_wait(t, p) for t, p in ((0, 0), (3, 10), (6, 99), (9, 100))] == [3.0] * 4


@pytest.mark.parametrize("curve", ["linear", "slow-start", "uneven"])
def test_adaptive_polling_asks_a_few_times_whatever_the_curve(
    sim: Simulator, jobs: List[Dict[str, Any]], curve: str
) -> None:
    sim.plan(RenderPlan(seconds=2.5, curve=curve))
    key = _export(sim, jobs)
    assert key in wait_for_video(key, SECRET, base_url=sim.base_url)
    assert len(sim.polls(key)) <= 6  # a fixed 0.5 s interval would take 6 or more


def test_the_poll_clock_trusts_no_rate_from_a_split_second() -> None:
    clock = PollClock(None, started=0.0)
    assert clock.next_wait(0.04, 0.2) == pytest.approx(1.0)  # 0.2 % after 40 ms says little
    assert clock.next_wait(1.0, 66.0) == pytest.approx(34 / 66 + 0.1)  # measured from the start instead


# --- the transport ----------------------------------------------------------------------


def test_retry_after_is_read_in_both_forms_and_capped() -> None:
    soon = email.utils.format_datetime(datetime.now(timezone.utc) + timedelta(seconds=30), usegmt=True)
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds("1.5") == 1.5
    assert 25 <= (retry_after_seconds(soon) or 0) <= 30
    assert retry_after_seconds("86400") == 120.0  # a day is not waited out
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None


def test_a_callers_session_lends_its_settings_but_never_resends_an_export(
    sim: Simulator, jobs: List[Dict[str, Any]]
) -> None:
    session = requests.Session()
    reckless = HTTPAdapter(max_retries=Retry(total=3, allowed_methods=None, status_forcelist=[502]))
    session.mount("http://", reckless)  # would resend a POST after a reset
    session.headers["X-Team"] = "editors"
    sim.fault("export", "reset")
    with pytest.raises(ExportUncertain):
        request_export(jobs[0], SECRET, base_url=sim.base_url, session=session)
    assert len(sim.requests("api")) == 1
    key = request_export(jobs[0], SECRET, base_url=sim.base_url, session=session)
    assert sim.requests("api")[-1].headers["X-Team"] == "editors"
    sim.fault("progress", "status", status=503)  # our retry policy still applies to polls
    assert key in wait_for_video(key, SECRET, base_url=sim.base_url, session=session, poll_interval=0.05)
    session.close()


@pytest.mark.parametrize("bad", [{"timeout": -1}, {"timeout": "600"}, {"poll_interval": 0}, {"request_timeout": 0}])
def test_nonsense_timings_are_refused_before_anything_is_sent(
    sim: Simulator, jobs: List[Dict[str, Any]], bad: Dict[str, Any], tmp_path: Any
) -> None:
    from aistudios_chromakey import export_chromakeys

    with pytest.raises(ValueError):
        export_chromakeys(jobs, SECRET, base_url=sim.base_url, out_dir=tmp_path, **bad)
    assert sim.log == []


def test_the_wait_ends_within_a_few_tenths_of_its_deadline_when_the_last_poll_hangs(
    sim: Simulator, jobs: List[Dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistudios_chromakey import _http as _transport

    monkeypatch.setattr(_transport, "BACKOFF_FACTOR", 0.25)  # the real backoff, not the tests' short one
    sim.plan(RenderPlan(seconds=100, finish=False))
    key = _export(sim, jobs)
    sim.fault("progress", "hang", seconds=30, times=100)  # every poll hangs: the deadline must still hold
    started = time.monotonic()
    with pytest.raises(RenderTimeout):
        wait_for_video(key, SECRET, base_url=sim.base_url, timeout=1)
    assert time.monotonic() - started < 1.6


@pytest.mark.parametrize(("kind", "options", "most"), [("status", {"status": 503}, 6), ("reset", {}, 5),
                                                       ("status", {"status": 429, "retry_after": "0"}, 3)])  # fmt: skip
def test_one_poll_makes_at_most_the_requests_the_transport_docstring_says(
    sim: Simulator, jobs: List[Dict[str, Any]], kind: str, options: Dict[str, Any], most: int
) -> None:
    key = _export(sim, jobs)
    sim.fault("progress", kind, times=100, **options)
    with Client(SECRET, base_url=sim.base_url) as client, pytest.raises(ServiceError):
        client.poll(key)
    assert len(sim.polls(key)) == most


def test_one_export_is_sent_at_most_three_times_and_only_after_429s(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.fault("export", "status", status=429, retry_after="0", times=100)
    with pytest.raises(RateLimited):
        request_export(jobs[0], SECRET, base_url=sim.base_url)
    assert len(sim.requests("api")) == 3 and sim.exports == []


def test_an_export_answered_with_a_5xx_is_never_sent_again(sim: Simulator, jobs: List[Dict[str, Any]]) -> None:
    sim.fault("export", "status", status=503, times=100)
    with pytest.raises(ExportUncertain):
        request_export(jobs[0], SECRET, base_url=sim.base_url)
    assert len(sim.requests("api")) == 1  # the 503 came after the body, which may have been taken
