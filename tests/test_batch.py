"""export_chromakeys, the tutorial's whole loop, against the simulator."""

from __future__ import annotations

import hashlib
import itertools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Dict, List

import pytest

from aistudios_chromakey import (
    AuthenticationError,
    BatchError,
    InvalidJob,
    JournalError,
    ProgressEvent,
    RenderFailed,
    ServiceError,
    download_video,
    export_chromakeys,
    request_export,
    wait_for_video,
)
from aistudios_chromakey.simulator import RenderPlan, Simulator

from .conftest import SECRET, default_signal_handling


@pytest.mark.parametrize("api", ["legacy", "v3"])
def test_the_tutorials_three_jobs_end_as_the_served_videos(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path, api: str
) -> None:
    paths = export_chromakeys(jobs, SECRET, api=api, out_dir=tmp_path, **fast)

    assert [e.body for e in sim.exports] == [dict(job, isExport=True) if api == "v3" else job for job in jobs]
    assert [p.name for p in paths] == [f"{e.key}.mp4" for e in sim.exports]
    assert [p.read_bytes() for p in paths] == [sim.video(e.key) for e in sim.exports]
    assert len(set(p.read_bytes() for p in paths)) == 3


@pytest.mark.parametrize("api", ["legacy", "v3"])
def test_the_three_step_functions_do_the_same(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, api: str
) -> None:
    paths = []
    for job in jobs:
        key = request_export(job, SECRET, api=api, base_url=sim.base_url)
        url = wait_for_video(key, SECRET, api=api, base_url=sim.base_url, poll_interval=0.05)
        paths.append(download_video(url, out_dir=tmp_path))
    assert [p.read_bytes() for p in paths] == [sim.video(e.key) for e in sim.exports]


def test_every_job_is_checked_before_anything_is_sent(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    del jobs[2]["model"]
    with pytest.raises(InvalidJob, match="job 3, field 'model'") as caught:
        export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)
    assert caught.value.position == 3
    assert sim.log == []


def test_a_job_that_is_not_a_dict_is_named_by_position(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(InvalidJob, match="job 2: must be a dict"):
        export_chromakeys([jobs[0], "안녕하세요", jobs[1]], SECRET, out_dir=tmp_path, **fast)
    assert sim.log == []


def test_a_single_job_instead_of_a_list_is_refused(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    with pytest.raises(InvalidJob, match="list"):
        export_chromakeys(jobs[0], SECRET, out_dir=tmp_path, base_url=sim.base_url)  # type: ignore[arg-type]
    assert sim.log == []


def test_one_session_and_connection_serve_the_whole_batch(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)
    api_requests = sim.requests("api")
    assert len(api_requests) > 6
    assert len({r.client for r in api_requests}) == 1  # keep-alive: one pool, reused
    assert len({r.client for r in sim.requests("download")}) == 1


def test_the_api_key_stays_out_of_logs_errors_and_the_download_host(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, urllib3's included
    sim.plan(RenderPlan(seconds=0.1), RenderPlan(seconds=0.1, fail_at=0), RenderPlan(seconds=0.1))
    with pytest.raises(BatchError) as caught:
        export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)

    assert caplog.records, "the library logs its steps"
    assert all(SECRET not in record.getMessage() for record in caplog.records)
    assert SECRET not in str(caught.value) and SECRET not in repr(caught.value)
    for request in sim.requests("download"):
        assert "Authorization" not in request.headers
        assert all(SECRET not in value for value in request.headers.values())
    assert all(r.headers["Authorization"] == SECRET for r in sim.requests("api"))


def test_a_failed_job_does_not_stop_the_others(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    sim.plan(RenderPlan(seconds=0.1), RenderPlan(seconds=0.1, fail_at=0), RenderPlan(seconds=0.1))
    with pytest.raises(BatchError, match="job 2") as caught:
        export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)
    error = caught.value
    [(position, reason)] = error.failures
    assert position == 2 and isinstance(reason, RenderFailed)
    first, second, third = error.paths
    assert second is None
    assert first is not None and first.read_bytes() == sim.video(sim.exports[0].key)
    assert third is not None and third.read_bytes() == sim.video(sim.exports[2].key)


def test_a_wrong_key_stops_the_batch_at_once(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(AuthenticationError):
        export_chromakeys(jobs, "wrong-key", out_dir=tmp_path, **fast)
    assert len(sim.log) == 1


def test_progress_events_follow_each_job(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    events: List[ProgressEvent] = []
    paths = export_chromakeys(jobs, SECRET, out_dir=tmp_path, on_progress=events.append, **fast)
    for position, (export, path) in enumerate(zip(sim.exports, paths), start=1):
        mine = [e for e in events if e.position == position]
        kinds = [e.kind for e in mine]
        assert kinds[0] == "submitted" and kinds[-2:] == ["downloading", "done"]
        assert set(kinds[1:-2]) == {"progress"}
        assert all(e.project_key == export.key for e in mine)
        assert mine[-1].path == path


def test_jobs_whose_addresses_share_a_basename_get_distinct_files(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"yesterday's video")
    sim.plan(*[RenderPlan(seconds=0.1, filename="clip.mp4") for _ in jobs])
    paths = export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)
    assert [p.name for p in paths] == ["clip-2.mp4", "clip-3.mp4", "clip-4.mp4"]
    assert [p.read_bytes() for p in paths] == [sim.video(e.key) for e in sim.exports]
    assert (tmp_path / "clip.mp4").read_bytes() == b"yesterday's video"


def test_a_batch_survives_a_flaky_service_and_storage_host(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    for status in (500, 502, 503):
        sim.fault("progress", "status", status=status)
    sim.fault("progress", "reset")
    sim.fault("progress", "html502")
    sim.fault("export", "status", status=429, retry_after="1")
    sim.plan(*[RenderPlan(seconds=0.1, size=1_000_000) for _ in jobs])
    sim.fault("download", "truncate", fraction=0.4)
    sim.fault("download", "redirect", other_host=True)
    paths = export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)
    assert len(sim.exports) == 3  # each job exported exactly once
    assert [p.read_bytes() for p in paths] == [sim.video(e.key) for e in sim.exports]


# --- concurrency ------------------------------------------------------------------


def _six_jobs(jobs: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
    return [dict(job, text=f"{job['text']} ({n})") for n in (1, 2) for job in jobs]


@pytest.mark.parametrize("concurrency", [1, 3])
def test_concurrency_keeps_at_most_n_renders_on_the_service(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path, concurrency: int
) -> None:
    batch = _six_jobs(jobs)
    # Renders long enough for three exports to overlap; one at a time, shorter ones prove it.
    sim.plan(*[RenderPlan(seconds=1 if concurrency > 1 else 0.3) for _ in batch])
    paths = export_chromakeys(batch, SECRET, out_dir=tmp_path, concurrency=concurrency, **fast)
    assert sim.max_in_flight() == concurrency
    assert len(sim.exports) == 6
    assert [p.read_bytes() for p in paths] == [
        sim.video(e.key) for e in sorted(sim.exports, key=lambda e: batch.index(e.body))
    ]


def test_results_keep_job_order_when_renders_finish_out_of_order(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    sim.plan(RenderPlan(seconds=0.9), RenderPlan(seconds=0.5), RenderPlan(seconds=0.1))
    events: List[ProgressEvent] = []
    paths = export_chromakeys(jobs, SECRET, out_dir=tmp_path, concurrency=3, on_progress=events.append, **fast)
    assert [p.read_bytes() for p in paths] == [sim.video(e.key) for e in sim.exports]
    assert [e.position for e in events if e.kind == "done"] == [3, 2, 1]
    for position in (1, 2, 3):
        kinds = [e.kind for e in events if e.position == position]
        # In this order, each at least once (a slow download tells its bytes more than once).
        assert [kind for kind, _ in itertools.groupby(kinds)] == ["submitted", "progress", "downloading", "done"]
        assert kinds.count("submitted") == kinds.count("done") == 1
        progress = [e.progress for e in events if e.position == position and e.kind == "progress"]
        assert progress == sorted(progress)  # type: ignore[type-var]


def test_with_one_slot_the_next_export_waits_for_the_previous_download(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)
    log = sim.requests()
    posts = [i for i, r in enumerate(log) if r.method == "POST"]
    downloads = [i for i, r in enumerate(log) if r.server == "download"]
    assert posts[0] < downloads[0] < posts[1] < downloads[1] < posts[2] < downloads[2]


# --- the journal --------------------------------------------------------------------


def _journal(folder: Path) -> Dict[str, Any]:
    """The journal as its lines say: a header, then one record per change of a job."""
    lines = (folder / ".aistudios-chromakey.json").read_text(encoding="utf-8").splitlines()
    header = json.loads(lines[0])
    assert header == {"format": "aistudios-chromakey journal", "version": 2}
    jobs: Dict[str, Any] = {}
    for line in lines[1:]:
        record = json.loads(line)
        if record.get("forget"):
            jobs.pop(record["job"], None)
        else:
            jobs[record["job"]] = record
    return {"jobs": jobs}


def test_a_finished_batch_run_again_exports_nothing(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    first = export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)
    requests_before = len(sim.log)
    events: List[ProgressEvent] = []
    again = export_chromakeys(jobs, SECRET, out_dir=tmp_path, on_progress=events.append, **fast)
    assert again == first
    assert len(sim.log) == requests_before  # not one request
    assert [(e.kind, e.position) for e in events] == [("done", 1), ("done", 2), ("done", 3)]


def test_the_journal_holds_keys_states_and_files_but_no_secret(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    paths = export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)
    raw = (tmp_path / ".aistudios-chromakey.json").read_text(encoding="utf-8")
    assert SECRET not in raw
    entries = sorted(_journal(tmp_path)["jobs"].values(), key=lambda e: e["position"])
    assert [e["state"] for e in entries] == ["done"] * 3
    assert [e["project_key"] for e in entries] == [e.key for e in sim.exports]
    assert [e["file"] for e in entries] == [p.name for p in paths]


def test_only_the_failed_job_is_exported_again(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    sim.plan(RenderPlan(seconds=0.1), RenderPlan(seconds=0.1, fail_at=0), RenderPlan(seconds=0.1))
    with pytest.raises(BatchError):
        export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)
    paths = export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)
    assert [e.body for e in sim.exports] == [jobs[0], jobs[1], jobs[2], jobs[1]]
    assert paths[1].read_bytes() == sim.video(sim.exports[3].key)


def test_a_render_that_timed_out_is_polled_again_not_exported_again(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    sim.plan(RenderPlan(seconds=1.5), RenderPlan(seconds=0.1), RenderPlan(seconds=0.1))
    with pytest.raises(BatchError, match=r"job 1: project .* not done after 0.3 s"):
        export_chromakeys(jobs, SECRET, out_dir=tmp_path, timeout=0.3, **fast)
    paths = export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)
    assert len(sim.exports) == 3
    assert paths[0].read_bytes() == sim.video(sim.exports[0].key)


def test_a_file_removed_since_is_downloaded_again_without_a_new_export(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    paths = export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)
    paths[1].unlink()
    again = export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)
    assert len(sim.exports) == 3
    assert again[1].read_bytes() == sim.video(sim.exports[1].key)


def test_an_unreadable_journal_stops_before_sending_and_deletes_nothing(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    (tmp_path / ".aistudios-chromakey.json").write_text("{ not json", encoding="utf-8")
    (tmp_path / "earlier.mp4").write_bytes(b"keep me")
    with pytest.raises(JournalError, match=r"cannot be used .*not JSON.*resume=False"):
        export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)
    assert sim.log == []
    assert (tmp_path / ".aistudios-chromakey.json").read_text(encoding="utf-8") == "{ not json"
    assert (tmp_path / "earlier.mp4").read_bytes() == b"keep me"


def test_a_journal_of_another_batch_is_kept_and_extended(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    export_chromakeys(jobs[:1], SECRET, out_dir=tmp_path, **fast)
    export_chromakeys(jobs[1:], SECRET, out_dir=tmp_path, **fast)
    assert len(_journal(tmp_path)["jobs"]) == 3
    export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)
    assert len(sim.exports) == 3


def test_without_resume_there_is_no_journal(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    export_chromakeys(jobs, SECRET, out_dir=tmp_path, resume=False, **fast)
    export_chromakeys(jobs, SECRET, out_dir=tmp_path, resume=False, **fast)
    assert not (tmp_path / ".aistudios-chromakey.json").exists()
    assert len(sim.exports) == 6
    assert len(list(tmp_path.glob("*.mp4"))) == 6


def test_identical_jobs_are_distinct_jobs(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    twice = [jobs[0], jobs[0]]
    paths = export_chromakeys(twice, SECRET, out_dir=tmp_path, **fast)
    assert len(set(paths)) == 2
    export_chromakeys(twice, SECRET, out_dir=tmp_path, **fast)
    assert len(sim.exports) == 2


# --- interrupted runs, in a real process --------------------------------------------

_CHILD = """
import json, sys
from aistudios_chromakey import export_chromakeys
jobs, token, base_url, out_dir = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
export_chromakeys(jobs, token, base_url=base_url, out_dir=out_dir, poll_interval=0.05, concurrency=2)
"""


def _child(sim: Simulator, jobs: List[Dict[str, Any]], out: Path) -> subprocess.Popen[bytes]:
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root))
    argv = [sys.executable, "-c", _CHILD, json.dumps(jobs), SECRET, sim.base_url, str(out)]
    return subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_signal_handling
    )


def _until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 30
    while not condition():
        assert time.monotonic() < deadline, f"never happened: {what}"
        time.sleep(0.02)


@pytest.mark.parametrize(
    "moment, sig",
    [
        ("polling", signal.SIGINT),
        ("polling", signal.SIGTERM),
        ("downloading", signal.SIGINT),
        ("downloading", signal.SIGTERM),
        ("just exported", signal.SIGKILL),
        ("downloading", signal.SIGKILL),
    ],
)
def test_a_killed_batch_run_again_pays_for_nothing_twice(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, moment: str, sig: int
) -> None:
    if moment == "polling":
        sim.plan(RenderPlan(seconds=3), RenderPlan(seconds=3), RenderPlan(seconds=0.2))
        reached = lambda: len(sim.polls()) >= 4  # noqa: E731
    elif moment == "downloading":
        sim.plan(RenderPlan(seconds=0.1, size=2_000_000), RenderPlan(seconds=2), RenderPlan(seconds=0.2))
        sim.fault("download", "stall", fraction=0.5, seconds=30)
        reached = lambda: len(sim.requests("download")) >= 1  # noqa: E731
    else:
        sim.fault("progress", "hang", seconds=30)
        reached = lambda: len(sim.polls()) >= 1  # noqa: E731

    child = _child(sim, jobs, tmp_path)
    _until(reached, moment)
    time.sleep(0.2)  # well inside the moment
    child.send_signal(sig)
    # Well before the stalled download's 30 s: a stopped batch cuts its downloads off.
    _, stderr = child.communicate(timeout=15)
    assert child.returncode != 0
    if sig == signal.SIGINT:  # the library stops cleanly on Ctrl-C; SIGTERM is the command line's to catch
        assert b"Run the same batch again to resume without paying twice" in stderr
        assert not list(tmp_path.glob(".*.part"))
    assert all(p.stat().st_size == len(sim.video(e.key)) for e in sim.exports for p in tmp_path.glob(f"{e.key}*.mp4"))

    sim.plan(RenderPlan(seconds=0.2))  # later exports, if any were wrongly made, render quickly
    again = _child(sim, jobs, tmp_path)
    _, stderr = again.communicate(timeout=60)
    assert again.returncode == 0, stderr.decode()
    assert sorted(json.dumps(e.body) for e in sim.exports) == sorted(json.dumps(j) for j in jobs)  # once each
    assert not list(tmp_path.glob(".*.part"))  # whatever the kill left, the next run cleared
    by_job = {json.dumps(e.body): e.key for e in sim.exports}
    for job in jobs:
        key = by_job[json.dumps(job)]
        assert (tmp_path / f"{key}.mp4").read_bytes() == sim.video(key)


# --- rate limits, expiring links, verified videos --------------------------------------


def test_a_429_pauses_every_job_of_a_concurrent_batch(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    sim.plan(*[RenderPlan(seconds=1) for _ in jobs])
    sim.fault("progress", "status", status=429, retry_after="2")
    export_chromakeys(jobs, SECRET, out_dir=tmp_path, base_url=sim.base_url, concurrency=3, poll_interval=0.1)
    log = sim.requests("api")
    limited = sim.polls()[0]
    later = [r for r in log if r.time > limited.time]
    assert later and min(r.time for r in later) - limited.time >= 2.0
    assert len(sim.exports) == 3


def test_rate_limits_beyond_the_retries_pause_the_batch_instead_of_failing_it(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    sim.plan(*[RenderPlan(seconds=0.5) for _ in jobs])
    limited_polls = 4  # one poll tries at most 3 times on a 429
    sim.fault("progress", "status", status=429, retry_after="1", times=limited_polls)
    paths = export_chromakeys(jobs, SECRET, out_dir=tmp_path, base_url=sim.base_url, concurrency=3, poll_interval=0.1)
    assert [p.read_bytes() for p in paths] == [sim.video(e.key) for e in sim.exports]
    polls = sim.polls()
    for limited, following in zip(polls[:limited_polls], polls[1 : limited_polls + 1]):
        assert following.time - limited.time >= 1.0  # nobody polled during a pause


def test_an_expired_video_link_is_replaced_by_a_fresh_one(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    sim.plan(RenderPlan(seconds=0.1, link_ttl=0.5))
    sim.fault("download", "hang", seconds=1)  # the first attempt dies; its link has expired by then
    [path] = export_chromakeys(jobs[:1], SECRET, out_dir=tmp_path, **fast)
    assert path.read_bytes() == sim.video(sim.exports[0].key)
    assert len(sim.exports) == 1
    downloads = sim.requests("download")
    assert len(downloads) >= 3 and len({r.path for r in downloads}) >= 2  # a new signed address was used


def test_an_html_page_sent_as_the_video_is_never_saved(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    page = b"<!DOCTYPE html><html><body>Please sign in</body></html>"
    sim.fault("download", "status", status=200, body=page, content_type="text/html")
    with pytest.raises(BatchError, match=r"did not send a video .*text/html") as caught:
        export_chromakeys(jobs[:1], SECRET, out_dir=tmp_path, **fast)
    assert caught.value.paths == [None]
    assert [p.name for p in tmp_path.iterdir()] == [".aistudios-chromakey.json"]
    [path] = export_chromakeys(jobs[:1], SECRET, out_dir=tmp_path, **fast)  # a re-run fetches it, unpaid
    assert path.read_bytes() == sim.video(sim.exports[0].key) and len(sim.exports) == 1


def test_each_file_is_reported_with_its_size_and_sha256(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    events: List[ProgressEvent] = []
    paths = export_chromakeys(jobs, SECRET, out_dir=tmp_path, on_progress=events.append, **fast)
    done = [e for e in events if e.kind == "done"]
    journal = {e["file"]: e for e in _journal(tmp_path)["jobs"].values()}
    for event, path in zip(done, paths):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert (event.size, event.sha256) == (path.stat().st_size, digest)
        assert (journal[path.name]["size"], journal[path.name]["sha256"]) == (event.size, digest)
    again: List[ProgressEvent] = []
    export_chromakeys(jobs, SECRET, out_dir=tmp_path, on_progress=again.append, **fast)
    assert [(e.size, e.sha256) for e in again] == [(e.size, e.sha256) for e in done]


def test_a_finished_file_changed_since_is_fetched_again_beside_it(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    paths = export_chromakeys(jobs[:1], SECRET, out_dir=tmp_path, **fast)
    paths[0].write_bytes(b"cut short by an editor")
    [again] = export_chromakeys(jobs[:1], SECRET, out_dir=tmp_path, **fast)
    assert again != paths[0] and again.read_bytes() == sim.video(sim.exports[0].key)
    assert paths[0].read_bytes() == b"cut short by an editor"  # never overwritten
    assert len(sim.exports) == 1


def test_a_run_killed_while_its_export_awaits_an_answer_never_exports_that_job_again(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    sim.fault("export", "hang", seconds=30)  # the service may be taking it: we cannot know
    child = _child(sim, jobs, tmp_path)
    _until(lambda: len(sim.requests("api")) >= 1, "the first export sent")
    child.send_signal(signal.SIGINT)
    child.communicate(timeout=30)
    again = _child(sim, jobs, tmp_path)
    _, stderr = again.communicate(timeout=60)
    assert again.returncode != 0
    assert b"job 1: an earlier run sent its export but lost the answer" in stderr
    posts = [r.json() for r in sim.requests("api") if r.method == "POST"]
    assert posts.count(jobs[0]) == 1  # never a second, possibly paid, export
    assert sorted(json.dumps(e.body) for e in sim.exports) == sorted(json.dumps(j) for j in jobs[1:])


def test_a_second_run_on_the_same_folder_is_refused_before_sending(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    import fcntl

    other_run = os.open(tmp_path, os.O_RDONLY)
    fcntl.flock(other_run, fcntl.LOCK_EX)
    try:
        with pytest.raises(JournalError, match="another run is using the output folder"):
            export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)
        # Without a journal too: a normal run's cleaning would take its downloads for a killed run's.
        with pytest.raises(JournalError, match="another run is using the output folder"):
            export_chromakeys(jobs, SECRET, out_dir=tmp_path, resume=False, **fast)
    finally:
        os.close(other_run)
    assert sim.log == []
    assert len(export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)) == 3  # free again once it ends


def test_fresh_addresses_are_asked_for_a_bounded_number_of_times(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    sim.plan(RenderPlan(seconds=0, link_ttl=-1))  # every address is born expired
    with pytest.raises(BatchError, match="HTTP 403"):
        export_chromakeys(jobs[:1], SECRET, out_dir=tmp_path, **fast)
    assert len(sim.requests("download")) == 4  # the first address and three fresh ones
    assert len(sim.exports) == 1


def test_a_long_rate_limit_pause_does_not_outlive_a_jobs_deadline(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    sim.plan(RenderPlan(seconds=30))
    sim.fault("progress", "status", status=429, retry_after="100", times=100)
    with pytest.raises(BatchError, match=r"job 1: project \w+: not done after 1 s"):
        export_chromakeys(jobs[:1], SECRET, out_dir=tmp_path, base_url=sim.base_url, timeout=1, poll_interval=0.1)
    # One poll: its Retry-After (100 s) is too long to wait out inside the request, and asking
    # again sooner would ignore it; the job's deadline, not the 100 s, ends the wait.
    assert len(sim.polls()) == 1


# --- choosing names, and nothing paid for a run that cannot finish ---------------------


def test_each_job_may_name_its_file_and_that_name_is_never_sent(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    named = [dict(jobs[0], filename="인사-첫번째.mp4"), jobs[1], dict(jobs[2], filename="third.mov")]
    paths = export_chromakeys(named, SECRET, out_dir=tmp_path, **fast)
    assert [p.name for p in paths] == ["인사-첫번째.mp4", f"{sim.exports[1].key}.mp4", "third.mov"]
    assert all("filename" not in e.body for e in sim.exports)
    assert [e.body for e in sim.exports] == jobs


def test_a_template_names_every_file_of_the_batch(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    paths = export_chromakeys(jobs, SECRET, out_dir=tmp_path, filename_template="{position:02d}-{text}", **fast)
    assert [p.name for p in paths] == [
        "01-안녕하세요, 저는 첫번째 작업입니다.mp4",
        "02-안녕하세요, 저는 두번째 작업입니다.mp4",
        "03-안녕하세요, 저는 세번째 작업입니다.mp4",
    ]
    assert paths[1].read_bytes() == sim.video(sim.exports[1].key)


def test_a_bad_template_is_refused_before_anything_is_sent(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=r"\{title\}, which is not one of"):
        export_chromakeys(jobs, SECRET, out_dir=tmp_path, filename_template="{title}", **fast)
    assert sim.log == []


@pytest.mark.parametrize("resume", [True, False])
def test_an_output_folder_that_cannot_hold_videos_is_refused_before_paying(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path, resume: bool
) -> None:
    (tmp_path / "not-a-folder").write_text("a file where the folder should be")
    with pytest.raises(JournalError, match=r"cannot save videos in the output folder.*nothing was sent") as caught:
        export_chromakeys(jobs, SECRET, out_dir=tmp_path / "not-a-folder" / "videos", resume=resume, **fast)
    assert caught.value.nothing_sent
    assert sim.log == []


def test_a_full_disk_is_refused_before_paying(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistudios_chromakey import _batch as preflight

    monkeypatch.setattr(preflight, "MIN_FREE_BYTES", 1 << 60)  # more than any disk has
    with pytest.raises(JournalError, match="MiB free, not enough for a video"):
        export_chromakeys(jobs, SECRET, out_dir=tmp_path, resume=False, **fast)
    assert sim.log == []


def test_a_host_that_refuses_connections_stops_the_batch_with_one_message(
    jobs: List[Dict[str, Any]], tmp_path: Path, caplog: pytest.LogCaptureFixture, refused_port: int
) -> None:
    port = refused_port
    caplog.set_level(logging.DEBUG, logger="aistudios_chromakey")
    with pytest.raises(ServiceError, match=r"connection was refused.*nothing was sent") as caught:
        export_chromakeys(jobs * 3, SECRET, base_url=f"http://127.0.0.1:{port}", out_dir=tmp_path)
    assert caught.value.unreachable
    assert "job 1" in str(caught.value)
    assert not [r for r in caplog.records if "job 2" in r.getMessage()]  # the other eight were never tried


def test_a_name_that_does_not_resolve_is_told_from_a_refused_connection(
    jobs: List[Dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import socket

    real = socket.getaddrinfo

    def resolver(host: Any, *args: Any, **kwargs: Any) -> Any:
        if host == "api.example.invalid":  # resolved here, so that no query leaves the machine
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolver)
    with pytest.raises(ServiceError, match=r"could not be resolved \(DNS\)"):
        export_chromakeys(jobs, SECRET, base_url="http://api.example.invalid", out_dir=tmp_path)


def test_a_chosen_name_without_an_extension_gets_mp4(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    paths = export_chromakeys([dict(jobs[0], filename="인사")], SECRET, out_dir=tmp_path, **fast)
    assert [p.name for p in paths] == ["인사.mp4"]


# --- stranded exports and leftovers ---------------------------------------------------


def test_a_key_the_journal_could_not_keep_is_adopted_not_paid_again(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    key = request_export(jobs[1], SECRET, base_url=sim.base_url)  # paid; its key only printed
    paths = export_chromakeys(jobs, SECRET, out_dir=tmp_path, adopt={2: key}, **fast)
    assert sorted(json.dumps(e.body) for e in sim.exports) == sorted(json.dumps(j) for j in jobs)  # once each
    assert paths[1].read_bytes() == sim.video(key)
    assert _journal(tmp_path)["jobs"]
    export_chromakeys(jobs, SECRET, out_dir=tmp_path, **fast)  # and the journal remembers it
    assert len(sim.exports) == 3


@pytest.mark.parametrize(
    "adopt, message",
    [({4: "k"}, "not the position of a job"), ({0: "k"}, "not the position"), ({1: " "}, "non-empty string")],
)
def test_adopting_checks_positions_and_keys_before_sending(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path, adopt: Any, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        export_chromakeys(jobs, SECRET, out_dir=tmp_path, adopt=adopt, **fast)
    assert sim.log == []


def test_a_run_removes_the_temporary_files_a_killed_run_left_and_nothing_else(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    leftovers = [".clip.mp4.0a1b2c3d.part", ".aistudios-chromakey.json.x8_k2.tmp"]
    kept = ["notes.part", ".hidden", "clip.mp4", ".clip.mp4.NOTHEX00.part"]
    for name in leftovers + kept:
        (tmp_path / name).write_bytes(b"x")
    export_chromakeys(jobs[:1], SECRET, out_dir=tmp_path, **fast)
    assert not [name for name in leftovers if (tmp_path / name).exists()]
    assert all((tmp_path / name).read_bytes() == b"x" for name in kept)


# --- downloads beside the scheduler ------------------------------------------------------


def test_a_long_download_does_not_stop_other_renders_from_being_polled(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    sim.download_rate = 1_000_000  # bytes per second per connection, as a storage host gives
    sim.plan(RenderPlan(seconds=0.1, size=2_000_000), RenderPlan(seconds=1.0), RenderPlan(seconds=1.0))
    paths = export_chromakeys(jobs, SECRET, base_url=sim.base_url, out_dir=tmp_path, concurrency=3,
                              poll_interval=0.1)  # fmt: skip
    first = sim.exports[0].key
    fetched = [r.time for r in sim.requests("download") if first in r.path]
    others = [r.time for r in sim.polls() if first not in r.path]
    during = [t for t in others if fetched[0] < t < fetched[0] + 1.5]  # the first video takes about 2 s
    assert len(during) >= 3, "the other renders were not polled while the first video downloaded"
    assert [p.read_bytes() for p in paths] == [sim.video(e.key) for e in sim.exports]


def test_downloads_report_their_bytes(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    sim.download_rate = 2_000_000
    sim.plan(RenderPlan(seconds=0.1, size=1_500_000))
    events: List[ProgressEvent] = []
    export_chromakeys(jobs[:1], SECRET, base_url=sim.base_url, out_dir=tmp_path, on_progress=events.append,
                      poll_interval=0.05)  # fmt: skip
    received = [e.received for e in events if e.kind == "downloading" and e.received]
    assert received == sorted(received) and len(received) >= 2
    assert {e.total for e in events if e.kind == "downloading" and e.received} == {1_500_000}
    done = [e for e in events if e.kind == "done"]
    assert done[0].size == 1_500_000


def test_a_video_saved_just_before_a_kill_is_not_saved_again_beside_itself(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    paths = export_chromakeys(jobs[:1], SECRET, out_dir=tmp_path, **fast)
    journal = tmp_path / ".aistudios-chromakey.json"
    # The journal as a kill between the video's link and the journal's "done" leaves it.
    lines = [line for line in journal.read_text(encoding="utf-8").splitlines() if '"done"' not in line]
    lines.append(json.dumps({"job": json.loads(lines[1])["job"], "position": 1, "state": "submitted",
                             "project_key": sim.exports[0].key}))  # fmt: skip
    journal.write_text("\n".join(lines) + "\n", encoding="utf-8")
    again = export_chromakeys(jobs[:1], SECRET, out_dir=tmp_path, **fast)
    assert again == paths
    assert sorted(p.name for p in tmp_path.glob("*.mp4")) == [paths[0].name]  # no "-2" copy
    assert len(sim.exports) == 1


def test_show_progress_is_one_word_for_each_tenth_of_every_render(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    import io

    from aistudios_chromakey import show_progress

    stream = io.StringIO()
    library = logging.getLogger("aistudios_chromakey")
    level, handlers = library.level, list(library.handlers)
    try:
        show_progress(stream)
        show_progress(stream)  # twice: still one line per step
        sim.plan(RenderPlan(seconds=1.0))
        export_chromakeys(jobs[:1], SECRET, out_dir=tmp_path, **fast)
    finally:
        library.setLevel(level)
        library.handlers[:] = handlers
    lines = stream.getvalue().splitlines()
    percents = [line for line in lines if re.search(r"job 1: project \w+: \d+% after \d+ s", line)]
    assert 3 <= len(percents) <= 11  # a line per tenth, not per poll
    assert any("about" in line and "s left" in line for line in percents)
    assert any("job 1 done" in line for line in lines)
    assert len(lines) == len(set(lines))
    assert SECRET not in stream.getvalue()


def test_videos_moved_away_after_the_service_let_their_projects_go_are_never_exported_again(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    paths = export_chromakeys(jobs[:2], SECRET, out_dir=tmp_path, **fast)
    published = tmp_path / "published"
    published.mkdir()
    for path in paths:
        path.rename(published / path.name)  # moved away to be published
    sim.purge()
    for _ in range(3):
        with pytest.raises(BatchError) as caught:
            export_chromakeys(jobs[:2], SECRET, out_dir=tmp_path, **fast)
        assert [position for position, _ in caught.value.failures] == [1, 2]
        assert "It is not exported again" in str(caught.value)
    assert len(sim.exports) == 2


def test_one_slow_poll_neither_starves_the_other_renders_nor_makes_them_miss_their_deadline(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistudios_chromakey import _polling as polling

    monkeypatch.setattr(polling, "POLL_SECONDS", 1.0)
    sim.plan(*[RenderPlan(seconds=0.2) for _ in jobs])
    sim.fault("progress", "trickle", rate=2.0, times=2)  # two polls whose answers take minutes
    paths = export_chromakeys(jobs, SECRET, base_url=sim.base_url, out_dir=tmp_path, poll_interval=0.05,
                              timeout=3.0, concurrency=3)  # fmt: skip
    assert [p.read_bytes() for p in paths] == [sim.video(e.key) for e in sim.exports]
    assert len(sim.exports) == 3


@pytest.mark.parametrize("concurrency", [1, 3])
def test_the_library_starts_only_the_threads_the_readme_names_and_none_outlives_a_call(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, concurrency: int
) -> None:
    import threading

    from aistudios_chromakey import download_video, request_export, wait_for_video

    started: List[str] = []
    alive = [0]
    real = threading.Thread.start

    def start(thread: threading.Thread) -> None:
        if threading.current_thread() is threading.main_thread():  # not the simulator's own
            started.append(thread.name)
            alive[0] = max(alive[0], sum(t.name.startswith("aistudios") for t in threading.enumerate()) + 1)
        real(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    export_chromakeys(jobs, SECRET, base_url=sim.base_url, out_dir=tmp_path, poll_interval=0.05,
                      concurrency=concurrency)  # fmt: skip
    key = request_export(jobs[0], SECRET, base_url=sim.base_url)
    download_video(wait_for_video(key, SECRET, base_url=sim.base_url, poll_interval=0.05), tmp_path)
    names = set(started)
    if concurrency == 1:
        assert names == {"aistudios-chromakey watchdog"} and alive[0] == 1
    else:
        assert names - {"aistudios-chromakey watchdog"} <= {f"aistudios-download_{n}" for n in range(3)}
    assert [t.name for t in threading.enumerate() if t.name.startswith("aistudios")] == []


def test_a_text_past_the_bound_is_refused_before_anything_is_sent_unless_the_bound_is_raised(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    from aistudios_chromakey import Client, InvalidJob

    long = [jobs[0], dict(jobs[1], text="가" * 200_000)]
    with pytest.raises(InvalidJob, match=r"job 2.*text.*200,000 characters.*50,000.*max_text_length") as caught:
        export_chromakeys(long, SECRET, base_url=sim.base_url, out_dir=tmp_path)
    assert caught.value.position == 2 and caught.value.field == "text"
    assert sim.log == []
    with Client(SECRET, base_url=sim.base_url, max_text_length=200_000) as client:
        paths = export_chromakeys(long, out_dir=tmp_path, poll_interval=0.05, client=client)
    assert len(paths) == 2 and len(sim.exports[1].body["text"]) == 200_000


def test_a_failed_answer_is_told_at_once_though_only_a_persisting_one_fails_the_job(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    sim.plan(RenderPlan(seconds=0.1, fail_at=0))
    events: List[ProgressEvent] = []
    with pytest.raises(BatchError):
        export_chromakeys(jobs[:1], SECRET, out_dir=tmp_path, on_progress=events.append, **fast)
    kinds = [(e.kind, e.state) for e in events]
    doubted = kinds.index(("progress", "the service says it failed; asking again"))
    assert doubted < kinds.index(("failed", None))  # shown before the failure persists


def test_a_concurrent_batch_waits_for_its_renders_without_spinning(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    sim.plan(*[RenderPlan(seconds=2.0) for _ in jobs])
    cpu, wall = time.process_time(), time.monotonic()
    export_chromakeys(jobs, SECRET, base_url=sim.base_url, out_dir=tmp_path, concurrency=3)
    cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    # Mostly asleep between polls (the simulator in this process included): a busy loop takes a whole core.
    assert cpu < 0.5 * wall, (cpu, wall)


def test_a_fresh_address_is_asked_for_even_after_the_renders_deadline(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    sim.plan(RenderPlan(seconds=0.5))
    sim.fault("download", "stall", fraction=0.5, seconds=1.2)  # the first download outlives the deadline...
    sim.fault("download", "status", status=403)  # ...and its resume is refused: the signed address expired
    paths = export_chromakeys(jobs[:1], SECRET, base_url=sim.base_url, out_dir=tmp_path, poll_interval=0.05,
                              timeout=1.0)  # fmt: skip
    assert paths[0].read_bytes() == sim.video(sim.exports[0].key) and len(sim.exports) == 1
