"""What the command line shows while a batch runs, and the summary after it.

On a terminal the board is redrawn in place: a line per job (its file name
or the first words of its text, a bar, the percent, elapsed time and time
left; bytes and speed while downloading) and a total line with a bar of its
own, each cut to the terminal's width and never taller than the terminal.
Between two polls the percent moves on the render's estimated rate, marked
``~`` until the next answer. A failure is told at once, whole, above the
board, with what to do. Piped into a file (CI, cron) the same news comes as
plain lines, one per change worth a line: a new state, or another tenth of
a render or a download. The library itself prints nothing: it calls
:meth:`Board.__call__` with a :class:`ProgressEvent` at each step.

Only ASCII is used for decoration, and every line is measured as the
terminal will show it (Korean takes two columns; what the terminal's
encoding cannot show takes its escape), so that the redraw stays exact.
"""

from __future__ import annotations

import os
import threading
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, TextIO, Tuple

from ._reports import ExportUncertain, ProgressEvent

Clock = Callable[[], float]

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
    state: str = "waiting"  # waiting, submitted, rendering, downloading, finishing, done, skipped or failed
    project_key: Optional[str] = None
    percent: Optional[float] = None  # as the service last said
    service_state: Optional[str] = None  # V3's own word, such as "queued"
    seconds_left: Optional[Tuple[float, float]] = None  # (estimate, when it was made)
    started: Optional[float] = None
    fetching: Optional[float] = None  # when its download began
    fetched: Optional[float] = None  # seconds its download took
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

    def step(self) -> Tuple[str, int]:
        """The state and the tenth of it reached: what a plain line is printed for."""
        if self.state == "rendering" and self.percent is not None:
            return self.state, int(self.percent // 10)
        if self.state == "downloading" and self.received is not None and self.total:
            return self.state, int(self.received * 10 // self.total)
        if self.state == "finishing":
            return self.state, int(self.finished * 10)
        return self.state, 0

    def render_percent(self, now: float) -> Tuple[float, bool]:
        """The render's percent now, and whether it is an estimate: between
        two answers it moves on the rate the last estimate implies, and
        stops short of 100 (only an answer says done)."""
        said = self.percent or 0.0
        if self.seconds_left is None or said >= 100:
            return said, False
        estimate, when = self.seconds_left
        if estimate <= 0:
            return said, False
        moved = min(said + (100 - said) * (now - when) / estimate, 99.0)
        return max(moved, said), moved > said + 0.5

    def fraction(self, now: float) -> float:
        """How far the job is, from 0 (waiting) to 1 (finished)."""
        if self.state in FINISHED:
            return 1.0
        if self.state == "rendering":
            return _RENDER_SHARE * self.render_percent(now)[0] / 100
        if self.state == "downloading":
            part = self.received / self.total if self.received is not None and self.total else 0.0
            return _RENDER_SHARE + (1 - _RENDER_SHARE) * part
        if self.state == "finishing":
            return _RENDER_SHARE + (1 - _RENDER_SHARE) * self.finished
        return 0.0


class Board:
    """Progress of a batch on ``stream``: redrawn in place when ``live``,
    plain lines otherwise, nothing when ``quiet``. ``labels`` name the jobs
    (their file names or first words); ``concurrency`` sizes the estimate of
    the batch's time left; ``finishing`` names the batch's last step, if any."""

    def __init__(
        self,
        count: int,
        stream: TextIO,
        live: bool,
        quiet: bool,
        *,
        labels: Sequence[str] = (),
        concurrency: int = 1,
        clock: Clock = time.monotonic,
        finishing: str = "finishing",
    ):
        self.views = [JobView(position, doing=finishing) for position in range(1, count + 1)]
        for view, label in zip(self.views, labels):
            view.label = " ".join(str(label).split())
        self.stream = stream
        self.encoding = getattr(stream, "encoding", None) or "utf-8"
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
            if view.state == "failed" and before != "failed":
                self.note(f"job {view.position} failed: {_told(event.error)}{_advice(view, event.error)}")
            if self.live:
                if view.state != before or self.clock() - self.last_draw >= _REDRAW_EVERY:
                    self.redraw()
            elif not self.quiet and self.steps.get(view.position) != view.step() and view.state != "failed":
                self.steps[view.position] = view.step()
                self.write(f"job {view.position}: {job_text(view, self.clock())}")

    def update(self, view: JobView, event: ProgressEvent, now: float) -> None:
        """Take in one event."""
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
            self._downloading(view, event, now)
        elif event.kind == "finishing":
            view.state, view.finished = "finishing", (event.progress or 0.0) / 100
        elif event.kind == "done":
            view.state = "skipped" if event.skipped else "done"
            view.path, view.size, view.sha256 = event.path, event.size, event.sha256
            view.ended = now
            if view.fetching is not None:
                view.fetched = now - view.fetching
        elif event.kind == "failed":
            view.state, view.ended = "failed", now
            view.error = first_line(event.error) if event.error is not None else "failed"

    @staticmethod
    def _downloading(view: JobView, event: ProgressEvent, now: float) -> None:
        if view.state != "downloading":
            view.fetching = now
        view.state, view.percent = "downloading", 100.0
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
        """A line of news above the board (a warning, a failure), kept on the screen, whole."""
        if self.quiet:
            return
        with self.lock:
            if self.live and self.drawn:
                self.stream.write(f"\x1b[{self.drawn}F\x1b[J")  # the board goes, the note takes its place
                self.drawn = 0
            self.write(text)
            if self.live:
                self.redraw()

    def write(self, text: str) -> None:
        self.stream.write(shown(text) + "\n")
        self.stream.flush()

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
        lines = self.frame(self.clock(), rows, columns - 1)
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F")  # back to the board's first line
        for line in lines:
            self.stream.write("\x1b[2K" + fit(line, columns - 1, self.encoding) + "\n")
        self.stream.write("\x1b[J")  # clear what a taller board left below
        self.stream.flush()
        self.drawn = len(lines)
        self.last_draw = self.clock()

    def frame(self, now: float, rows: int, columns: int = 79) -> List[str]:
        """The board's lines, each at most ``columns`` wide, fewer than
        ``rows`` so that the screen never scrolls. With more jobs than room,
        the running ones and counts of the others."""
        budget = max(rows - 1, 1)
        total = self.total_line(now, columns)
        number = len(str(len(self.views)))
        visible = self.views if len(self.views) + 1 <= budget else [v for v in self.views if v.state in RUNNING]
        visible = visible[: max(budget - 2, 0)] if visible is not self.views else visible
        labels = min(max([shown_width(v.label, self.encoding) for v in visible] + [0]), _LABEL_MAX)
        lines = [job_line(v, now, columns, number, self.encoding, labels) for v in visible]
        if visible is self.views:
            return [*lines, total]
        hidden = [v for v in self.views if v not in visible]
        if budget >= 2:
            parts = ", ".join(f"{n} {state}" for state, n in _counts(hidden).items() if n)
            lines.append(f"... and {len(hidden)} more: {parts}")
        return [*lines, total]

    def total_line(self, now: float, columns: int = 79) -> str:
        counts = _counts(self.views)
        done = counts["done"] + counts["skipped"]
        share = sum(v.fraction(now) for v in self.views) / max(len(self.views), 1)
        left = self.time_left(now)
        told = (
            f"~{duration(left)} left"
            if left is not None and left >= 1 and counts["running"] + counts["waiting"]
            else ""
        )
        elapsed = duration(now - self.started)
        failed = f", {counts['failed']} failed" if counts["failed"] else ""
        variants = [
            f"total {bar(share, 12)} {done}/{len(self.views)} done{failed}, {counts['running']} running; "
            f"{elapsed} elapsed{', ' + told if told else ''}",
            f"total {bar(share, 8)} {done}/{len(self.views)}{failed} {elapsed} {told}",
            f"total {done}/{len(self.views)}{failed} {elapsed} {told}",
        ]
        return _first_fitting(variants, columns, self.encoding)

    def time_left(self, now: float) -> Optional[float]:
        """An estimate of the batch's time left, downloads included, or
        ``None`` before there is any."""
        times = [v.ended - v.started for v in self.views if v.state == "done" and v.started and v.ended]
        average = sum(times) / len(times) if times else None
        fetches = [v.fetched for v in self.views if v.fetched is not None]
        fetch = sum(fetches) / len(fetches) if fetches else 0.0
        lefts = []
        for view in self.views:
            if view.state not in RUNNING:
                continue
            left = _left(view, now)
            if view.state == "downloading":
                left = _download_left(view, now, fetch)
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
        work = sum(lefts) + waiting * (average or 0.0)
        return max(max(lefts, default=0.0), work / self.concurrency)


def job_line(view: JobView, now: float, columns: int, number: int = 1, encoding: str = "utf-8", labels: int = 0) -> str:
    """One job's line on the live board: its number, its label (padded to
    ``labels`` columns so that the bars line up; shortened first), then what
    it is doing, with fewer details when room is short."""
    head = f"{view.position:>{number}} "
    variants = _details(view, now)
    for detail in variants:
        room = columns - shown_width(head + " " + detail, encoding)
        if room >= min(8, shown_width(view.label, encoding)) or detail is variants[-1]:
            room = min(room, labels) if labels else room
            label = shorten(view.label, max(room, 0), encoding) if view.label else ""
            label += " " * max(room - width(label), 0)
            return f"{head}{label}{' ' if label else ''}{detail}"
    raise AssertionError("unreachable")


def _details(view: JobView, now: float) -> List[str]:
    """What a job's line says after its label, from the fullest to the shortest."""
    elapsed = duration(now - view.started) if view.started is not None else "0:00"
    if view.state == "rendering":
        percent, guessed = view.render_percent(now)
        mark = "~" if guessed else " "
        note = f" ({view.service_state})" if view.service_state and view.service_state != "rendering" else ""
        left = _left(view, now)
        later = f", ~{duration(left)} left" if left is not None and left >= 1 else ""
        return [
            f"{bar(percent / 100, 12)} {percent:3.0f}%{mark}{note} {elapsed}{later}",
            f"{bar(percent / 100, 6)} {percent:3.0f}%{mark} {elapsed}{later.replace(', ', ' ')}",
            f"{percent:3.0f}%{mark} {elapsed}{later.replace(', ', ' ')}",
            f"{percent:3.0f}%{mark} {elapsed}",
        ]
    if view.state == "downloading":
        part = view.received / view.total if view.received is not None and view.total else 0.0
        amount = size_text(view.received) + (f" of {size_text(view.total)}" if view.total else "")
        speed = f" at {size_text(view.speed)}/s" if view.speed is not None else ""
        return [
            f"{bar(part, 12)} downloading {amount}{speed} {elapsed}",
            f"{bar(part, 6)} {size_text(view.received)}{speed} {elapsed}",
            f"dl {part * 100:3.0f}% {elapsed}",
        ]
    if view.state == "finishing":
        return [f"{bar(view.finished, 12)} {view.doing} {view.finished * 100:3.0f}% {elapsed}",
                f"{view.doing} {view.finished * 100:3.0f}% {elapsed}"]  # fmt: skip
    if view.state == "done":
        took = duration(view.ended - view.started) if view.ended is not None and view.started is not None else ""
        return [f"done in {took}: {view.path}", f"done in {took}", "done"]
    if view.state == "skipped":
        return [f"already downloaded: {view.path}", "already downloaded"]
    if view.state == "failed":
        return [f"FAILED: {view.error}", "FAILED (the reason is above)", "FAILED"]
    if view.state == "submitted":
        return [f"exported, waiting for the render {elapsed}", f"exported {elapsed}"]
    return ["waiting"]


def job_text(view: JobView, now: float) -> str:
    """A job's plain line (in a log, where no width limits it)."""
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
    if view.state == "finishing":
        return f"{view.doing} {view.finished * 100:3.0f}%{key}  {elapsed}"
    if view.state == "done":
        return f"done {view.path}  {elapsed}"
    if view.state == "skipped":
        return f"already downloaded, skipped ({view.path})"
    if view.state == "failed":
        return f"FAILED {view.error}"
    return "waiting"


def _told(error: Any) -> str:
    return " ".join(str(error).split()) if error is not None else "failed"


def _advice(view: JobView, error: Any) -> str:
    """What to do about a failed job, unless its message says it already."""
    if isinstance(error, ExportUncertain):
        return ""  # its message says how to check the dashboard before paying again
    return f" Run the same command again to retry job {view.position}; finished jobs are not paid for again."


def _left(view: JobView, now: float) -> Optional[float]:
    if view.seconds_left is None:
        return None
    estimate, when = view.seconds_left
    return max(estimate - (now - when), 0.0)


def _download_left(view: JobView, now: float, typical: float) -> Optional[float]:
    if view.speed and view.total and view.received is not None:
        return max(view.total - view.received, 0) / view.speed
    if typical and view.fetching is not None:
        return max(typical - (now - view.fetching), 0.0)
    return None if view.total else 0.0


def _counts(views: List[JobView]) -> Dict[str, int]:
    counts = {"running": 0, "done": 0, "skipped": 0, "failed": 0, "waiting": 0}
    for view in views:
        counts["running" if view.state in RUNNING else view.state] += 1
    return counts


def bar(share: float, cells: int) -> str:
    """``[######------]``: ``share`` (0 to 1) of ``cells`` filled."""
    filled = round(min(max(share, 0.0), 1.0) * cells)
    return "[" + "#" * filled + "-" * (cells - filled) + "]"


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


def as_printed(text: str, encoding: str = "utf-8") -> str:
    """``text`` as a stream in ``encoding`` prints it: what it cannot show
    becomes its escape (``\\uac00``), as the command's streams are set to."""
    return text.encode(encoding, "backslashreplace").decode(encoding, "replace")


def shown_width(text: str, encoding: str = "utf-8") -> int:
    return width(as_printed(shown(text), encoding))


def fit(text: str, columns: int, encoding: str = "utf-8") -> str:
    """``text`` made safe (:func:`shown`), as the stream will print it, cut
    to ``columns`` terminal columns: cut after escaping, so that an escaped
    line never wraps."""
    text = as_printed(shown(text), encoding)
    used = 0
    for index, char in enumerate(text):
        used += width(char)
        if used > columns:
            return text[:index]
    return text


def shorten(text: str, columns: int, encoding: str = "utf-8") -> str:
    """``text`` in at most ``columns`` columns, an ellipsis (``...``) in its
    middle when it must be cut, as printed in ``encoding``."""
    text = as_printed(shown(text), encoding)
    if width(text) <= columns:
        return text
    if columns <= 3:
        return "." * max(columns, 0)
    keep = columns - 3
    head = fit(text, (keep + 1) // 2)
    tail_room, tail = keep - width(head), ""
    for char in reversed(text):
        if width(tail) + width(char) > tail_room:
            break
        tail = char + tail
    return f"{head}...{tail}"


def _first_fitting(variants: List[str], columns: int, encoding: str) -> str:
    for variant in variants:
        if shown_width(variant, encoding) <= columns:
            return variant
    return variants[-1]


def width(text: str) -> int:
    """Terminal columns ``text`` takes: Korean characters take two."""
    return sum(2 if unicodedata.east_asian_width(char) in "WF" else 1 for char in text)


def terminal_size(stream: Optional[TextIO] = None) -> Tuple[int, int]:
    """``(columns, rows)``: ``$COLUMNS`` and ``$LINES`` first, as for
    :func:`shutil.get_terminal_size`, else the terminal ``stream`` writes
    to, else 80 by 24."""
    try:
        size = os.get_terminal_size(stream.fileno()) if stream is not None else None
        columns, rows = (size.columns or 80, size.lines or 24) if size else (80, 24)
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


def summary(board: Board, columns: int = 80, encoding: str = "utf-8") -> str:
    """The table printed at the end, within ``columns``: each job's state,
    file (relative to the working folder, shortened in its middle if it must
    be) or reason (on lines of its own when long), and project key (in a
    column where there is room, else below the file when the file's name
    does not show it); then the counts: what was exported, and paid for, in
    this run, what was resumed from an earlier run's export, and what an
    earlier run had finished."""
    number = max(len(str(len(board.views))), 3)
    keys = max([len(view.project_key or "-") for view in board.views] + [len("project key")])
    cells = [(view, _cell(view)) for view in board.views]
    files = [cell for view, cell in cells if view.state in ("done", "skipped")]  # reasons wrap anyway
    wide = all(number + 13 + keys + shown_width(cell, encoding) <= columns for cell in files)
    head = f"{'job':>{number}}  {'state':<7}  " + (f"{'project key':<{keys}}  " if wide else "")
    lines = [head + "file or reason"]
    room = max(columns - len(head), 10)
    for view, cell in cells:
        state = view.state if view.state in FINISHED else "not run"
        key = f"{as_printed(shown(view.project_key or '-'), encoding):<{keys}}  " if wide else ""
        start = f"{view.position:>{number}}  {state:<7}  {key}"
        if view.state in ("done", "skipped") and view.path is not None:
            size = f" ({size_text(view.size)})" if view.size else ""
            cell = shorten(_relative(view.path), room - width(size), encoding) + size
            lines.append(start + cell)
        elif shown_width(cell, encoding) <= room:
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
    if totals["resumed"]:
        line += f"; resumed from an earlier run's export: {totals['resumed']}"
    if totals["skipped"]:
        line += f"; already downloaded, skipped: {totals['skipped']}"
    lines.extend(wrap(line, columns, encoding))
    return "\n".join(lines)


def _cell(view: JobView) -> str:
    if view.state in ("done", "skipped") and view.path is not None:
        return _relative(view.path) + (f" ({size_text(view.size)})" if view.size else "")
    return view.error or "not finished"


def _relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def wrap(text: str, columns: int, encoding: str = "utf-8") -> List[str]:
    """``text`` in lines of at most ``columns`` columns, broken between words
    where it can be (Korean counted as two columns each)."""
    lines: List[str] = []
    line = ""
    for word in as_printed(shown(text), encoding).split():
        while width(word) > columns:  # a word longer than a line: cut it
            if line:
                lines.append(line)
                line = ""
            head = fit(word, columns)
            lines.append(head)
            word = word[len(head) :]
        if line and width(line) + 1 + width(word) > columns:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line] if line else lines or [""]


def totals_of(board: Board) -> Dict[str, int]:
    """Counts of the batch: jobs, done (skipped included), exported in this
    run (each a paid render), resumed (polled on an earlier run's export),
    skipped, failed, not finished."""
    counts = _counts(board.views)
    return {
        "jobs": len(board.views),
        "done": counts["done"] + counts["skipped"],
        "exported": sum(1 for view in board.views if view.exported),
        "resumed": sum(1 for view in board.views if not view.exported and view.state != "skipped" and view.project_key),
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
