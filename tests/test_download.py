"""download_video against the simulator's download host, over real HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional
from urllib.parse import quote

import pytest
import requests
from hypothesis import given, settings
from hypothesis import strategies as st

from aistudios_chromakey import DownloadError, download_video, request_export, wait_for_video
from aistudios_chromakey import _http as download
from aistudios_chromakey._http import looks_like_video, storage_session
from aistudios_chromakey._jobs import safe_filename
from aistudios_chromakey.simulator import RenderPlan, Simulator

from .conftest import SECRET

JOB = {"language": "ko", "text": "hi", "model": "M000004017", "clothes": "BG00006160"}


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


# --- cut-offs, stalls, redirects ---------------------------------------------------

SIZE = 3 * 1024 * 1024 + 5


def test_a_cut_off_download_resumes_with_a_range_request(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs, size=SIZE)
    sim.fault("download", "truncate", fraction=0.5)
    path = download_video(url, tmp_path)
    assert path.read_bytes() == sim.video(sim.exports[0].key)
    first, second = sim.requests("download")
    assert "Range" not in first.headers
    start = int(second.headers["Range"].removeprefix("bytes=").removesuffix("-"))
    assert 0 < start <= SIZE // 2  # from the last whole chunk that arrived
    assert second.headers["If-Range"].startswith('"')


def test_a_cut_off_download_restarts_where_ranges_are_ignored(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs, size=SIZE)
    sim.ranges = False
    sim.fault("download", "truncate", fraction=0.7)
    path = download_video(url, tmp_path)
    assert path.read_bytes() == sim.video(sim.exports[0].key)
    assert len(sim.requests("download")) == 2


def test_a_stalled_download_times_out_and_resumes(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    url = _finished(sim, jobs, size=SIZE)
    sim.fault("download", "stall", fraction=0.3, seconds=30)
    path = download_video(url, tmp_path, request_timeout=(5, 0.5))
    assert path.read_bytes() == sim.video(sim.exports[0].key)


def test_a_download_cut_off_every_time_fails_saying_how_much_arrived(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs, size=SIZE)
    sim.ranges = False
    sim.fault("download", "truncate", fraction=0.5, times=100)
    with pytest.raises(DownloadError, match=rf"only \d+ of {SIZE} bytes arrived after 5 attempts"):
        download_video(url, tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither a short file nor a temporary one


def test_ctrl_c_during_a_download_leaves_nothing_under_the_final_name(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs, size=SIZE)
    sim.fault("download", "stall", fraction=0.5, seconds=30)

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    signal.setitimer(signal.ITIMER_REAL, 0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            download_video(url, tmp_path)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert len(sim.requests("download")) == 1  # it was interrupted mid-body, not before
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("other_host", [False, True])
def test_redirects_are_followed_without_the_api_key(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, other_host: bool
) -> None:
    url = _finished(sim, jobs)
    sim.fault("download", "redirect", other_host=other_host)
    session = requests.Session()
    session.headers["Authorization"] = SECRET
    path = download_video(url, tmp_path, session=session)
    session.close()
    assert path.read_bytes() == sim.video(sim.exports[0].key)
    seen = sim.requests("download") + sim.requests("mirror")
    assert len(seen) == 2 and len(sim.requests("mirror")) == (1 if other_host else 0)
    assert all("Authorization" not in r.headers for r in seen)


# --- safe names -----------------------------------------------------------------

HOSTILE = [
    ("..%2F..%2Fx.mp4", "x.mp4"),
    ("a/b/../../x.mp4", "x.mp4"),
    ("%2E%2E%5C%2E%2E%5Cwin.mp4", "win.mp4"),
    ("", None),  # empty basename: named after the project key
    ("n" * 300 + ".mp4", None),
    ("bell%07and%0Anewline%00.mp4", "bell_and_newline_.mp4"),
    ("CON", "_CON.mp4"),
    ("con.mp4", "_con.mp4"),
    ("..hidden.mp4", "hidden.mp4"),
    ("no-extension", "no-extension.mp4"),
]


@pytest.mark.parametrize("basename, expected", HOSTILE)
def test_hostile_basenames_yield_a_file_inside_the_folder(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, basename: str, expected: Optional[str]
) -> None:
    out = tmp_path / "videos"
    out.mkdir()
    (tmp_path / "x.mp4").write_bytes(b"not to be touched")
    url = _finished(sim, jobs, filename=basename)
    path = download_video(url, out, project_key=sim.exports[0].key)
    assert path.parent == out
    assert [p.name for p in out.iterdir()] == [path.name]
    assert path.read_bytes() == sim.video(sim.exports[0].key)
    assert (tmp_path / "x.mp4").read_bytes() == b"not to be touched"
    if expected is not None:
        assert path.name == expected
    elif basename == "":
        assert path.name == f"{sim.exports[0].key}.mp4"
    else:
        assert len(path.name.encode()) <= 150 and path.name.endswith(".mp4")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=400))
def test_the_sanitised_name_never_escapes_is_never_empty_or_long_and_is_stable(raw: str) -> None:
    url = "https://storage.example/v/key/" + quote(raw, safe="/%")
    name = safe_filename(url, "fallback-key")
    assert name and len(name.encode("utf-8")) <= 150
    assert "/" not in name and "\\" not in name and "\x00" not in name
    assert not name.startswith(".")
    folder = Path("/srv/videos")
    assert (folder / name).parent == folder
    assert os.path.normpath(folder / name).startswith(str(folder) + os.sep)
    assert safe_filename(url, "fallback-key") == name
    assert safe_filename("https://storage.example/" + quote(name), "other") == name  # already safe: unchanged


# --- is it a video? -----------------------------------------------------------------


@pytest.mark.parametrize(
    "body, content_type",
    [
        (b"<!DOCTYPE html><html><body>Access denied</body></html>", "text/html"),
        (b"<?xml version='1.0'?><Error><Code>AccessDenied</Code></Error>", "application/xml"),
        (b'{"error": "expired"}', "video/mp4"),  # a lying content type changes nothing
    ],
)
def test_an_error_page_with_status_200_is_not_saved_as_a_video(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, body: bytes, content_type: str
) -> None:
    url = _finished(sim, jobs)
    sim.fault("download", "status", status=200, body=body, content_type=content_type)
    with pytest.raises(DownloadError, match="did not send a video"):
        download_video(url, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_expired_signed_link_is_refused_with_its_status(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs, link_ttl=0.2)
    assert "signature=" in url
    time.sleep(0.3)
    with pytest.raises(DownloadError, match="HTTP 403") as caught:
        download_video(url, tmp_path)
    assert caught.value.status == 403
    assert list(tmp_path.iterdir()) == []


def test_a_redirect_loop_is_a_download_error(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    url = _finished(sim, jobs)
    sim.fault("download", "redirect", times=100)
    with pytest.raises(DownloadError, match="TooManyRedirects"):
        download_video(url, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_session_credentials_never_reach_the_download_host(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs)
    session = requests.Session()
    session.auth = ("someone", SECRET)
    download_video(url, tmp_path, session=session)
    session.close()
    assert all("Authorization" not in r.headers for r in sim.requests("download"))


@pytest.mark.parametrize(
    "head, total, video",
    [
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", 10_000, True),
        (b"\x00\x00\x00\x08free\x00\x00\x10\x00mdat", 10_000, True),
        (b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\xf7\x81", None, True),  # WebM
        (b"RIFF\x10\x00\x00\x00AVI LIST", None, True),
        (b"The free trial has ended", 24, False),  # 'free' at offset 4, as text
        (b"RIFF\x10\x00\x00\x00WAVEfmt ", None, False),  # audio, not video
        (b"Gateway Timeout", None, False),
    ],
)
def test_the_video_check_knows_containers_from_text(head: bytes, total: Optional[int], video: bool) -> None:
    assert looks_like_video(head, total) is video


def test_a_reserved_name_with_a_trailing_blank_is_defused() -> None:
    assert safe_filename("https://h/v/k/CON%20.mp4") == "_CON.mp4"


def test_a_chosen_name_too_long_for_a_file_system_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at most 150 bytes"):
        download_video("http://127.0.0.1:9/x.mp4", tmp_path, filename="n" * 300 + ".mp4")


# --- wall-clock bounds ---------------------------------------------------------------


def test_a_download_trickling_a_byte_a_second_is_cut_and_fails(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _finished(sim, jobs)
    monkeypatch.setattr(download, "ATTEMPTS", 2)
    monkeypatch.setattr(download, "STALL_SECONDS", 0.5, raising=False)
    sim.fault("download", "trickle", rate=1.0, times=100)
    # Each read waits less than the read timeout: only a wall-clock bound ends it.
    with pytest.raises(DownloadError, match="after 2 attempts"):
        download_video(url, tmp_path, request_timeout=(1, 1.5))
    assert len(sim.requests("download")) == 2
    assert list(tmp_path.iterdir()) == []


def test_a_trickle_is_cut_and_the_next_attempt_completes(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _finished(sim, jobs, size=SIZE)
    monkeypatch.setattr(download, "STALL_SECONDS", 0.5, raising=False)
    sim.fault("download", "trickle", rate=2000.0)  # headers at once, the body at a crawl
    path = download_video(url, tmp_path, request_timeout=(0.5, 0.5))
    assert path.read_bytes() == sim.video(sim.exports[0].key)
    assert len(sim.requests("download")) == 2


def test_a_slow_but_steady_download_outlasts_its_first_deadline(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = _finished(sim, jobs, size=600_000)
    monkeypatch.setattr(download, "STALL_SECONDS", 1.0, raising=False)
    sim.download_rate = 300_000.0  # two seconds in all, a chunk every fifth of a second
    path = download_video(url, tmp_path, request_timeout=(0.5, 0.5))
    assert path.read_bytes() == sim.video(sim.exports[0].key)
    assert len(sim.requests("download")) == 1  # never cut: each chunk pushed the deadline on


# --- what the body may be --------------------------------------------------------------


def _save(url: str, folder: Path, **options: Any) -> download.SavedVideo:
    """download.save_video as the client calls it, with the options under test."""
    with storage_session() as session:
        return download.save_video(session, url, folder, "clip.mp4", (5, 5), **options)


def test_a_gzip_bomb_is_refused_before_it_is_inflated(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs)
    sim.fault("download", "gzip", size=2_000_000_000)
    with pytest.raises(DownloadError, match="compressed the video although asked not to"):
        download_video(url, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_compressed_video_is_refused_rather_than_saved_compressed_or_inflated(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs)
    sim.fault("download", "gzip")
    with pytest.raises(DownloadError, match="gzip"):
        download_video(url, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_endless_body_is_refused_past_max_bytes_without_writing_past_it(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs)
    sim.fault("download", "endless")
    with pytest.raises(DownloadError, match="more than the 200000 bytes allowed"):
        _save(url, tmp_path, max_bytes=200_000)
    assert list(tmp_path.iterdir()) == []


def test_a_video_announced_larger_than_max_bytes_is_refused_before_its_body(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs, size=SIZE)
    with pytest.raises(DownloadError, match=f"announces {SIZE} bytes, more than the 1000000 bytes allowed"):
        _save(url, tmp_path, max_bytes=1_000_000)
    assert list(tmp_path.iterdir()) == []


def test_a_part_longer_than_its_content_range_is_refused_at_the_announced_end(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs, size=SIZE)
    video = sim.video(sim.exports[0].key)
    cut = SIZE // 2
    etag = requests.head(url, timeout=5).headers["ETag"]
    sim.fault("download", "truncate", fraction=0.5)
    sim.fault(
        "download", "status", status=206, body=video[cut:] + b"\0" * 100_000, content_type="video/mp4",
        headers={"Content-Range": f"bytes {cut}-{SIZE - 1}/{SIZE}", "ETag": etag},
    )  # fmt: skip
    with pytest.raises(DownloadError, match="more bytes than announced"):
        download_video(url, tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- a cut file is never called done -------------------------------------------------------


@pytest.mark.parametrize("size", [None, SIZE])  # cut inside the clip's mdat box, or inside the padding
def test_a_body_without_length_cut_cleanly_is_resumed_not_saved(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, size: Optional[int]
) -> None:
    url = _finished(sim, jobs, size=size)
    sim.content_length = False  # the body ends when the connection closes
    sim.fault("download", "truncate", fraction=0.6)
    path = download_video(url, tmp_path)
    assert path.read_bytes() == sim.video(sim.exports[0].key)
    _, second = sim.requests("download")
    assert "Range" in second.headers


def test_a_body_without_length_cut_every_time_is_not_saved(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs, size=SIZE)
    sim.content_length = False
    sim.ranges = False
    sim.fault("download", "truncate", fraction=0.6, times=100)
    with pytest.raises(DownloadError, match=r"after 5 attempts \(the file ends inside its MP4 box"):
        download_video(url, tmp_path)
    assert list(tmp_path.iterdir()) == []


# --- no splicing --------------------------------------------------------------------------


@pytest.mark.parametrize("new_size", [None, SIZE + 1000, SIZE - 1000])
def test_a_part_of_a_replaced_video_is_never_spliced_onto_the_old_bytes(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, new_size: Optional[int]
) -> None:
    url = _finished(sim, jobs, size=SIZE)
    key = sim.exports[0].key
    sim.if_range = False  # the host answers 206 to any Range, even for a stale validator
    sim.fault("download", "truncate", fraction=0.5)

    def replace_after_first_answer(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        if len(sim.requests("download")) == 1:
            sim.replace_video(key, size=new_size)  # re-uploaded while the first answer is being cut

    with storage_session() as session:
        session.hooks["response"].append(replace_after_first_answer)
        saved = download.save_video(session, url, tmp_path, "clip.mp4", (5, 5))
    assert saved.path.read_bytes() == sim.video(key)
    assert [r.headers.get("Range") is not None for r in sim.requests("download")] == [False, True, False]


def test_a_part_whose_total_changed_restarts_from_the_first_byte(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs, size=SIZE)
    video = sim.video(sim.exports[0].key)
    etag = requests.head(url, timeout=5).headers["ETag"]
    cut = SIZE // 2
    sim.fault("download", "truncate", fraction=0.5)
    sim.fault(
        "download", "status", status=206, body=video[cut:], content_type="video/mp4",
        headers={"Content-Range": f"bytes {cut}-{SIZE - 1}/{SIZE + 7}", "ETag": etag},
    )  # fmt: skip
    path = download_video(url, tmp_path)
    assert path.read_bytes() == video
    assert len(sim.requests("download")) == 1 + 3  # the HEAD, the cut, the odd part, the restart


# --- integrity where offered ----------------------------------------------------------------

CHECKS = {
    "etag-md5": "md5 (ETag)",
    "content-md5": "Content-MD5",
    "sha256": "sha256 (x-amz-checksum-sha256)",
}


@pytest.mark.parametrize("integrity, verified", [*CHECKS.items(), ("none", None), ("multipart-etag", None)])
def test_the_check_the_host_offers_is_made_and_named(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, integrity: str, verified: Optional[str]
) -> None:
    url = _finished(sim, jobs, size=SIZE)
    sim.integrity = integrity
    saved = _save(url, tmp_path)
    assert saved.path.read_bytes() == sim.video(sim.exports[0].key)
    assert saved.verified == verified


@pytest.mark.parametrize("integrity", list(CHECKS))
def test_a_corrupted_transfer_is_fetched_again(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, integrity: str
) -> None:
    url = _finished(sim, jobs, size=SIZE)
    sim.integrity = integrity
    sim.fault("download", "corrupt")
    saved = _save(url, tmp_path)
    assert saved.path.read_bytes() == sim.video(sim.exports[0].key)
    assert saved.verified == CHECKS[integrity]
    assert len(sim.requests("download")) == 2


@pytest.mark.parametrize("integrity", list(CHECKS))
def test_a_transfer_corrupted_twice_is_refused(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, integrity: str
) -> None:
    url = _finished(sim, jobs, size=SIZE)
    sim.integrity = integrity
    sim.fault("download", "corrupt", times=2)
    with pytest.raises(DownloadError, match=f"do not match their {re.escape(CHECKS[integrity])}"):
        _save(url, tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert len(sim.requests("download")) == 2


def test_a_resumed_download_is_checked_against_the_whole_object(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs, size=SIZE)
    sim.integrity = "content-md5"
    sim.fault("download", "truncate", fraction=0.4)
    saved = _save(url, tmp_path)
    assert saved.path.read_bytes() == sim.video(sim.exports[0].key)
    assert saved.verified == "Content-MD5"
    assert "Range" in sim.requests("download")[1].headers


def test_progress_is_reported_with_the_total_and_ends_at_the_size(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs, size=SIZE)
    sim.fault("download", "truncate", fraction=0.5)  # a resumed download still counts from 0
    calls: List[Any] = []
    saved = _save(url, tmp_path, progress=lambda received, total: calls.append((received, total)))
    assert saved.size == SIZE
    assert len(calls) >= 2 and calls[-1] == (SIZE, SIZE)
    assert all(total == SIZE for _, total in calls)
    assert [received for received, _ in calls] == sorted(received for received, _ in calls)


def test_progress_without_a_length_reports_no_total(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    url = _finished(sim, jobs, size=SIZE)
    sim.content_length = False
    calls: List[Any] = []
    _save(url, tmp_path, progress=lambda received, total: calls.append((received, total)))
    assert calls[0][1] is None and calls[-1] == (SIZE, None)


def test_a_body_that_stalls_once_it_flows_is_cut_by_the_stall_bound_not_the_read_timeout(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(download, "STALL_SECONDS", 0.5)
    sim.plan(RenderPlan(seconds=0, size=2_000_000))
    key = request_export(JOB, SECRET, base_url=sim.base_url)
    url = wait_for_video(key, SECRET, base_url=sim.base_url, poll_interval=0.05)
    sim.fault("download", "stall", fraction=0.1, seconds=20)  # 200 kB, then silence
    path = download_video(url, out_dir=tmp_path, request_timeout=(5, 5))
    assert path.read_bytes() == sim.video(key)
    interruptions = [r.getMessage() for r in caplog.records if "interrupted" in r.getMessage()]
    assert len(interruptions) == 1 and "(no progress for 0.5 s)" in interruptions[0]


_WAITING_CHILD = """
import sys
from aistudios_chromakey import _http as download, export_chromakeys
download.RETRY_PAUSE = 1.0  # two seconds between the first attempt and the second
job = {"language": "ko", "text": "hi", "model": "M000004017", "clothes": "BG00006160"}
export_chromakeys([job], sys.argv[1], base_url=sys.argv[2], out_dir=sys.argv[3], poll_interval=0.05)
"""


def test_ctrl_c_while_a_download_waits_to_try_again_stops_at_once(sim: Simulator, tmp_path: Path) -> None:
    from .conftest import default_signal_handling

    sim.plan(RenderPlan(seconds=0, size=1_000_000))
    sim.fault("download", "truncate", fraction=0.2)
    sim.fault("download", "stall", fraction=0.1, seconds=60)  # what the next attempt would meet
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    child = subprocess.Popen(
        [sys.executable, "-c", _WAITING_CHILD, SECRET, sim.base_url, str(tmp_path)],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=default_signal_handling,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while len(sim.requests("download")) < 1:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    time.sleep(0.5)  # inside the two seconds' wait
    child.send_signal(signal.SIGINT)
    _, stderr = child.communicate(timeout=30)
    assert b"Run the same batch again" in stderr
    assert len(sim.requests("download")) == 1  # it never went on to the attempt that would have stalled
    assert not list(tmp_path.glob(".*.part"))


def test_a_file_where_the_folder_should_be_is_a_download_error(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs)
    (tmp_path / "taken").write_text("a file, not a folder", encoding="utf-8")
    with pytest.raises(DownloadError, match="cannot save the video into"):
        download_video(url, tmp_path / "taken")


def test_a_long_error_page_is_refused_and_never_saved(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    url = _finished(sim, jobs)
    page = b"<!DOCTYPE html><html><body>" + b"<p>Please sign in to see this file.</p>" * 50_000 + b"</body></html>"
    sim.fault("download", "status", status=200, body=page, content_type="text/html")
    with pytest.raises(DownloadError, match=r"did not send a video .*text/html"):
        download_video(url, tmp_path)
    assert list(tmp_path.iterdir()) == []  # neither a video nor a part of one
