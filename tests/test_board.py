"""The progress board and the summary, drawn from synthetic events on a fake clock."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any, Tuple

import pytest

from aistudios_chromakey._board import Board, duration, fit, size_text, summary, summary_json
from aistudios_chromakey._events import ProgressEvent


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _board(count: int, *, live: bool = False, concurrency: int = 1) -> Tuple[Board, FakeClock, io.StringIO]:
    clock = FakeClock()
    stream = io.StringIO()
    return Board(count, stream, live, False, concurrency=concurrency, clock=clock), clock, stream


def _event(kind: str, position: int, **fields: Any) -> ProgressEvent:
    return ProgressEvent(kind, position=position, project_key=f"key{position}", **fields)


def test_a_rendering_job_shows_percent_elapsed_time_left_and_the_v3_state() -> None:
    board, clock, _ = _board(1)
    board(_event("submitted", 1, progress=0.0))
    clock.now += 12
    board(_event("progress", 1, progress=40.0, seconds_left=18.0, state="queued"))
    clock.now += 3
    line = board.frame(clock.now, rows=10)[0]
    assert "rendering  40%" in line and "(queued)" in line and "key1" in line
    assert "0:15 elapsed" in line and "about 0:15 left" in line  # the estimate counts down between polls


def test_a_download_shows_bytes_and_a_speed_measured_from_successive_events() -> None:
    board, clock, _ = _board(1)
    board(_event("downloading", 1, received=0, total=10_000_000))
    clock.now += 1
    board(_event("downloading", 1, received=2_000_000, total=10_000_000))
    line = board.frame(clock.now, rows=10)[0]
    assert "downloading 2.0 MB of 10.0 MB at 2.0 MB/s" in line


def test_the_total_line_counts_states_and_estimates_the_batch() -> None:
    board, clock, _ = _board(3)
    board(_event("submitted", 1))
    clock.now += 10
    board(_event("done", 1, path=Path("videos/a.mp4"), size=5, sha256="ab" * 32))
    board(_event("submitted", 2))
    total = board.frame(clock.now, rows=10)[-1]
    assert "total: 1 done, 0 failed, 1 running, 1 waiting" in total
    assert "0:10 elapsed" in total
    assert "about 0:20 left" in total  # one job took 10 s: the running one and the waiting one


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
    assert frame[0].startswith("job 12:") and frame[1].startswith("job 13:")
    assert "38 more jobs: 10 done, 1 failed, 27 waiting" in frame[2]
    assert frame[-1].startswith("total: 10 done, 1 failed, 2 running, 27 waiting")
    assert len(board.frame(clock.now, rows=2)) == 1  # only the total line, never more than fits


def test_the_live_board_redraws_in_place_within_the_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LINES", "5")
    monkeypatch.setenv("COLUMNS", "30")
    board, _, stream = _board(10, live=True)
    for position in range(1, 4):
        board(_event("progress", position, progress=10.0 * position, state="렌더링 중"))
    out = stream.getvalue()
    frames = out.split("\x1b[J")
    assert all(frame.count("\n") <= 4 for frame in frames)
    assert "\x1b[4F" in out  # back to the board's first line before each redraw
    assert all(len(line) <= 40 for line in out.split("\n"))  # cut to the width, escapes aside


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
    assert data["totals"] == {"jobs": 2, "done": 2, "exported": 1, "skipped": 1, "failed": 0, "not_finished": 0}
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
