"""The journal: a record that money depends on is written whole or not at
all, and read back whole however the file was saved."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, Dict, List

import pytest

from aistudios_chromakey import export_chromakeys
from aistudios_chromakey._journal import JOURNAL_NAME, Entry, JobState, open_journal
from aistudios_chromakey.simulator import RenderPlan, Simulator

from .conftest import SECRET

ROOT = Path(__file__).resolve().parents[1]


def test_a_journal_saved_without_its_final_newline_keeps_its_last_record(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    sim.plan(RenderPlan(seconds=0.2), RenderPlan(seconds=0.2))
    export_chromakeys(jobs[:2], SECRET, base_url=sim.base_url, out_dir=tmp_path, poll_interval=0.05)
    journal = tmp_path / JOURNAL_NAME
    journal.write_text(journal.read_text(encoding="utf-8").rstrip("\n"), encoding="utf-8")  # as an editor saves it
    for path in tmp_path.glob("*.mp4"):
        path.unlink()  # the videos were moved away: the next run must download them, not export them again
    export_chromakeys(jobs[:2], SECRET, base_url=sim.base_url, out_dir=tmp_path, poll_interval=0.05)
    assert len(sim.exports) == 2


def test_a_torn_last_line_is_still_ignored(tmp_path: Path) -> None:
    with open_journal(tmp_path, keep=True) as journal:
        journal.put("a#1", Entry(1, JobState.SUBMITTED, "key-a"))
    path = tmp_path / JOURNAL_NAME
    path.write_bytes(path.read_bytes() + b'{"job": "b#1", "state": "subm')  # a kill in the middle of an append
    with open_journal(tmp_path, keep=True) as journal:
        assert journal.get("a#1") == Entry(1, JobState.SUBMITTED, "key-a")
        assert journal.get("b#1") is None


_FULL_DISK = textwrap.dedent(
    """
    import os, resource, signal, sys
    from pathlib import Path
    from aistudios_chromakey._reports import JournalError
    from aistudios_chromakey._journal import JOURNAL_NAME, Entry, JobState, open_journal

    folder = Path(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit is cut short, as on a full disk
    with open_journal(folder, keep=True) as journal:
        size = (folder / JOURNAL_NAME).stat().st_size
        resource.setrlimit(resource.RLIMIT_FSIZE, (size + 700, resource.RLIM_INFINITY))
        for n in range(1, 100):
            try:
                journal.put(f"job-{n}#1", Entry(n, JobState.SUBMITTED, f"key-{n}-" + "k" * 40))
            except JournalError as error:
                print(n, error, flush=True)
                os._exit(0)  # killed as it stands: no compaction at the end
    """
)


def test_a_full_disk_never_leaves_a_torn_record_behind(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _FULL_DISK, str(tmp_path)], capture_output=True, text=True, timeout=60,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    failed, _, message = result.stdout.partition(" ")
    assert f"key-{failed}-" in message  # the paid key is said, to be noted
    lines = (tmp_path / JOURNAL_NAME).read_bytes().split(b"\n")
    assert lines[-1] == b"" and all(json.loads(line) for line in lines[:-1])  # whole records only
    with open_journal(tmp_path, keep=True) as journal:  # space came back: the next run reads and writes on
        kept = [n for n in range(1, int(failed)) if journal.get(f"job-{n}#1") is not None]
        assert kept == list(range(1, int(failed)))
        journal.put("after#1", Entry(99, JobState.SUBMITTED, "key-after"))
    with open_journal(tmp_path, keep=True) as journal:
        assert journal.get("after#1") is not None


_EXPORT_ONE = textwrap.dedent(
    """
    import sys
    from aistudios_chromakey import export_chromakeys
    job = {"language": "ko", "text": "hi", "model": "M000004017", "clothes": "BG00006160"}
    try:
        export_chromakeys([job], sys.argv[3], base_url=sys.argv[1], out_dir=sys.argv[2], poll_interval=0.05)
    except Exception as error:
        print(type(error).__name__, error)
    """
)


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace injects the failed fsync")
def test_a_failed_fsync_of_the_exporting_record_leaves_the_job_free_to_export(sim: Simulator, tmp_path: Path) -> None:
    # The third fsync of a run is the one of the record written just before the
    # export is sent (after the journal's two at opening): it fails with EIO.
    result = subprocess.run(
        ["strace", "-f", "-qq", "-o", "/dev/null", "-e", "trace=fsync", "-e", "inject=fsync:error=EIO:when=3",
         sys.executable, "-c", _EXPORT_ONE, sim.base_url, str(tmp_path), SECRET],
        capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert result.stdout.startswith("JournalError"), result.stdout + result.stderr
    assert sim.exports == []  # stopped before sending
    again = subprocess.run(
        [sys.executable, "-c", _EXPORT_ONE, sim.base_url, str(tmp_path), SECRET],
        capture_output=True, text=True, timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert again.stdout == "", again.stdout  # not "ExportUncertain" forever: exported and saved
    assert len(sim.exports) == 1 and len(list(tmp_path.glob("*.mp4"))) == 1


def test_a_journal_line_nested_too_deeply_is_a_journal_error(tmp_path: Path) -> None:
    from aistudios_chromakey import JournalError

    with open_journal(tmp_path, keep=True) as journal:
        journal.put("a#1", Entry(1, JobState.SUBMITTED, "key-a"))
    path = tmp_path / JOURNAL_NAME
    path.write_bytes(path.read_bytes() + b"[" * 200_000 + b"]" * 200_000 + b"\n")
    with pytest.raises(JournalError, match="line 3 is not JSON"), open_journal(tmp_path, keep=True):
        pass


def test_a_token_whose_payload_is_nested_too_deeply_has_no_expiry() -> None:
    import base64

    from aistudios_chromakey._access import token_expiry

    payload = base64.urlsafe_b64encode(b"[" * 200_000 + b"]" * 200_000).rstrip(b"=").decode()
    assert token_expiry(f"eyJhbGciOiJIUzI1NiJ9.{payload}.sig") is None
