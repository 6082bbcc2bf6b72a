"""The progress board and the summary, drawn from synthetic events on a fake clock."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Tuple

import pytest

from aistudios_chromakey._board import Board, duration, fit, size_text, summary, summary_json, width
from aistudios_chromakey._reports import ProgressEvent


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _board(
    count: int, *, live: bool = False, concurrency: int = 1, labels: Tuple[str, ...] = ()
) -> Tuple[Board, FakeClock, io.StringIO]:
    clock = FakeClock()
    stream = io.StringIO()
    return Board(count, stream, live, False, labels=labels, concurrency=concurrency, clock=clock), clock, stream


def _event(kind: str, position: int, **fields: Any) -> ProgressEvent:
    return ProgressEvent(kind, position=position, project_key=f"key{position}", **fields)


def test_a_rendering_job_shows_its_label_a_bar_percent_elapsed_time_left_and_the_v3_state() -> None:
    board, clock, _ = _board(1, labels=("intro.mp4",))
    board(_event("submitted", 1, progress=0.0))
    clock.now += 12
    board(_event("progress", 1, progress=40.0, seconds_left=18.0, state="queued"))
    line = board.frame(clock.now, rows=10)[0]
    assert line.startswith("1 intro.mp4 [#####-------]  40%") and "(queued)" in line
    assert "0:12" in line and "~0:18 left" in line
    assert "key1" not in line  # the key is the summary's


def test_between_polls_the_percent_moves_on_the_estimate_marked_and_never_reaches_100() -> None:
    board, clock, _ = _board(1)
    board(_event("progress", 1, progress=40.0, seconds_left=10.0))
    clock.now += 5  # half the time the estimate gave: half the way from 40 to 100
    line = board.frame(clock.now, rows=10)[0]
    assert " 70%~" in line and "~0:05 left" in line
    clock.now += 60  # far past the estimate: an answer, not a guess, says done
    assert " 99%~" in board.frame(clock.now, rows=10)[0]
    board(_event("progress", 1, progress=80.0, seconds_left=5.0))
    assert " 80% " in board.frame(clock.now, rows=10)[0]  # an answer: no mark


def test_a_download_shows_bytes_and_a_speed_measured_from_successive_events() -> None:
    board, clock, _ = _board(1)
    board(_event("downloading", 1, received=0, total=10_000_000))
    clock.now += 1
    board(_event("downloading", 1, received=2_000_000, total=10_000_000))
    line = board.frame(clock.now, rows=10)[0]
    assert "[##----------] downloading 2.0 MB of 10.0 MB at 2.0 MB/s" in line


def test_the_total_line_has_a_bar_counts_and_a_time_left_that_counts_downloads() -> None:
    board, clock, _ = _board(3)
    board(_event("submitted", 1))
    clock.now += 8
    board(_event("downloading", 1, received=0, total=100))
    clock.now += 2
    board(_event("done", 1, path=Path("videos/a.mp4"), size=5, sha256="ab" * 32))
    board(_event("progress", 2, progress=50.0, seconds_left=5.0))
    total = board.frame(clock.now, rows=10)[-1]
    assert total.startswith("total [") and "1/3 done, 1 running" in total and "0:10 elapsed" in total
    # one after the other: the running render's 5 s and a download like the first one's 2 s,
    # then the waiting job, as long as the first (10 s)
    assert "~0:17 left" in total


@pytest.mark.parametrize("columns", [80, 40, 30])
def test_every_line_fits_the_width_with_korean_counted_twice_and_times_survive(columns: int) -> None:
    labels = ("안녕하세요, 저는 첫번째 작업입니다. 오늘은 크로마키 영상을 만듭니다", "b.mp4")
    board, clock, _ = _board(2, labels=labels)
    board(_event("progress", 1, progress=42.0))
    clock.now += 3
    board(_event("downloading", 2, received=1_000_000, total=8_000_000))
    frame = board.frame(clock.now, rows=10, columns=columns)
    assert all(width(line) <= columns for line in frame), frame
    assert "42%" in frame[0] and "0:03" in frame[0]
    assert "..." in frame[0] or columns >= 80  # the label gives way first


def test_with_more_jobs_than_rows_the_running_ones_and_counts_fit_the_terminal() -> None:
    board, clock, _ = _board(40, concurrency=2)
    for position in range(1, 11):
        board(_event("submitted", position))
        board(_event("done", position, path=Path(f"v/{position}.mp4")))
    board(_event("failed", 11, error=RuntimeError("render failed\nmore detail")))
    board(_event("progress", 12, progress=50.0))
    board(_event("progress", 13, progress=20.0))
    frame = board.frame(clock.now, rows=6)
    assert len(frame) <= 5
    assert frame[0].startswith("12 ") and frame[1].startswith("13 ")
    assert "38 more: 10 done, 1 failed, 27 waiting" in frame[2]
    assert frame[-1].startswith("total [") and "10/40 done, 1 failed, 2 running" in frame[-1]
    assert len(board.frame(clock.now, rows=2)) == 1  # only the total line, never more than fits


def test_the_live_board_redraws_in_place_within_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINES", "5")
    monkeypatch.setenv("COLUMNS", "30")
    board, _, stream = _board(10, live=True, labels=("첫번째 작업",) * 10)
    for position in range(1, 4):
        board(_event("progress", position, progress=10.0 * position, state="렌더링 중"))
    out = stream.getvalue()
    frames = out.split("\x1b[J")
    assert all(frame.count("\n") <= 4 for frame in frames)
    assert "\x1b[4F" in out  # back to the board's first line before each redraw
    lines = [line.replace("\x1b[2K", "").split("\x1b[")[0] for line in out.split("\n")]
    assert all(width(line) <= 29 for line in lines)  # cut to the width, Korean counted twice


def test_on_an_ascii_stream_lines_are_cut_after_escaping_so_they_never_wrap(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINES", "10")
    monkeypatch.setenv("COLUMNS", "40")
    clock = FakeClock()
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii", errors="backslashreplace", write_through=True)
    board = Board(2, stream, True, False, labels=("안녕하세요 첫번째", "둘"), clock=clock)
    board(_event("progress", 1, progress=30.0, state="렌더링"))
    board(_event("progress", 2, progress=60.0))
    stream.buffer.seek(0)  # type: ignore[attr-defined]
    out = stream.buffer.read().decode("ascii")  # type: ignore[attr-defined]
    lines = [line.replace("\x1b[2K", "").split("\x1b[")[0] for line in out.split("\n")]
    assert any("\\uc548" in line for line in lines)  # the escape shows, and counts
    assert all(len(line) <= 39 for line in lines)
    assert "\x1b[3F" in out  # the redraw goes back over exactly the board's three lines


def test_a_failure_is_told_at_once_whole_with_what_to_do() -> None:
    board, _, stream = _board(2, live=True)
    reason = "the service says the render failed: " + "a long explanation of why, " * 6 + "the end"
    board(_event("failed", 2, error=RuntimeError(reason)))
    out = stream.getvalue()
    assert f"job 2 failed: {reason}" in out  # whole, however long
    assert "Run the same command again to retry job 2" in out


def test_plain_lines_come_per_state_and_per_tenth_not_per_poll() -> None:
    board, clock, stream = _board(1)
    board(_event("submitted", 1, progress=0.0))
    for percent in range(0, 101):
        clock.now += 0.1
        board(_event("progress", 1, progress=float(percent)))
    board(_event("downloading", 1, received=0, total=100))
    for received in range(1, 101):
        board(_event("downloading", 1, received=received, total=100))
    board(_event("done", 1, path=Path("videos/a.mp4")))
    lines = stream.getvalue().splitlines()
    rendering = [line for line in lines if "rendering" in line]
    assert len(rendering) == 11  # 0, 10, ..., 100
    assert len([line for line in lines if "downloading" in line]) == 11
    assert lines[0].startswith("job 1: submitted")
    assert lines[-1].startswith("job 1: done videos/a.mp4") and "in 0:10" in lines[-1]


def test_a_job_an_earlier_run_finished_says_skipped_and_counts_apart() -> None:
    board, _, stream = _board(2)
    board(_event("done", 1, path=Path("videos/a.mp4"), size=10, sha256="0" * 64, skipped=True))
    board(_event("submitted", 2))
    board(_event("done", 2, path=Path("videos/b.mp4"), size=10, sha256="1" * 64))
    assert "job 1: already downloaded, skipped (videos/a.mp4)" in stream.getvalue()
    text = summary(board)
    assert "2 of 2 done; exported in this run: 1; already downloaded, skipped: 1" in text
    assert text.isascii()
    data = summary_json(board, 0)
    assert data["totals"] == {
        "jobs": 2, "done": 2, "exported": 1, "resumed": 0, "skipped": 1, "failed": 0, "not_finished": 0
    }  # fmt: skip
    assert [job["skipped"] for job in data["jobs"]] == [True, False]
    assert data["jobs"][1]["file"] == str(Path("videos/b.mp4"))


def test_quiet_writes_nothing() -> None:
    stream = io.StringIO()
    board = Board(1, stream, True, True)
    with board:
        board(_event("submitted", 1))
    assert stream.getvalue() == ""


@pytest.mark.parametrize("seconds, text", [(0, "0:00"), (7.4, "0:07"), (750, "12:30"), (3723, "1:02:03")])
def test_durations(seconds: float, text: str) -> None:
    assert duration(seconds) == text


def test_sizes_and_widths() -> None:
    assert [size_text(n) for n in (512, 3_400_000, 2e9)] == ["512 B", "3.4 MB", "2.0 GB"]
    assert fit("안녕하세요", 5) == "안녕"  # two columns each
    assert fit("abc", 10) == "abc"


def test_the_summary_counts_a_job_resumed_from_an_earlier_runs_export() -> None:
    board, _, _ = _board(2)
    board(_event("progress", 1, progress=100.0))  # polled on: exported by an earlier run
    board(_event("done", 1, path=Path("videos/a.mp4"), size=10, sha256="0" * 64))
    board(_event("submitted", 2))
    board(_event("done", 2, path=Path("videos/b.mp4"), size=10, sha256="1" * 64))
    assert "exported in this run: 1; resumed from an earlier run's export: 1" in summary(board)
    assert summary_json(board, 0)["totals"]["resumed"] == 1


@pytest.mark.parametrize("columns", [100, 80, 40])
def test_the_summary_fits_the_width_paths_shortened_in_the_middle_long_reasons_on_their_own_lines(
    columns: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    board, _, _ = _board(3)
    deep = tmp_path / "videos" / "2026" / "lesson-one" / ("안녕하세요-저는-첫번째-작업입니다-" * 3 + ".mp4")
    board(_event("submitted", 1))
    board(_event("done", 1, path=deep, size=7_931, sha256="0" * 64))
    board(_event("failed", 2, error=RuntimeError("the service refused the export: " + "why " * 40)))
    text = summary(board, columns)
    lines = text.splitlines()
    assert all(width(line) <= columns for line in lines), lines
    assert str(tmp_path) not in text and "videos" in text  # relative to the working folder
    assert ("..." in lines[1]) == (width(str(deep.relative_to(tmp_path))) > columns - 20)
    assert any(line.startswith("    ") and "why why" in line for line in lines)  # the reason, on its own lines
    assert "project key key1" in text  # no room for a column of keys: each below its file

    short, _, _ = _board(1)
    short(_event("submitted", 1))
    short(_event("done", 1, path=tmp_path / "a.mp4", size=10, sha256="0" * 64))
    assert "project key" in summary(short, 80).splitlines()[0]  # room: a column


def test_the_summary_cleans_and_cuts_project_keys_on_a_narrow_terminal() -> None:
    board, _, _ = _board(1)
    board(ProgressEvent("submitted", position=1, project_key="k\x1b]52;c;aGk=\x07" + "9" * 30))
    board(ProgressEvent("done", position=1, project_key=None, path=Path("videos/a.mp4"), size=10, sha256="0" * 64))
    text = summary(board, 30)
    assert "\x1b" not in text and "\x07" not in text  # the service's key cannot drive the terminal
    assert all(width(line) <= 30 for line in text.splitlines())
