"""What the command line shows while a batch runs, and the summary after it.

On a terminal each job has a line, redrawn in place; piped into a file the
same news comes as plain lines. The library itself prints nothing: it calls
:meth:`Board.__call__` with a :class:`ProgressEvent` at each step.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Dict, List, Optional, Sequence, TextIO, Tuple

from .events import ProgressEvent


class Board:
    """Progress on the terminal: one line per job, redrawn in place; plain
    lines when the output is not a terminal (a log file, CI)."""

    def __init__(self, count: int, stream: TextIO, live: bool, quiet: bool):
        self.states: List[str] = ["waiting"] * count
        self.stream = stream
        self.quiet = quiet
        rows = shutil.get_terminal_size().lines
        self.live = live and not quiet and count <= max(rows - 2, 1)
        self.drawn = 0
        self.steps: Dict[int, int] = {}
        self.keys: Dict[int, str] = {}
        self.files: Dict[int, Tuple[Optional[int], Optional[str]]] = {}

    def __call__(self, event: ProgressEvent) -> None:
        if event.position is None:
            return
        index = event.position - 1
        if event.project_key:
            self.keys[event.position] = event.project_key
        if event.kind == "done":
            self.files[event.position] = (event.size, event.sha256)
        key = f" {event.project_key}" if event.project_key else ""
        if event.kind == "progress":
            state = f"rendering {event.progress or 0:5.1f}%{key}"
        elif event.kind == "submitted":
            state = f"submitted{key}"
        elif event.kind == "downloading":
            state = f"downloading{key}"
        elif event.kind == "done":
            state = f"done      {event.path}"
        else:
            state = f"FAILED    {event.error}".splitlines()[0]
        self.states[index] = state
        if self.live:
            self._redraw()
        elif not self.quiet and self._worth_a_line(index, event):
            self.stream.write(f"job {event.position}: {state}\n")
            self.stream.flush()

    def _worth_a_line(self, index: int, event: ProgressEvent) -> bool:
        """In plain output, progress only when it passes another tenth."""
        if event.kind != "progress":
            return True
        step = int((event.progress or 0) // 10)
        if step == self.steps.get(index, -1):
            return False
        self.steps[index] = step
        return True

    def _redraw(self) -> None:
        width = max(shutil.get_terminal_size().columns - 1, 20)
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F")  # back to the first line of the board
        for number, state in enumerate(self.states, start=1):
            self.stream.write(f"\x1b[2Kjob {number:>3}: {state}"[: width + 4] + "\n")
        self.drawn = len(self.states)
        self.stream.flush()


def summary(board: Board, paths: Sequence[Optional[Path]], errors: Dict[int, BaseException]) -> str:
    """The table printed at the end: job, project key, state, file or reason."""
    rows = []
    for position in range(1, len(board.states) + 1):
        path = paths[position - 1] if position - 1 < len(paths) else None
        key = board.keys.get(position, "-")
        if position in errors:
            rows.append((position, key, "failed", str(errors[position]).splitlines()[0]))
        else:
            size, sha256 = board.files.get(position, (None, None))
            detail = f"  ({size} bytes, sha256 {sha256[:16]}…)" if size is not None and sha256 else ""
            rows.append((position, key, "done", f"{path}{detail}"))
    width = max([len("project key")] + [len(row[1]) for row in rows])
    lines = [f"{'job':>4}  {'project key':<{width}}  {'state':<6}  file or reason"]
    lines += [f"{p:>4}  {k:<{width}}  {state:<6}  {text}" for p, k, state, text in rows]
    done = sum(1 for p in paths if p is not None)
    lines.append(f"{done} of {len(board.states)} done" + (f", {len(errors)} failed" if errors else ""))
    return "\n".join(lines)
