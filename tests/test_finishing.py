"""Transparent clips and composites made as each video of a batch arrives:
checked before anything is paid for, journaled, and never made twice."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Dict, List

import pytest

from aistudios_chromakey import ProgressEvent, export_chromakeys
from aistudios_chromakey.simulator import Simulator
from aistudios_chromakey.video import FFmpegMissing, InvalidVideoInput

from .conftest import SECRET
from .test_cli import _json_file, _run

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is not installed here")


@needs_ffmpeg
def test_a_batch_makes_each_clip_transparent_as_it_arrives_and_a_rerun_makes_only_what_is_missing(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    events: List[ProgressEvent] = []
    paths = export_chromakeys(jobs[:2], SECRET, out_dir=tmp_path, transparent="webm", on_progress=events.append,
                              **fast)  # fmt: skip
    made = [path.with_suffix(".webm") for path in paths]
    assert all(path.is_file() and path.stat().st_size > 0 for path in [*paths, *made])  # the MP4 is kept
    assert any(e.kind == "finishing" for e in events)
    journal = (tmp_path / ".aistudios-chromakey.json").read_text(encoding="utf-8")
    assert all(f'"made": "{path.name}"' in journal for path in made)
    before = [path.stat().st_mtime_ns for path in made]

    export_chromakeys(jobs[:2], SECRET, out_dir=tmp_path, transparent="webm", **fast)
    assert [path.stat().st_mtime_ns for path in made] == before and len(sim.exports) == 2  # nothing again

    made[1].unlink()  # one clip went missing: only it is made again, from the video already here
    downloads = len(sim.requests("download"))
    export_chromakeys(jobs[:2], SECRET, out_dir=tmp_path, transparent="webm", **fast)
    assert made[1].is_file() and made[0].stat().st_mtime_ns == before[0]
    assert len(sim.exports) == 2 and len(sim.requests("download")) == downloads


@needs_ffmpeg
def test_a_batch_composites_over_a_colour_with_concurrency(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    paths = export_chromakeys(jobs, SECRET, out_dir=tmp_path, background="#3050A0", concurrency=3, **fast)
    assert all((path.parent / f"{path.stem}_composite.mp4").is_file() for path in paths)


def test_without_ffmpeg_a_batch_that_asks_for_clips_sends_nothing(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AISTUDIOS_FFMPEG", str(tmp_path / "no-ffmpeg-here"))
    with pytest.raises(FFmpegMissing, match="AISTUDIOS_FFMPEG"):
        export_chromakeys(jobs, SECRET, out_dir=tmp_path, transparent="webm", **fast)
    monkeypatch.delenv("AISTUDIOS_FFMPEG")
    with pytest.raises(InvalidVideoInput, match="background: no such file"):
        export_chromakeys(jobs, SECRET, out_dir=tmp_path, background=tmp_path / "missing.jpg", **fast)
    assert sim.log == []


def test_without_ffmpeg_the_command_says_how_to_get_it_and_sends_nothing(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    empty = tmp_path / "bin"
    empty.mkdir()
    env = {"PATH": str(empty), "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    hidden = tmp_path / "site"
    (hidden / "imageio_ffmpeg").mkdir(parents=True)  # an imageio-ffmpeg that cannot be imported
    (hidden / "imageio_ffmpeg" / "__init__.py").write_text("raise ImportError('not installed')\n")
    env["PYTHONPATH"] += ":" + str(hidden)
    result = _run(sim, _json_file(tmp_path, jobs), "--transparent", "webm", env=env)
    assert result.returncode == 2, result.stderr
    assert "apt install ffmpeg" in result.stderr and 'pip install "aistudios-chromakey[video]"' in result.stderr
    assert sim.log == []


@needs_ffmpeg
def test_the_command_line_makes_clips_in_a_run_and_from_files(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    from .test_cli import cli

    result = _run(sim, _json_file(tmp_path, jobs[:1]), "--transparent", "mov", "--json")
    assert result.returncode == 0, result.stderr
    video = Path(tmp_path / json.loads(result.stdout)["jobs"][0]["file"])
    assert video.with_suffix(".mov").is_file() and "transparent" in result.stderr
    made = cli("transparent", str(video), "--format", "webm", "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert (tmp_path / "out" / f"{video.stem}.webm").is_file() and made.stdout.strip().endswith(".webm")
    missing = cli("transparent", str(tmp_path / "nope.mp4"), cwd=tmp_path)
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_a_format_no_clip_has_is_refused_before_anything_is_sent(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="transparent must be 'webm', 'mov' or 'png'"):
        export_chromakeys(jobs, SECRET, out_dir=tmp_path, transparent="composite", **fast)
    assert sim.log == []


@needs_ffmpeg
def test_a_clip_that_cannot_be_made_fails_its_job_alone(
    sim: Simulator, jobs: List[Dict[str, Any]], fast: Dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aistudios_chromakey import BatchError, video

    real = video.make_transparent

    def full_disk(path: Path, **options: Any) -> Path:
        if "2" in path.stem:
            raise OSError(28, "No space left on device")
        return real(path, **options)

    monkeypatch.setattr(video, "make_transparent", full_disk)
    with pytest.raises(BatchError) as failed:
        export_chromakeys(jobs, SECRET, out_dir=tmp_path, transparent="webm", filename_template="job-{position}",
                          concurrency=2, **fast)  # fmt: skip
    assert [position for position, _ in failed.value.failures] == [2]
    assert "No space left on device" in str(failed.value)
    assert (tmp_path / "job-1.webm").is_file() and (tmp_path / "job-3.webm").is_file()
    assert (tmp_path / "job-2.mp4").is_file()  # the video itself is kept
