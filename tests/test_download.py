"""download_video against the simulator's download host, over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import pytest
import requests

from aistudios_chromakey import DownloadError, download_video, request_export, wait_for_video
from aistudios_chromakey.simulator import RenderPlan, Simulator

from .conftest import SECRET


def _finished(sim: Simulator, jobs: List[Dict[str, Any]], **plan: Any) -> str:
    sim.plan(RenderPlan(seconds=0, **plan))
    key = request_export(jobs[0], SECRET, base_url=sim.base_url)
    return wait_for_video(key, SECRET, base_url=sim.base_url, poll_interval=0.05)


def test_the_video_is_saved_under_the_basename_of_its_address(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs, filename="my%20clip.mp4")
    path = download_video(url, tmp_path)
    assert path == tmp_path / "my clip.mp4"
    assert path.read_bytes() == sim.video(sim.exports[0].key)


def test_the_output_folder_is_created_if_missing(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    url = _finished(sim, jobs)
    path = download_video(url, tmp_path / "a" / "videos")
    assert path.parent == tmp_path / "a" / "videos"
    assert path.is_file()


def test_the_default_folder_is_videos_in_the_working_directory(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _finished(sim, jobs)
    monkeypatch.chdir(tmp_path)
    path = download_video(url)
    assert path.resolve().parent == tmp_path / "videos"


def test_the_caller_may_choose_the_name(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    url = _finished(sim, jobs)
    assert download_video(url, tmp_path, filename="intro.mp4") == tmp_path / "intro.mp4"


@pytest.mark.parametrize("name", ["../escape.mp4", "sub/clip.mp4", "..", ""])
def test_a_chosen_name_cannot_leave_the_folder(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="plain file name"):
        download_video("http://127.0.0.1:9/x.mp4", tmp_path, filename=name)


def test_an_existing_file_is_never_replaced(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    url = _finished(sim, jobs, filename="clip.mp4")
    (tmp_path / "clip.mp4").write_bytes(b"an earlier video")
    path = download_video(url, tmp_path)
    assert path == tmp_path / "clip-2.mp4"
    assert (tmp_path / "clip.mp4").read_bytes() == b"an earlier video"
    assert path.read_bytes() == sim.video(sim.exports[0].key)


def test_the_download_host_never_receives_the_api_key(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs)
    session = requests.Session()
    session.headers["Authorization"] = SECRET  # even a session that carries it by default
    download_video(url, tmp_path, session=session)
    session.close()
    [get] = sim.requests("download")
    assert "Authorization" not in get.headers
    assert all(SECRET not in value for value in get.headers.values())


def test_no_file_is_left_when_the_host_refuses(sim: Simulator, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download_video(sim.download_url + "/v/unknown/clip.mp4", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_large_video_arrives_whole(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    url = _finished(sim, jobs, size=5 * 1024 * 1024 + 17)
    path = download_video(url, tmp_path)
    assert path.stat().st_size == 5 * 1024 * 1024 + 17
    assert path.read_bytes() == sim.video(sim.exports[0].key)
