"""The batch journal: what was paid for and what was saved, across runs.

A small file in the output folder, ``.aistudios-chromakey.json``, records
for each job its fingerprint, state, project key and file. It holds no
credential and no job text.

It is a log of JSON lines, one per change, each appended with a single
write: a step costs the same whatever the batch's size (rewriting a whole
JSON document at every step made a batch quadratic), and a run killed at
any moment leaves at worst a torn last line, which the next run ignores.
The two records money depends on (an export about to be sent, and the
project key it got) are flushed to the disk before the run goes on. The log
is compacted, one line per job, when a run opens it and when it ends.
SQLite would also do, but a text file stays readable with any editor and
needs nothing that might be missing from a Python build.
"""

from __future__ import annotations

import contextlib
import enum
import errno
import json
import logging
import os
import re
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from ._errors import JournalError

logger = logging.getLogger("aistudios_chromakey")

#: The journal's file name inside the output folder.
JOURNAL_NAME = ".aistudios-chromakey.json"
_FORMAT = "aistudios-chromakey journal"
_VERSION = 2


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

    def line(self, fingerprint: str) -> bytes:
        fields = {k: v for k, v in asdict(self).items() if v is not None}
        fields["state"] = self.state.value
        return (json.dumps({"job": fingerprint, **fields}, ensure_ascii=False) + "\n").encode("utf-8")


# Records a run must not lose even to a power cut: they say what may be paid for.
_DURABLE = frozenset({JobState.EXPORTING, JobState.SUBMITTED})


def _whole_record(line: str) -> bool:
    """A JSON object, complete: a record cut short never parses as one."""
    try:
        return isinstance(json.loads(line), dict)
    except (ValueError, RecursionError):
        return False


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
        self._append(entry.line(fingerprint), durable=entry.state in _DURABLE, key=entry.project_key)

    def forget(self, fingerprint: str) -> None:
        """The job was certainly not accepted: as if never tried."""
        if self.entries.pop(fingerprint, None) is not None:
            self._append(json.dumps({"job": fingerprint, "forget": True}).encode() + b"\n", durable=False, key=None)

    def _append(self, line: bytes, durable: bool, key: Optional[str]) -> None:
        if self._fd is None:
            return
        start = os.lseek(self._fd, 0, os.SEEK_END)
        try:
            written = 0
            while written < len(line):  # a full disk writes part of a record and says so only by its count
                count = os.write(self._fd, line[written:])
                if count <= 0:
                    raise OSError(errno.ENOSPC, "no space left on the device")
                written += count
            if durable:
                os.fsync(self._fd)
        except OSError as error:
            # Whole or not at all: a part of a record is cut away, so the lines
            # after it (should space come back) never follow a torn one.
            with contextlib.suppress(OSError):
                os.ftruncate(self._fd, start)
            note = f" The project key is {key}: note it." if key else ""
            raise JournalError(
                f"cannot write the batch journal {self.path} ({error.strerror or error}); the batch stopped so "
                f"that nothing is paid for twice.{note}",
                nothing_sent=False,
            ) from None
        self._lines += 1

    # --- opening and closing ------------------------------------------------

    def load(self) -> None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return
        except OSError as error:
            raise self._unreadable(error.strerror or str(error)) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise self._unreadable("not UTF-8 text") from None
        self.entries = self._read_lines(text)

    def _read_lines(self, text: str) -> Dict[str, Entry]:
        lines = text.split("\n")
        if len(lines) > 1 and lines[-1] != "" and not _whole_record(lines[-1]):
            # Torn by a kill in the middle of an append: it never happened. A
            # whole record that only lost its final newline (an editor saved
            # it so) is kept: it may hold the key of a paid render. (The
            # header is written whole, by a rename, so it is never torn.)
            lines[-1] = ""
        records = [self._record(number, line) for number, line in enumerate(lines, start=1) if line.strip()]
        if not records:
            return {}
        header = records[0]
        if header.get("format") != _FORMAT:
            raise self._unreadable("not a journal of aistudios-chromakey")
        if header.get("version") != _VERSION:
            raise self._unreadable(f"journal version {header.get('version')!r}, expected {_VERSION}")
        entries: Dict[str, Entry] = {}
        for number, record in enumerate(records[1:], start=2):
            fingerprint = record.get("job")
            if not isinstance(fingerprint, str):
                raise self._unreadable(f"line {number} names no job")
            if record.get("forget") is True:
                entries.pop(fingerprint, None)
            else:
                entries[fingerprint] = self._entry(record, f"line {number}")
        return entries

    def _record(self, number: int, line: str) -> Dict[str, Any]:
        try:
            record = json.loads(line)
        except (ValueError, RecursionError) as error:
            raise self._unreadable(f"line {number} is not JSON: {error}") from None
        if not isinstance(record, dict):
            raise self._unreadable(f"line {number} is not a JSON object")
        return record

    def _entry(self, record: Dict[str, Any], where: str) -> Entry:
        try:
            state = JobState(record.get("state"))
        except ValueError:
            raise self._unreadable(f"{where}: unknown state {record.get('state')!r}") from None
        position = record.get("position")
        fields = {name: record.get(name) for name in ("project_key", "file", "size", "sha256", "verified")}
        if not isinstance(position, int) or not all(
            value is None or isinstance(value, int if name == "size" else str) for name, value in fields.items()
        ):
            raise self._unreadable(f"{where}: a field has the wrong type")
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
            _replace_durably(self.path, b"".join(lines))
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


def _replace_durably(path: Path, content: bytes) -> None:
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(content)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    sync_folder(path.parent)


def sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (where the platform allows)."""
    if sys.platform == "win32":
        return
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def open_journal(folder: Path, keep: bool) -> Iterator[Journal]:
    """The folder's journal, locked against a second run, loaded and
    compacted; with ``keep=False`` a journal that remembers nothing."""
    journal = Journal(folder)
    if not keep:
        # No journal, but still the folder's one run: another run's leftover
        # cleaning must never take this run's downloads for a killed run's.
        with _folder_lock(folder):
            yield journal
        return
    with _folder_lock(folder):
        journal.load()
        journal.compact()
        remove_leftovers(folder)
        try:
            yield journal
        finally:
            journal.finish()


# What a run of this library leaves behind when it is killed: a download's
# temporary file (".<name>.<8 hex>.part") and a journal being rewritten.
_LEFTOVER = re.compile(r"^\..+\.[0-9a-f]{8}\.part$|^" + re.escape(JOURNAL_NAME) + r"\..+\.tmp$")


def remove_leftovers(folder: Path) -> int:
    """Remove the temporary files an earlier, killed run of this folder left
    (only names this library makes; run while the folder is locked, so no
    other run is writing them). Returns how many were removed."""
    removed = 0
    for entry in os.scandir(folder):
        if _LEFTOVER.match(entry.name) and entry.is_file(follow_symlinks=False):
            with contextlib.suppress(OSError):
                os.unlink(entry.path)
                removed += 1
    if removed:
        logger.info("removed %d temporary file(s) an earlier run left in %s", removed, folder)
    return removed


@contextlib.contextmanager
def _folder_lock(folder: Path) -> Iterator[None]:
    """Keep a second run out of this folder while this one runs (two runs
    sharing a journal would each export what the other did). The lock is on
    the folder itself and dies with the process."""
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
