"""export_chromakeys, the tutorial's whole loop, against the simulator."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict, List

import pytest

from aistudios_chromakey import (
    AuthenticationError,
    BatchError,
    InvalidJob,
    ProgressEvent,
    RenderFailed,
    download_video,
    export_chromakeys,
    request_export,
    wait_for_video,
)
from aistudios_chromakey.simulator import RenderPlan, Simulator

from .conftest import SECRET


@pytest.mark.parametrize("api", ["legacy", "v3"])
def test_the_tutorials_three_jobs_end_as_the_served_videos(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path, api: str
) -> None:
    paths = export_chromakeys(jobs, SECRET, api=api, out_dir=tmp_path, **fast)

    assert [e.body for e in sim.exports] == jobs
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
