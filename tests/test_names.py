"""File names: device names defused, video extensions kept or given, a
caller's name made safe, and no file ever placed over another."""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path
from typing import Any

import pytest

from aistudios_chromakey import export_chromakeys
from aistudios_chromakey._jobs import safe_filename, safe_name
from aistudios_chromakey.simulator import RenderPlan, Simulator

from .conftest import SECRET


@pytest.mark.parametrize(
    "raw", ["COM¹", "COM²", "COM³", "LPT¹", "LPT²", "LPT³", "CONIN$", "CONOUT$", "conin$", "com¹", "CON", "LPT9"]
)
def test_every_windows_device_name_is_defused(raw: str) -> None:
    assert safe_name(raw + ".mp4") == "_" + raw + ".mp4"
    assert safe_name(raw) == "_" + raw + ".mp4"
    assert safe_name(raw + ".tar.mp4") == "_" + raw + ".tar.mp4"  # Windows looks before the first dot


@pytest.mark.parametrize("raw", ["COM0", "COM¹0", "CONIN", "CONOUT$$", "CON$", "LPT⁴"])
def test_names_that_only_look_like_devices_are_kept(raw: str) -> None:
    assert safe_name(raw + ".mp4") == raw + ".mp4"


@pytest.mark.parametrize("extension", ["mp4", "mov", "m4v", "webm", "mkv", "avi", "MP4", "Mov"])
def test_a_video_extension_is_kept(extension: str) -> None:
    assert safe_filename(f"https://h/v/k/clip.{extension}") == f"clip.{extension}"


@pytest.mark.parametrize(
    "basename, expected",
    [
        ("clip.exe", "clip.mp4"),
        ("index.html", "index.mp4"),
        ("launcher.desktop", "launcher.mp4"),
        ("run.sh", "run.mp4"),
        ("clip.mp4.exe", "clip.mp4"),
        ("archive.tar.gz", "archive.tar.mp4"),
        ("no-extension", "no-extension.mp4"),
        ("Hello. World", "Hello. World.mp4"),  # not an extension: kept, .mp4 added
    ],
)
def test_an_address_with_another_extension_is_saved_as_mp4(basename: str, expected: str) -> None:
    assert safe_filename(f"https://h/v/k/{basename}") == expected
    assert safe_filename(f"https://h/v/k/{expected}") == expected  # stable once safe


@pytest.mark.parametrize(
    "given, expected",
    [(".hidden", "hidden.mp4"), ("CON", "_CON.mp4"), ("clip.exe", "clip.mp4"), ("page.html", "page.mp4"),
     ("a\x1bb\x07", "a_b_.mp4"), ("evil\u202egpj.mp4", "evil_gpj.mp4"), ("a:b*c?", "a_b_c_.mp4"),
     ("내 영상", "내 영상.mp4"), ("clip.mov", "clip.mov")],
)  # fmt: skip
def test_a_filename_column_is_made_safe_as_the_readme_promises(
    sim: Simulator, tmp_path: Path, given: str, expected: str
) -> None:
    job = {"language": "ko", "text": "hi", "model": "M000004017", "clothes": "BG00006160", "filename": given}
    [path] = export_chromakeys([job], SECRET, base_url=sim.base_url, out_dir=tmp_path, poll_interval=0.05)
    assert path.name == expected and path.parent == tmp_path


def test_without_hard_links_downloads_finishing_together_never_overwrite_each_other(
    sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace

    def no_link(*args: Any, **kwargs: Any) -> None:  # a FAT or exFAT drive
        raise OSError(errno.EPERM, "Operation not permitted")

    def slow_replace(source: Any, target: Any) -> None:  # widen the window between the check and the rename
        time.sleep(0.05)
        real_replace(source, target)

    monkeypatch.setattr(os, "link", no_link)
    monkeypatch.setattr(os, "replace", slow_replace)
    sim.plan(*[RenderPlan(seconds=0.3, filename="same.mp4") for _ in range(8)])
    jobs = [{"language": "ko", "text": f"job {n}", "model": "M000004017", "clothes": "BG00006160"} for n in range(8)]
    paths = export_chromakeys(jobs, SECRET, base_url=sim.base_url, out_dir=tmp_path, poll_interval=0.05,
                              concurrency=8)  # fmt: skip
    assert len(set(paths)) == 8
    by_key = {e.body["text"]: e.key for e in sim.exports}
    assert [p.read_bytes() for p in paths] == [sim.video(by_key[job["text"]]) for job in jobs]
