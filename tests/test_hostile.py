"""Hostile answers and hostile input after and before payment: no bare
crash once a render is paid for, no escape sequence of the service's on the
user's terminal, and input refused before anything is sent."""

from __future__ import annotations

import json
import socket
import threading
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Union

import pytest

from aistudios_chromakey import DownloadError, download_video, export_chromakeys
from aistudios_chromakey.simulator import RenderPlan, Simulator

from .conftest import SECRET
from .test_cli import cli

Storage = Callable[[bytes, Union[bool, str]], str]
CLIP = resources.files("aistudios_chromakey").joinpath("data/chromakey.mp4").read_bytes()


def test_a_content_length_of_unicode_digits_is_no_crash(storage: Storage, tmp_path: Path) -> None:
    try:  # "²".isdigit() is true, int("²") fails
        path = download_video(storage(CLIP, "²"), out_dir=tmp_path)
    except DownloadError:
        return  # refused in words: fine
    assert path.read_bytes() == CLIP


@pytest.mark.parametrize("template", ["{text[3]}", "{position[0]}", "{position.real}"])
def test_a_template_that_could_fail_on_one_job_is_refused_before_sending(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, template: str
) -> None:
    with pytest.raises(ValueError, match="filename_template uses"):
        export_chromakeys(jobs, SECRET, base_url=sim.base_url, out_dir=tmp_path, filename_template=template)
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(json.dumps(jobs), encoding="utf-8")
    result = cli("run", str(jobs_file), "--base-url", sim.base_url, "--name", template, cwd=tmp_path)
    assert result.returncode == 2 and "--name" in result.stderr
    assert sim.log == []


def test_a_jobs_file_nested_too_deeply_is_a_usage_error(sim: Simulator, tmp_path: Path) -> None:
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text("[" * 200_000 + "]" * 200_000, encoding="utf-8")
    result = cli("run", str(jobs_file), "--base-url", sim.base_url, cwd=tmp_path)
    assert result.returncode == 2 and "nested too deeply" in result.stderr
    assert sim.log == []


def test_the_services_escape_sequences_never_reach_the_terminal(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    sim.plan(RenderPlan(reject="bad model \x1b]52;c;aGVsbG8=\x07 \x1b[2J\x1b]0;pwned\x07"))
    jobs_file = tmp_path / "jobs.json"
    jobs_file.write_text(json.dumps(jobs[:1]), encoding="utf-8")
    result = cli("run", str(jobs_file), "--base-url", sim.base_url, "--poll-interval", "0.05", cwd=tmp_path)
    assert result.returncode == 1
    assert "bad model" in result.stdout + result.stderr
    assert "\x1b" not in result.stdout + result.stderr and "\x07" not in result.stdout + result.stderr


def test_a_header_of_very_many_columns_is_read_in_linear_time(tmp_path: Path) -> None:
    columns = ["language", "text", "model", "clothes", *(f"c{n}" for n in range(300_000))]
    jobs_file = tmp_path / "wide.csv"
    cells = ["ko", "안녕", "M000004017", "BG00006160", *([""] * 300_000)]
    jobs_file.write_text(",".join(columns) + "\n" + ",".join(cells) + "\n", encoding="utf-8")
    # Counted once, 300,000 names take a second or so; counted once per column, hours.
    result = cli("run", str(jobs_file), "--dry-run", "--base-url", "http://127.0.0.1:9", cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "1 job(s)" in result.stdout


def _open_ended(clip: bytes) -> bytes:
    """``clip`` with its last top-level box's size written as 0 ("to the end of the file")."""
    at = last = 0
    while at < len(clip):
        last, at = at, at + int.from_bytes(clip[at : at + 4], "big")
    return clip[:last] + b"\0\0\0\0" + clip[last + 4 :]


_ZEROS = b"\0\0\0\x18ftypisom\0\0\0\0isomiso2" + b"\0\0\0\0free" + b"\0" * 300_000


@pytest.fixture
def storage() -> Iterator[Storage]:
    """A storage host serving given bytes, with their Content-Length (or the
    one given, or none)."""
    listener = socket.create_server(("127.0.0.1", 0))
    served: Dict[str, Any] = {}

    def serve() -> None:
        while True:
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            with sock:
                sock.recv(65536)
                given = served["length"]
                value = str(len(served["body"])) if given is True else given
                length = f"Content-Length: {value}\r\n" if value else ""
                head = f"HTTP/1.1 200 OK\r\nContent-Type: video/mp4\r\n{length}Connection: close\r\n\r\n"
                sock.sendall(head.encode("latin-1") + served["body"])

    def serving(body: bytes, length: Union[bool, str]) -> str:
        served.update(body=body, length=length)
        return f"http://127.0.0.1:{listener.getsockname()[1]}/v/clip.mp4"

    threading.Thread(target=serve, daemon=True).start()
    yield serving
    listener.close()


@pytest.mark.parametrize(
    "body",
    [_open_ended(CLIP)[: len(CLIP) // 2], _open_ended(CLIP), _ZEROS],
    ids=["open-ended-cut-at-half", "open-ended-whole", "ftyp-then-zeros"],
)
def test_a_body_without_length_that_cannot_be_proven_whole_is_not_saved(
    storage: Storage, tmp_path: Path, body: bytes
) -> None:
    with pytest.raises(DownloadError):
        download_video(storage(body, False), out_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_open_ended_box_is_whole_when_its_length_was_announced(storage: Storage, tmp_path: Path) -> None:
    body = _open_ended(CLIP)
    assert download_video(storage(body, True), out_dir=tmp_path).read_bytes() == body
    with pytest.raises(DownloadError, match="no MP4 moov and mdat box"):
        download_video(storage(_ZEROS, True), out_dir=tmp_path / "zeros")
