"""What the command line shows while a batch runs, and the summary after it.

On a terminal the board is redrawn in place: a line per job (state, percent,
elapsed time, estimated time left; bytes and speed while downloading) and a
total line, never taller than the terminal. Piped into a file (CI, cron) the
same news comes as plain lines, one per change worth a line: a new state, or
another tenth of a render or a download. The library itself prints nothing:
it calls :meth:`Board.__call__` with a :class:`ProgressEvent` at each step.

Only ASCII is used for decoration, so that a terminal that cannot show more
never fails a run.
"""

from __future__ import annotations

import os
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, TextIO, Tuple

from ._events import ProgressEvent

Clock = Callable[[], float]

RUNNING = ("submitted", "rendering", "downloading")
FINISHED = ("done", "skipped", "failed")
_SPEED_WINDOW = 0.5  # seconds of download a speed is measured over, at least
_REDRAW_EVERY = 0.1  # the live board's quickest redraw for news that changes no state
_TICK = 1.0  # the live board's redraw while nothing happens, so elapsed times move


@dataclass
class JobView:
    """Where one job stands, as the board shows it."""

    position: int
    state: str = "waiting"  # waiting, submitted, rendering, downloading, done, skipped or failed
    project_key: Optional[str] = None
    percent: Optional[float] = None
    service_state: Optional[str] = None  # V3's own word, such as "queued"
    seconds_left: Optional[Tuple[float, float]] = None  # (estimate, when it was made)
    started: Optional[float] = None
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

    def step(self) -> Tuple[str, int]:
        """The state and the tenth of it reached: what a plain line is printed for."""
        if self.state == "rendering" and self.percent is not None:
            return self.state, int(self.percent // 10)
        if self.state == "downloading" and self.received is not None and self.total:
            return self.state, int(self.received * 10 // self.total)
        return self.state, 0


class Board:
    """Progress of a batch on ``stream``: redrawn in place when ``live``,
    plain lines otherwise, nothing when ``quiet``. ``concurrency`` only sizes
    the estimate of the batch's time left."""

    def __init__(
        self,
        count: int,
        stream: TextIO,
        live: bool,
        quiet: bool,
        *,
        concurrency: int = 1,
        clock: Clock = time.monotonic,
    ):
        self.views = [JobView(position) for position in range(1, count + 1)]
        self.stream = stream
        self.quiet = quiet
        self.live = live and not quiet
        self.concurrency = max(concurrency, 1)
        self.clock = clock
        self.started = clock()
        self.drawn = 0
        self.last_draw = float("-inf")
        self.steps: Dict[int, Tuple[str, int]] = {}
        self.lock = threading.RLock()
        self._stop = threading.Event()
        self._ticker: Optional[threading.Thread] = None

    # --- news from the library ---------------------------------------------------

    def __call__(self, event: ProgressEvent) -> None:
        if event.position is None or not 1 <= event.position <= len(self.views):
            return
        with self.lock:
            view = self.views[event.position - 1]
            before = view.state
            self.update(view, event, self.clock())
            if self.live:
                if view.state != before or self.clock() - self.last_draw >= _REDRAW_EVERY:
                    self.redraw()
            elif not self.quiet and self.steps.get(view.position) != view.step():
                self.steps[view.position] = view.step()
                self.stream.write(shown(f"job {view.position}: {job_text(view, self.clock())}") + "\n")
                self.stream.flush()

    def update(self, view: JobView, event: ProgressEvent, now: float) -> None:
        """Take in one event."""
        if view.started is None and not event.skipped:
            view.started = now
        view.project_key = event.project_key or view.project_key
        if event.progress is not None:
            view.percent = event.progress
        view.service_state = event.state or view.service_state
        if event.kind == "submitted":
            view.state, view.exported = "submitted", True
        elif event.kind == "progress":
            view.state = "rendering"
            view.seconds_left = None if event.seconds_left is None else (event.seconds_left, now)
        elif event.kind == "downloading":
            self._downloading(view, event, now)
        elif event.kind == "done":
            view.state = "skipped" if event.skipped else "done"
            view.path, view.size, view.sha256 = event.path, event.size, event.sha256
            view.ended = now
        elif event.kind == "failed":
            view.state, view.ended = "failed", now
            view.error = first_line(event.error) if event.error is not None else "failed"

    @staticmethod
    def _downloading(view: JobView, event: ProgressEvent, now: float) -> None:
        view.state = "downloading"
        view.total = event.total if event.total is not None else view.total
        if event.received is None:
            return
        view.received = event.received
        if view.sample is None or event.received < view.sample[1]:  # first news, or the transfer restarted
            view.sample = (now, event.received)
        elif now - view.sample[0] >= _SPEED_WINDOW:
            view.speed = (event.received - view.sample[1]) / (now - view.sample[0])
            view.sample = (now, event.received)

    def note(self, text: str) -> None:
        """A line of news above the board (a warning), kept on the screen."""
        if self.quiet:
            return
        text = shown(text)  # no escape of the service's reaches the terminal
        with self.lock:
            if self.live and self.drawn:
                self.stream.write(f"\x1b[{self.drawn}F\x1b[J")  # the board goes, the note takes its place
                self.drawn = 0
            self.stream.write(text + "\n")
            self.stream.flush()
            if self.live:
                self.redraw()

    def record_failures(self, failures: Dict[int, BaseException]) -> None:
        """Failures the batch reported, in case an event did not say it."""
        for position, error in failures.items():
            if 1 <= position <= len(self.views):
                view = self.views[position - 1]
                view.state, view.error = "failed", first_line(error)

    # --- the live board ------------------------------------------------------------

    def __enter__(self) -> Board:
        if self.live:
            self._ticker = threading.Thread(target=self._tick, name="aistudios-chromakey board", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
        if self.live:
            with self.lock:
                self.redraw()

    def _tick(self) -> None:
        while not self._stop.wait(_TICK):
            with self.lock:
                self.redraw()

    def redraw(self) -> None:
        columns, rows = terminal_size(self.stream)
        lines = self.frame(self.clock(), rows)
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F")  # back to the board's first line
        for line in lines:
            self.stream.write("\x1b[2K" + fit(line, columns - 1) + "\n")
        self.stream.write("\x1b[J")  # clear what a taller board left below
        self.stream.flush()
        self.drawn = len(lines)
        self.last_draw = self.clock()

    def frame(self, now: float, rows: int) -> List[str]:
        """The board's lines: fewer than ``rows``, so that the screen never
        scrolls. With more jobs than room, the running ones and counts of
        the others."""
        budget = max(rows - 1, 1)
        total = self.total_line(now)
        width = len(str(len(self.views)))
        if len(self.views) + 1 <= budget:
            return [f"job {v.position:>{width}}: {job_text(v, now)}" for v in self.views] + [total]
        room = max(budget - 2, 0)
        shown = [v for v in self.views if v.state in RUNNING][:room]
        hidden = [v for v in self.views if v not in shown]
        counts = _counts(hidden)
        lines = [f"job {v.position:>{width}}: {job_text(v, now)}" for v in shown]
        if budget >= 2:
            parts = ", ".join(f"{n} {state}" for state, n in counts.items() if n)
            lines.append(f"... and {len(hidden)} more jobs: {parts}")
        return [*lines, total]

    def total_line(self, now: float) -> str:
        counts = _counts(self.views)
        done = counts["done"] + counts["skipped"]
        text = (
            f"total: {done} done"
            + (f" ({counts['skipped']} skipped)" if counts["skipped"] else "")
            + f", {counts['failed']} failed, {counts['running']} running, {counts['waiting']} waiting"
            + f"; {duration(now - self.started)} elapsed"
        )
        left = self.time_left(now)
        if left is not None and counts["running"] + counts["waiting"]:
            text += f", about {duration(left)} left"
        return text

    def time_left(self, now: float) -> Optional[float]:
        """An estimate of the batch's time left, or ``None`` before there is any."""
        times = [v.ended - v.started for v in self.views if v.state == "done" and v.started and v.ended]
        average = sum(times) / len(times) if times else None
        lefts = []
        for view in self.views:
            if view.state not in RUNNING:
                continue
            left = _left(view, now)
            if left is None and average is not None and view.started is not None:
                left = max(average - (now - view.started), 0.0)
            if left is None:
                return None
            lefts.append(left)
        waiting = sum(1 for v in self.views if v.state == "waiting")
        if waiting and average is None:
            return None
        work = sum(lefts) + waiting * (average or 0.0)
        return max(max(lefts, default=0.0), work / self.concurrency)


def job_text(view: JobView, now: float) -> str:
    """What one job's line says after its number."""
    key = f" {view.project_key}" if view.project_key else ""
    elapsed = f"{duration(now - view.started)} elapsed" if view.started is not None else ""
    if view.ended is not None and view.started is not None:
        elapsed = f"in {duration(view.ended - view.started)}"
    if view.state == "rendering":
        note = f" ({view.service_state})" if view.service_state and view.service_state != "rendering" else ""
        left = _left(view, now)
        more = f", about {duration(left)} left" if left is not None and left >= 1 else ""
        return f"rendering {view.percent or 0:3.0f}%{note}{key}  {elapsed}{more}"
    if view.state == "downloading":
        amount = ""
        if view.received is not None:
            amount = " " + size_text(view.received) + (f" of {size_text(view.total)}" if view.total else "")
            amount += f" at {size_text(view.speed)}/s" if view.speed is not None else ""
        return f"downloading{amount}{key}  {elapsed}"
    if view.state == "submitted":
        return f"submitted{key}  {elapsed}"
    if view.state == "done":
        return f"done {view.path}  {elapsed}"
    if view.state == "skipped":
        return f"already downloaded, skipped ({view.path})"
    if view.state == "failed":
        return f"FAILED {view.error}"
    return "waiting"


def _left(view: JobView, now: float) -> Optional[float]:
    if view.seconds_left is None:
        return None
    estimate, when = view.seconds_left
    return max(estimate - (now - when), 0.0)


def _counts(views: List[JobView]) -> Dict[str, int]:
    counts = {"running": 0, "done": 0, "skipped": 0, "failed": 0, "waiting": 0}
    for view in views:
        counts["running" if view.state in RUNNING else view.state] += 1
    return counts


def duration(seconds: float) -> str:
    """``0:07``, ``12:30``, ``1:02:03``."""
    whole = int(max(seconds, 0.0) + 0.5)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def size_text(count: Optional[float]) -> str:
    """``512 B``, ``3.4 MB``: decimal units, as file managers show them."""
    value = float(count or 0)
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    raise AssertionError("unreachable")


def first_line(error: Any) -> str:
    lines = str(error).splitlines()
    return lines[0] if lines else type(error).__name__


def shown(text: Any) -> str:
    """``text`` safe for a terminal: every control character (ESC of a
    cursor or clipboard sequence included, from a service's message or a
    project key) becomes U+FFFD; line breaks stay."""
    return "\n".join("".join(c if c.isprintable() else "\ufffd" for c in line) for line in str(text).split("\n"))


def fit(text: str, columns: int) -> str:
    """``text`` made safe (:func:`shown`) and cut to ``columns`` terminal columns."""
    text = shown(text)
    used = 0
    for index, char in enumerate(text):
        used += width(char)
        if used > columns:
            return text[:index]
    return text


def width(text: str) -> int:
    """Terminal columns ``text`` takes: Korean characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def terminal_size(stream: TextIO) -> Tuple[int, int]:
    """``(columns, rows)`` of the terminal ``stream`` writes to; ``$COLUMNS``
    and ``$LINES`` win, as for :func:`shutil.get_terminal_size`."""
    try:
        size = os.get_terminal_size(stream.fileno())
        columns, rows = size.columns or 80, size.lines or 24
    except (AttributeError, ValueError, OSError):
        columns, rows = 80, 24
    return _env_int("COLUMNS", columns), _env_int("LINES", rows)


def _env_int(name: str, default: int) -> int:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return default
    return value if value > 0 else default


# --- after the batch -------------------------------------------------------------------


def summary(board: Board) -> str:
    """The table printed at the end (job, project key, state, file or reason)
    and the counts: what was exported, and paid for, in this run, and what
    an earlier run had finished."""
    rows = []
    for view in board.views:
        if view.state in ("done", "skipped"):
            detail = f"  ({view.size} bytes, sha256 {view.sha256[:16]}...)" if view.size and view.sha256 else ""
            rows.append((view, f"{view.path}{detail}"))
        else:
            rows.append((view, view.error or "not finished"))
    width = max([len("project key")] + [len(view.project_key or "-") for view in board.views])
    lines = [f"{'job':>4}  {'project key':<{width}}  {'state':<7}  file or reason"]
    for view, text in rows:
        state = view.state if view.state in FINISHED else "not run"
        lines.append(f"{view.position:>4}  {view.project_key or '-':<{width}}  {state:<7}  {text}")
    totals = totals_of(board)
    line = f"{totals['done']} of {totals['jobs']} done" + (f", {totals['failed']} failed" if totals["failed"] else "")
    line += f"; exported in this run: {totals['exported']}"
    if totals["skipped"]:
        line += f"; already downloaded, skipped: {totals['skipped']}"
    lines.append(line)
    return "\n".join(lines)


def totals_of(board: Board) -> Dict[str, int]:
    """Counts of the batch: jobs, done (skipped included), exported in this
    run (each a paid render), skipped, failed, not finished."""
    counts = _counts(board.views)
    return {
        "jobs": len(board.views),
        "done": counts["done"] + counts["skipped"],
        "exported": sum(1 for view in board.views if view.exported),
        "skipped": counts["skipped"],
        "failed": counts["failed"],
        "not_finished": counts["running"] + counts["waiting"],
    }


def summary_json(board: Board, status: int) -> Dict[str, Any]:
    """The summary for scripts (``--json``)."""
    jobs = [
        {
            "position": view.position,
            "state": {"skipped": "done", "done": "done", "failed": "failed"}.get(view.state, "not finished"),
            "project_key": view.project_key,
            "file": None if view.path is None else str(view.path),
            "size": view.size,
            "sha256": view.sha256,
            "error": view.error,
            "skipped": view.state == "skipped",
        }
        for view in board.views
    ]
    return {"jobs": jobs, "totals": totals_of(board), "exit_status": status}
