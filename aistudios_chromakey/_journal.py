"""The batch journal: what was paid for and what was saved, across runs.

A log of JSON lines in the output folder, one per change to a job (no
credential, no job text), each appended with one write: a step costs the same
whatever the batch's size, and a kill tears at most the last line, which the
next run ignores. It is compacted to one line per job when a run opens and ends.
Plain text, not SQLite: readable in any editor, and in every Python build.
"""

from __future__ import annotations

import contextlib
import enum
import json
import logging
import os
import re
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from ._reports import JournalError

logger = logging.getLogger("aistudios_chromakey")

#: The journal's file name inside the output folder.
JOURNAL_NAME = ".aistudios-chromakey.json"
_FORMAT = "aistudios-chromakey journal"
_VERSION = 2
# What a killed run leaves: a download's temporary ".<name>.<8 hex>.part", a journal being rewritten.
_LEFTOVER = re.compile(r"^\..+\.[0-9a-f]{8}\.part$|^" + re.escape(JOURNAL_NAME) + r"\..+\.tmp$")


class JobState(str, enum.Enum):
    """Where a job stands. A job absent from the journal was never accepted."""

    EXPORTING = "exporting"  # its export was being sent: it may exist and be paid for
    UNCERTAIN = "uncertain"  # its export's answer was lost: it may exist and be paid for
    SUBMITTED = "submitted"  # accepted: it has a project key, maybe a finished render
    DONE = "done"  # downloaded: it has a file
    FAILED = "failed"  # the render failed: exporting it again is a new attempt


@dataclass(frozen=True)
class Entry:
    """What the journal knows of one job."""

    position: int
    state: JobState
    project_key: Optional[str] = None
    file: Optional[str] = None
    size: Optional[int] = None
    sha256: Optional[str] = None
    verified: Optional[str] = None  # the host's checksum that the file matched, if any
    made: Optional[str] = None  # what the batch's finishing step made of the video (a transparent clip)

    def line(self, fingerprint: str) -> bytes:
        fields = {k: v for k, v in asdict(self).items() if v is not None}  # the state is a str: JSON as its value
        return (json.dumps({"job": fingerprint, **fields}, ensure_ascii=False) + "\n").encode("utf-8")


# Records a run must not lose even to a power cut: they say what may be paid for.
_DURABLE = frozenset({JobState.EXPORTING, JobState.SUBMITTED})


class Journal:
    """The journal of one output folder, open for one run (see :func:`open_journal`)."""

    def __init__(self, folder: Path):
        self.path = folder / JOURNAL_NAME
        self.entries: Dict[str, Entry] = {}
        self._fd: Optional[int] = None
        self._lines = 0

    @property
    def keeps(self) -> bool:
        """Whether this journal writes anything (``resume=True``)."""
        return self._fd is not None

    def get(self, fingerprint: str) -> Optional[Entry]:
        return self.entries.get(fingerprint)

    def put(self, fingerprint: str, entry: Entry) -> None:
        """Record a job's new state; durable before it returns where money depends on it."""
        self.entries[fingerprint] = entry
        self._append(entry.line(fingerprint), entry.state in _DURABLE, entry.project_key)

    def forget(self, fingerprint: str) -> None:
        """The job was certainly not accepted: as if never tried."""
        if self.entries.pop(fingerprint, None) is not None:
            self._append(json.dumps({"job": fingerprint, "forget": True}).encode() + b"\n")

    def _append(self, line: bytes, durable: bool = False, key: Optional[str] = None) -> None:
        if self._fd is None:
            return
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            written = 0
            while written < len(line):  # a full disk writes part of a record and says so only by its count
                written += os.write(self._fd, line[written:])
            if durable:
                os.fsync(self._fd)
        except OSError as error:
            # Whole or not at all: no later line (should space come back) follows a torn one.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
            note = f" The project key is {key}: note it." if key else ""
            raise JournalError(
                f"cannot write the batch journal {self.path} ({error.strerror or error}); the batch stopped so "
                f"that nothing is paid for twice.{note}",
                nothing_sent=False,
            ) from None
        self._lines += 1

    def load(self) -> None:
        try:
            lines = self.path.read_bytes().decode("utf-8").split("\n")
        except FileNotFoundError:
            return
        except OSError as error:
            raise self._unreadable(error.strerror or str(error)) from None
        except UnicodeDecodeError:
            raise self._unreadable("not UTF-8 text") from None
        records = []
        for number, line in enumerate(lines, start=1):
            try:
                if line.strip():
                    records.append(self._record(number, line))
            except JournalError:
                # A broken last line was torn by a kill mid-append: it never happened. (One that only lost its
                # final newline is kept: it may hold a paid render's key. The header, renamed in, is never torn.)
                if number < len(lines) or number == 1:
                    raise
        if records and records[0].get("format") != _FORMAT:
            raise self._unreadable("not a journal of aistudios-chromakey")
        if records and records[0].get("version") != _VERSION:
            raise self._unreadable(f"journal version {records[0].get('version')!r}, expected {_VERSION}")
        for number, record in enumerate(records[1:], start=2):
            fingerprint = record.get("job")
            if not isinstance(fingerprint, str):
                raise self._unreadable(f"line {number} names no job")
            if record.get("forget") is True:
                self.entries.pop(fingerprint, None)
            else:
                self.entries[fingerprint] = self._entry(record, number)

    def _record(self, number: int, line: str) -> Dict[str, Any]:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as error:
            raise self._unreadable(f"line {number} is not JSON: {error}") from None
        if not isinstance(record, dict):
            raise self._unreadable(f"line {number} is not a JSON object")
        return record

    def _entry(self, record: Dict[str, Any], number: int) -> Entry:
        try:
            state = JobState(record.get("state"))
        except ValueError:
            raise self._unreadable(f"line {number}: unknown state {record.get('state')!r}") from None
        position = record.get("position")
        fields = {name: record.get(name) for name in ("project_key", "file", "size", "sha256", "verified", "made")}
        if not isinstance(position, int) or not all(
            value is None or isinstance(value, int if name == "size" else str) for name, value in fields.items()
        ):
            raise self._unreadable(f"line {number}: a field has the wrong type")
        return Entry(position, state, **fields)

    def _unreadable(self, reason: str) -> JournalError:
        return JournalError(
            f"the batch journal {self.path} cannot be used ({reason}). It records which jobs were already paid "
            "for, so nothing was sent. Move it aside to start afresh (the jobs it listed will be exported and "
            "paid for again), or run with resume=False (--no-resume)."
        )

    def compact(self) -> None:
        """Rewrite the log as one line per job, atomically, and keep it open for appending."""
        lines = [json.dumps({"format": _FORMAT, "version": _VERSION}).encode() + b"\n"]
        lines += [entry.line(fingerprint) for fingerprint, entry in self.entries.items()]
        self.close()
        try:
            descriptor, temporary = tempfile.mkstemp(dir=self.path.parent, prefix=JOURNAL_NAME + ".", suffix=".tmp")
            try:
                with os.fdopen(descriptor, "wb") as out:
                    out.write(b"".join(lines))
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(temporary, self.path)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(temporary)
                raise
            sync_folder(self.path.parent)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except OSError as error:
            raise JournalError(
                f"cannot write the batch journal {self.path} ({error.strerror or error}); nothing was sent"
            ) from None
        self._lines = len(self.entries)

    def finish(self) -> None:
        """Compact the log if the run made it long, and close it."""
        if self._fd is not None and self._lines > 2 * len(self.entries) + 1:
            with contextlib.suppress(JournalError):
                self.compact()
        self.close()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows)."""
    if sys.platform != "win32":
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)


@contextlib.contextmanager
def open_journal(folder: Path, keep: bool) -> Iterator[Journal]:
    """The folder's journal, locked against a second run, loaded and compacted (``keep=False``: remembering nothing)."""
    journal = Journal(folder)
    with _folder_lock(folder):  # without a journal too: another run's cleaning would take our downloads
        if not keep:
            yield journal
            return
        journal.load()
        journal.compact()
        # What a killed run left (the folder is locked: no other run is writing it).
        removed = 0
        for entry in os.scandir(folder):
            if _LEFTOVER.match(entry.name) and entry.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed += 1
        if removed:
            logger.info("removed %d temporary file(s) an earlier run left in %s", removed, folder)
        try:
            yield journal
        finally:
            journal.finish()


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Keep a second run out of ``folder``: two runs sharing a journal would each export what the other did."""
    if sys.platform == "win32":  # no advisory locks: one run per folder is then up to the user
        yield
        return
    import fcntl

    descriptor = os.open(folder, os.O_RDONLY)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise JournalError(
                f"another run is using the output folder {folder}: wait for it to finish, or stop it, then "
                "run this batch again. Nothing was sent."
            ) from None
        yield
    finally:
        os.close(descriptor)  # releases the lock
