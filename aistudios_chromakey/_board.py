"""What the command line shows while a batch runs, and the summary after it: every line measured as the terminal
shows it (Korean in two columns, what the stream's encoding cannot show as its escape), so a redraw never wraps."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from ._reports import ExportUncertain, ProgressEvent

RUNNING = ("submitted", "rendering", "downloading", "finishing")
FINISHED = ("done", "skipped", "failed")
_SPEED_WINDOW = 0.5  # seconds of download a speed is measured over, at least
_REDRAW_EVERY = 0.1  # the live board's quickest redraw for news that changes no state
_TICK = 0.5  # the live board's redraw while nothing happens: elapsed times and estimates move
_RENDER_SHARE = 0.9  # of a job's bar: the render; the rest is its download
_LABEL_MAX = 24  # columns the jobs' names are padded to, at most


@dataclass
class JobView:
    """Where one job stands, as the board shows it."""

    position: int
    label: str = ""  # the user's file name, or the first words of the text
    state: str = "waiting"  # waiting, one of RUNNING or one of FINISHED
    project_key: Optional[str] = None
    percent: Optional[float] = None  # as the service last said
    service_state: Optional[str] = None  # V3's own word, such as "queued"
    seconds_left: Optional[Tuple[float, float]] = None  # (estimate, when it was made)
    started: Optional[float] = None
    fetching: Optional[float] = None  # when its download began
    ended: Optional[float] = None
    exported: bool = False  # its export was sent (and paid for) in this run
    received: Optional[int] = None
    total: Optional[int] = None
    speed: Optional[float] = None  # bytes per second
    sample: Optional[Tuple[float, int]] = None  # (time, bytes) the speed is measured from
    path: Optional[Path] = None
    size: Optional[int] = None
    sha256: Optional[str] = None
    error: Optional[str] = None
    finished: float = 0.0  # how far its finishing step (a transparent clip) is, from 0 to 1
    doing: str = "finishing"  # what the board calls that step

    def reached(self) -> float:
        """How far its render (as the service said), download or finishing step is, from 0 to 1."""
        return {"rendering": (self.percent or 0) / 100, "downloading": self.downloaded()}.get(self.state, self.finished)

    def step(self) -> Tuple[str, int]:
        """The state and the tenth of it reached: what a plain line is printed for."""
        return self.state, int(self.reached() * 10)

    def render_percent(self, now: float) -> Tuple[float, bool]:
        """The render's percent now, and whether it is guessed: on the last estimate's rate, short of 100."""
        said = self.percent or 0.0
        if self.seconds_left is None or said >= 100 or self.seconds_left[0] <= 0:
            return said, False
        estimate, when = self.seconds_left
        moved = min(said + (100 - said) * (now - when) / estimate, 99.0)
        return max(moved, said), moved > said + 0.5

    def left(self, now: float) -> Optional[float]:
        """The render's time left, on the service's last estimate."""
        return None if self.seconds_left is None else max(self.seconds_left[0] - (now - self.seconds_left[1]), 0.0)

    def downloaded(self) -> float:
        return self.received / self.total if self.received is not None and self.total else 0.0

    def fraction(self, now: float) -> float:
        """How far the job is, from 0 (waiting) to 1 (finished)."""
        if self.state in FINISHED:
            return 1.0
        if self.state == "rendering":
            return _RENDER_SHARE * self.render_percent(now)[0] / 100
        return 0.0 if self.state in ("waiting", "submitted") else _RENDER_SHARE + (1 - _RENDER_SHARE) * self.reached()


class Board(logging.Handler):
    """A batch's progress on ``stream``: redrawn in place when ``live``, else plain lines (one per new state or
    tenth of a step), nothing when ``quiet``; ``concurrency`` sizes the time left, ``finishing`` names the last
    step. Called at each event; as a logging handler, it shows the warnings marked ``extra={"notice": True}``."""

    def __init__(self, count: int, stream: TextIO, live: bool, quiet: bool, *, labels: Sequence[str] = (),
                 concurrency: int = 1, clock: Callable[[], float] = time.monotonic,
                 finishing: str = "finishing"):  # fmt: skip
        super().__init__(logging.WARNING)
        self.views = [JobView(position, doing=finishing) for position in range(1, count + 1)]
        for view, label in zip(self.views, labels):
            view.label = " ".join(str(label).split())
        self.stream, self.encoding = stream, getattr(stream, "encoding", None) or "utf-8"
        self.quiet, self.live = quiet, live and not quiet
        self.concurrency = max(concurrency, 1)
        self.clock, self.started = clock, clock()
        self.drawn, self.last_draw = 0, float("-inf")  # the board's lines on the screen, and when it was drawn
        self.steps: Dict[int, Tuple[str, int]] = {}  # what each job's last plain line was for
        self.drawing, self._stop = threading.RLock(), threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="aistudios-chromakey board", daemon=True)

    def __call__(self, event: ProgressEvent) -> None:
        if event.position is None or not 1 <= event.position <= len(self.views):
            return
        with self.drawing:
            view = self.views[event.position - 1]
            before = view.state
            self.update(view, event, self.clock())
            if view.state == "failed" and before != "failed":  # told whole, with what to do
                reason = " ".join(str(event.error).split()) if event.error is not None else "failed"
                again = f" Run the same command again to retry job {event.position}; finished jobs are not paid again."
                uncertain = isinstance(event.error, ExportUncertain)  # its message says how to check before paying
                self.note(f"job {view.position} failed: {reason}{'' if uncertain else again}")
            if self.live and (view.state != before or self.clock() - self.last_draw >= _REDRAW_EVERY):
                self.redraw()
            elif not self.live and self.steps.get(view.position) != view.step() and view.state != "failed":
                self.steps[view.position] = view.step()
                self.note(f"job {view.position}: {job_text(view, self.clock())}")

    def update(self, view: JobView, event: ProgressEvent, now: float) -> None:
        if view.started is None and not event.skipped:
            view.started = now
        view.project_key = event.project_key or view.project_key
        if event.progress is not None and event.kind not in ("downloading", "finishing"):
            view.percent = event.progress
        view.service_state = event.state if event.kind == "progress" else event.state or view.service_state
        if event.kind == "submitted":
            view.state, view.exported = "submitted", True
        elif event.kind == "progress":
            view.state = "rendering"
            view.seconds_left = None if event.seconds_left is None else (event.seconds_left, now)
        elif event.kind == "downloading":
            if view.state != "downloading":
                view.fetching = now
            view.state, view.percent = "downloading", 100.0
            view.total = event.total if event.total is not None else view.total
            if event.received is not None:
                view.received = event.received
                if view.sample is None or event.received < view.sample[1]:  # first news, or the transfer restarted
                    view.sample = (now, event.received)
                elif now - view.sample[0] >= _SPEED_WINDOW:
                    view.speed = (event.received - view.sample[1]) / (now - view.sample[0])
                    view.sample = (now, event.received)
        elif event.kind == "finishing":
            view.state, view.finished = "finishing", (event.progress or 0.0) / 100
        elif event.kind == "done":
            view.state, view.ended = ("skipped" if event.skipped else "done"), now
            view.path, view.size, view.sha256 = event.path, event.size, event.sha256
        elif event.kind == "failed":  # the reason's first line (the note above the board has it whole)
            reason = str(event.error).splitlines() if event.error is not None else ["failed"]
            view.state, view.ended, view.error = "failed", now, (reason or [type(event.error).__name__])[0]

    def note(self, text: str) -> None:
        """A line of news above the board (a warning, a failure), kept on the screen, whole."""
        if self.quiet:
            return
        with self.drawing:
            clear = f"\x1b[{self.drawn}F\x1b[J" if self.drawn else ""  # the board goes, the note takes its place
            self.stream.write(clear + shown(text) + "\n")
            self.stream.flush()
            self.drawn = 0
            if self.live:
                self.redraw()

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "notice", False):
            self.note(f"warning: {record.getMessage()}")

    def __enter__(self) -> Board:
        if self.live:
            self._ticker.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self.live:
            self._ticker.join()  # after its last redraw

    def _tick(self) -> None:
        while not self._stop.is_set():
            self._stop.wait(_TICK)
            with self.drawing:
                self.redraw()

    def redraw(self) -> None:
        columns, rows = terminal_size(self.stream)
        lines = self.frame(self.clock(), rows, columns - 1)
        up = f"\x1b[{self.drawn}F" if self.drawn else ""  # back to the board's first line
        board = "".join(f"\x1b[2K{fit(line, columns - 1, self.encoding)}\n" for line in lines)
        self.stream.write(f"{up}{board}\x1b[J")  # and clear what a taller board left below
        self.stream.flush()
        self.drawn, self.last_draw = len(lines), self.clock()

    def frame(self, now: float, rows: int, columns: int = 79) -> List[str]:
        """At most ``columns`` wide, fewer than ``rows``: past that, the running jobs and counts of the others."""
        room = max(rows - 2, 0)  # for job lines, under the total line
        everyone = len(self.views) <= room
        visible = self.views if everyone else [v for v in self.views if v.state in RUNNING][: max(room - 1, 0)]
        labels = min(max([shown_width(v.label, self.encoding) for v in visible] + [0]), _LABEL_MAX)
        lines = [job_line(v, now, columns, len(str(len(self.views))), self.encoding, labels) for v in visible]
        if not everyone and room >= 1:
            hidden = [v for v in self.views if v not in visible]
            parts = ", ".join(f"{n} {state}" for state, n in _counts(hidden).items() if n)
            lines.append(f"... and {len(hidden)} more: {parts}")
        return [*lines, self.total_line(now, columns)]

    def total_line(self, now: float, columns: int) -> str:
        counts = _counts(self.views)
        done = f"{counts['done'] + counts['skipped']}/{len(self.views)}"
        share = sum(v.fraction(now) for v in self.views) / max(len(self.views), 1)
        left = self.time_left(now) if counts["running"] + counts["waiting"] else None
        told = f"~{duration(left)} left" if left is not None and left >= 1 else ""
        elapsed = duration(now - self.started)
        failed = f", {counts['failed']} failed" if counts["failed"] else ""
        return _first_fitting([
            f"total {bar(share, 12)} {done} done{failed}, {counts['running']} running; "
            f"{elapsed} elapsed{', ' + told if told else ''}", f"total {done}{failed} {elapsed} {told}",
        ], columns, self.encoding)  # fmt: skip

    def time_left(self, now: float) -> Optional[float]:
        """The batch's time left, downloads included, or ``None`` before there is an estimate."""
        times = [v.ended - v.started for v in self.views if v.state == "done" and v.started and v.ended]
        average = sum(times) / len(times) if times else None
        fetches = [v.ended - v.fetching for v in self.views if v.state == "done" and v.fetching and v.ended]
        fetch = sum(fetches) / len(fetches) if fetches else 0.0
        lefts = []
        for view in (v for v in self.views if v.state in RUNNING):
            left = view.left(now)
            if view.state == "downloading" and view.speed and view.total and view.received is not None:
                left = max(view.total - view.received, 0) / view.speed
            elif view.state == "downloading":  # as long as the downloads before
                left = max(fetch - (now - (view.fetching or now)), 0.0)
            elif left is not None:
                left += fetch
            elif average is not None and view.started is not None:
                left = max(average - (now - view.started), 0.0)
            if left is None:
                return None
            lefts.append(left)
        waiting = sum(1 for v in self.views if v.state == "waiting")
        if waiting and average is None:
            return None
        return max(max(lefts, default=0.0), (sum(lefts) + waiting * (average or 0.0)) / self.concurrency)


def job_line(view: JobView, now: float, columns: int, number: int, encoding: str, labels: int) -> str:
    """Its number, its label (padded to ``labels`` columns, the bars in line; cut first), the most details that fit."""
    head = f"{view.position:>{number}} "
    room = columns - len(head) - 1  # for the label and the details
    detail = _first_fitting(_details(view, now), room - min(8, shown_width(view.label, encoding)), encoding)
    room -= shown_width(detail, encoding)
    room = min(room, labels) if labels else room
    label = shorten(view.label, max(room, 0), encoding) if view.label else ""
    label += " " * max(room - width(label), 0)
    return f"{head}{label}{' ' if label else ''}{detail}"


def _details(view: JobView, now: float) -> List[str]:
    """What a job's line says after its label, from the fullest to the shortest."""
    elapsed = duration(now - view.started) if view.started is not None else "0:00"
    if view.state == "rendering":
        percent, guessed = view.render_percent(now)
        told = f"{percent:3.0f}%{'~' if guessed else ' '}"
        note = f" ({view.service_state})" if view.service_state and view.service_state != "rendering" else ""
        left = view.left(now)
        later = f" ~{duration(left)} left" if left is not None and left >= 1 else ""
        return [f"{bar(percent / 100, 12)} {told}{note} {elapsed}{',' if later else ''}{later}",
                f"{bar(percent / 100, 6)} {told} {elapsed}{later}", f"{told} {elapsed}{later}",
                f"{told} {elapsed}"]  # fmt: skip
    if view.state == "downloading":
        amount = size_text(view.received) + (f" of {size_text(view.total)}" if view.total else "")
        speed = f" at {size_text(view.speed)}/s" if view.speed is not None else ""
        return [f"{bar(view.downloaded(), 12)} downloading {amount}{speed} {elapsed}",
                f"{bar(view.downloaded(), 6)} {size_text(view.received)}{speed} {elapsed}",
                f"dl {view.downloaded() * 100:3.0f}% {elapsed}"]  # fmt: skip
    if view.state == "finishing":
        return [f"{bar(view.finished, 12)} {view.doing} {view.finished * 100:3.0f}% {elapsed}",
                f"{view.doing} {view.finished * 100:3.0f}% {elapsed}"]  # fmt: skip
    took = duration(view.ended - view.started) if view.ended is not None and view.started is not None else ""
    return {
        "done": [f"done {view.path} in {took}", f"done in {took}", "done"],
        "skipped": [f"already downloaded, skipped ({view.path})", "already downloaded"],
        "failed": [f"FAILED: {view.error}", "FAILED"],
        "submitted": [f"submitted, waiting for the render {elapsed}", f"submitted {elapsed}"],
    }.get(view.state, ["waiting"])


def job_text(view: JobView, now: float) -> str:
    """A job's plain line (in a log, where no width limits it)."""
    if view.state in FINISHED:
        return _details(view, now)[0]
    how_far = f" {view.reached() * 100:3.0f}%" if view.state in ("rendering", "downloading", "finishing") else ""
    key = f" {view.project_key}" if view.project_key else ""
    elapsed = duration(now - view.started) if view.started is not None else "0:00"
    return f"{view.doing if view.state == 'finishing' else view.state}{how_far}{key}  {elapsed}"


def _counts(views: List[JobView]) -> Dict[str, int]:
    counts = dict.fromkeys(("running", "done", "skipped", "failed", "waiting"), 0)
    for view in views:
        counts["running" if view.state in RUNNING else view.state] += 1
    return counts


def bar(share: float, cells: int) -> str:
    """``[######------]``: ``share`` (0 to 1) of ``cells`` filled."""
    filled = round(min(max(share, 0.0), 1.0) * cells)
    return "[" + "#" * filled + "-" * (cells - filled) + "]"


def duration(seconds: float) -> str:
    """``0:07``, ``12:30``, ``1:02:03``."""
    hours, rest = divmod(int(max(seconds, 0.0) + 0.5), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def size_text(count: Optional[float]) -> str:
    """``512 B``, ``3.4 MB``: decimal units, as file managers show them."""
    value = float(count or 0)
    for unit in ("B", "kB", "MB"):
        if value < 1000:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} GB"


def shown(text: Any) -> str:
    """``text`` safe for a terminal: each control character (a service's ESC too) made U+FFFD; line breaks stay."""
    return "\n".join("".join(c if c.isprintable() else "\ufffd" for c in line) for line in str(text).split("\n"))


def _printed(text: Any, encoding: str) -> str:
    """``text`` made safe, as a stream in ``encoding`` prints it: what it cannot show as its escape (``\\uac00``)."""
    return shown(text).encode(encoding, "backslashreplace").decode(encoding, "replace")


def width(text: str) -> int:
    """Terminal columns ``text`` takes: Korean characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def shown_width(text: str, encoding: str) -> int:
    return width(_printed(text, encoding))


def fit(text: str, columns: int, encoding: str = "utf-8") -> str:
    """``text`` as printed, cut to ``columns`` terminal columns (after escaping: an escaped line never wraps)."""
    text = _printed(text, encoding)
    return text[: sum(1 for used in itertools.accumulate(map(width, text)) if used <= columns)]


def shorten(text: str, columns: int, encoding: str) -> str:
    """``text`` as printed in at most ``columns`` columns, with ``...`` in its middle when it must be cut."""
    text = _printed(text, encoding)
    if width(text) <= columns:
        return text
    if columns <= 3:
        return "." * max(columns, 0)
    head = fit(text, (columns - 2) // 2)
    return head + "..." + fit(text[::-1], columns - 3 - width(head))[::-1]


def _first_fitting(variants: List[str], columns: int, encoding: str) -> str:
    return next((variant for variant in variants if shown_width(variant, encoding) <= columns), variants[-1])


def terminal_size(stream: TextIO) -> Tuple[int, int]:
    """``(columns, rows)``: ``$COLUMNS`` and ``$LINES`` first, else ``stream``'s terminal, else 80 by 24."""
    try:
        size = os.get_terminal_size(stream.fileno())
        found = [size.columns or 80, size.lines or 24]
    except (AttributeError, ValueError, OSError):
        found = [80, 24]
    for index, name in enumerate(("COLUMNS", "LINES")):
        with contextlib.suppress(ValueError):
            found[index] = max(int(os.environ.get(name, "")), 0) or found[index]
    return found[0], found[1]


def summary(board: Board, columns: int = 80, encoding: str = "utf-8") -> str:
    """The table printed at the end, within ``columns``: each job's state, file or reason, and project key (in a
    column where there is room, else below the file unless the file's name shows it); then the counts."""
    number = max(len(str(len(board.views))), 3)
    keys = max([len(view.project_key or "-") for view in board.views] + [len("project key")])
    files = {v.position: _relative(v.path) for v in board.views if v.state in ("done", "skipped") and v.path}
    sizes = {v.position: f" ({size_text(v.size)})" if v.size else "" for v in board.views}
    wide = all(number + 13 + keys + shown_width(files[n] + sizes[n], encoding) <= columns for n in files)
    head = f"{'job':>{number}}  {'state':<7}  " + (f"{'project key':<{keys}}  " if wide else "")
    lines = [head + "file or reason"]
    room = max(columns - len(head), 10)
    for view in board.views:
        state = view.state if view.state in FINISHED else "not run"
        key = f"{_printed(view.project_key or '-', encoding):<{keys}}  " if wide else ""
        start = f"{view.position:>{number}}  {state:<7}  {key}"
        cell = view.error or "not finished"  # a reason wraps; a file is shortened in its middle
        if view.position in files:
            size = sizes[view.position]
            cell = shorten(files[view.position], room - width(size), encoding) + size
        if view.position in files or shown_width(cell, encoding) <= room:
            lines.append(start + cell)
        else:
            lines.append(start.rstrip())
            lines.extend(" " * 4 + line for line in wrap(cell, max(columns - 4, 10), encoding))
        if not wide and view.project_key and view.project_key not in cell:
            told = f"project key {view.project_key}"
            told = told if shown_width(told, encoding) <= columns - 4 else f"key {view.project_key}"
            lines.append(" " * 4 + fit(told, columns - 4, encoding))
    totals = totals_of(board)
    line = f"{totals['done']} of {totals['jobs']} done" + (f", {totals['failed']} failed" if totals["failed"] else "")
    line += f"; exported in this run: {totals['exported']}"
    line += f"; resumed from an earlier run's export: {totals['resumed']}" if totals["resumed"] else ""
    line += f"; already downloaded, skipped: {totals['skipped']}" if totals["skipped"] else ""
    return "\n".join(lines + wrap(line, columns, encoding))


def _relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def wrap(text: str, columns: int, encoding: str = "utf-8") -> List[str]:
    """``text`` as printed, in lines of at most ``columns`` columns, broken between words where it can be."""
    words: List[str] = []
    for word in _printed(text, encoding).split():
        while width(word) > columns:  # a word longer than a line: cut it, each piece fills a line
            words.append(fit(word, columns))
            word = word[len(words[-1]) :]
        words.append(word)
    lines = [""]
    for word in words:
        if lines[-1] and width(lines[-1]) + 1 + width(word) > columns:
            lines.append(word)
        else:
            lines[-1] = f"{lines[-1]} {word}" if lines[-1] else word
    return lines


def totals_of(board: Board) -> Dict[str, int]:
    """Counts of the batch; ``exported``: paid for in this run, ``resumed``: polled on an earlier run's export."""
    counts = _counts(board.views)
    resumed = [view for view in board.views if not view.exported and view.state != "skipped" and view.project_key]
    return {"jobs": len(board.views), "done": counts["done"] + counts["skipped"],
            "exported": sum(1 for view in board.views if view.exported), "resumed": len(resumed),
            "skipped": counts["skipped"], "failed": counts["failed"],
            "not_finished": counts["running"] + counts["waiting"]}  # fmt: skip


def summary_json(board: Board, status: int) -> Dict[str, Any]:
    """The summary for scripts (``--json``)."""
    jobs = [{"position": view.position,
             "state": {"skipped": "done", "done": "done", "failed": "failed"}.get(view.state, "not finished"),
             "project_key": view.project_key, "file": None if view.path is None else str(view.path),
             "size": view.size, "sha256": view.sha256, "error": view.error, "skipped": view.state == "skipped"}
            for view in board.views]  # fmt: skip
    return {"jobs": jobs, "totals": totals_of(board), "exit_status": status}
