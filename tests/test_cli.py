"""The command line, run as a real process against the simulator."""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

import pytest

from aistudios_chromakey import __version__, request_export
from aistudios_chromakey._board import width
from aistudios_chromakey._cli import TUTORIAL_JOBS
from aistudios_chromakey.simulator import RenderPlan, Simulator

from .conftest import SECRET, default_signal_handling

ROOT = Path(__file__).resolve().parents[1]


def _env(key: Optional[str] = SECRET) -> Dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "AISTUDIOS_API_KEY"}
    env["PYTHONPATH"] = str(ROOT)
    if key is not None:
        env["AISTUDIOS_API_KEY"] = key
    return env


def cli(
    *args: str, cwd: Path, key: Optional[str] = SECRET, timeout: float = 60, env: Optional[Dict[str, str]] = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aistudios_chromakey", *args],
        cwd=cwd,
        env={**_env(key), **(env or {})},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
    )


def _run(
    sim: Simulator, jobs_file: Path, *extra: str, key: Optional[str] = SECRET, env: Optional[Dict[str, str]] = None
) -> subprocess.CompletedProcess[str]:
    return cli(
        "run",
        str(jobs_file),
        "--base-url",
        sim.base_url,
        "--poll-interval",
        "0.05",
        *extra,
        cwd=jobs_file.parent,
        key=key,
        env=env,
    )


def _read_terminal(primary: int) -> bytes:
    """All a child wrote to its pseudo-terminal, until it closed its end."""
    screen = b""
    while True:
        try:
            data = os.read(primary, 65536)
        except OSError:  # the child closed its end
            break
        if not data:
            break
        screen += data
    os.close(primary)
    return screen


def _json_file(tmp_path: Path, jobs: Any, name: str = "jobs.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(jobs, ensure_ascii=False), encoding="utf-8")
    return path


def test_run_exports_a_json_batch_and_exits_0(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    result = _run(sim, _json_file(tmp_path, jobs))
    assert result.returncode == 0, result.stderr
    assert [e.body for e in sim.exports] == jobs
    for export in sim.exports:
        assert (tmp_path / "videos" / f"{export.key}.mp4").read_bytes() == sim.video(export.key)
    assert "3 of 3 done" in result.stdout
    for export in sim.exports:  # the summary names each project and its file's size
        assert re.search(rf"^\s+\d\s+done\s+.*{export.key[-9:]}\.mp4 \(\d+\.\d kB\)$", result.stdout, re.M)
        assert export.key in result.stdout
    for n in (1, 2, 3):
        assert f"job {n}: done" in result.stderr  # plain progress lines when not on a terminal


def _run_here(
    sim: Simulator, jobs_file: Path, *extra: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> subprocess.CompletedProcess[str]:
    """As :func:`_run`, in this process: ``main()`` returns the exit status, and
    the library's waits are the tests' short ones (a failed render is one that
    stays failed for a while)."""
    from aistudios_chromakey._cli import main

    monkeypatch.setenv("AISTUDIOS_API_KEY", SECRET)
    monkeypatch.chdir(jobs_file.parent)
    status = main(["run", str(jobs_file), "--base-url", sim.base_url, "--poll-interval", "0.05", *extra])
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess([], status, out, err)


def test_a_failed_job_exits_1_and_the_summary_names_it(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    sim.plan(RenderPlan(seconds=0.1), RenderPlan(seconds=0.1, fail_at=0), RenderPlan(seconds=0.1))
    result = _run_here(sim, _json_file(tmp_path, jobs), monkeypatch=monkeypatch, capsys=capsys)
    assert result.returncode == 1
    key = sim.exports[1].key
    assert re.search(r"^\s+2\s+failed\b", result.stdout, re.MULTILINE), result.stdout
    assert key in result.stdout and "render failed" in result.stdout
    assert "2 of 3 done, 1 failed" in result.stdout


def test_a_finished_batch_run_again_exports_nothing(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    jobs_file = _json_file(tmp_path, jobs)
    assert _run(sim, jobs_file).returncode == 0
    again = _run(sim, jobs_file)
    assert again.returncode == 0
    assert len(sim.exports) == 3


def test_a_spreadsheet_csv_with_bom_and_korean_text_runs(sim: Simulator, tmp_path: Path) -> None:
    rows = [
        "language,text,model,clothes,isExport,resolution",
        'ko,"안녕하세요, 저는 첫번째 작업입니다.",M000004017,BG00006160,TRUE,720',
        "ko,두번째 작업입니다.,M000004017,BG00001004,,",
        ",,,,,",
    ]
    jobs_file = tmp_path / "jobs.csv"
    jobs_file.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(rows).encode("utf-8"))
    result = _run(sim, jobs_file, "--api", "v3")
    assert result.returncode == 0, result.stderr
    assert [e.body for e in sim.exports] == [
        {
            "language": "ko",
            "text": "안녕하세요, 저는 첫번째 작업입니다.",
            "model": "M000004017",
            "clothes": "BG00006160",
            "isExport": True,
            "resolution": "720",
        },
        {
            "isExport": True,
            "language": "ko",
            "text": "두번째 작업입니다.",
            "model": "M000004017",
            "clothes": "BG00001004",
        },
    ]


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("jobs.json", "", "empty"),
        ("jobs.json", '[{"language": "ko",}]', "not valid JSON"),
        ("jobs.json", '{"language": "ko"}', "must be a JSON array"),
        ("jobs.json", "[]", "no job"),
        ("jobs.csv", "language,text,model\nko,hi,M000004017\n", r"line 1: the header lacks the column\(s\) clothes"),
        ("jobs.csv", "language,text,model,clothes\nko,hi,M000004017\n", "job 1, field 'clothes'.*line 2"),
        (
            "jobs.csv",
            "language,text,model,clothes,uppercut\nko,hi,M000004017,BG00006160,high\n",
            "line 2, column uppercut",
        ),
        (
            "jobs.json",
            json.dumps(
                [
                    {"language": "ko", "text": "hi", "model": "M000004017", "clothes": "BG00006160"},
                    {"language": "ko", "text": "", "model": "M000004017", "clothes": "BG00006160"},
                ]
            ),
            "job 2, field 'text': must not be empty.*item 2",
        ),
    ],
)
def test_a_bad_jobs_file_exits_2_and_sends_nothing(
    sim: Simulator, tmp_path: Path, name: str, content: str, message: str
) -> None:
    jobs_file = tmp_path / name
    jobs_file.write_text(content, encoding="utf-8")
    result = _run(sim, jobs_file)
    assert result.returncode == 2
    assert re.search(message, result.stderr), result.stderr
    assert "Traceback" not in result.stderr
    assert sim.log == []


def test_no_key_exits_2_and_points_to_the_demo(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    result = _run(sim, _json_file(tmp_path, jobs), key=None)
    assert result.returncode == 2
    assert "AISTUDIOS_API_KEY" in result.stderr and "demo" in result.stderr
    assert sim.log == []


def test_the_key_may_come_from_a_file(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text(SECRET + "\n", encoding="utf-8")
    result = _run(sim, _json_file(tmp_path, jobs[:1]), "--api-key-file", str(key_file), key=None)
    assert result.returncode == 0, result.stderr
    assert sim.requests("api")[0].headers["Authorization"] == SECRET


def test_the_key_is_never_printed_even_verbose(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    result = _run(sim, _json_file(tmp_path, jobs), "-v")
    assert result.returncode == 0
    assert "DEBUG" in result.stderr  # verbose really logged every step
    assert SECRET not in result.stdout + result.stderr
    wrong = _run(sim, _json_file(tmp_path, jobs), "--out", "elsewhere", key="sk-wrong-key-0000")
    assert wrong.returncode == 1
    assert "refused the API key" in wrong.stderr
    assert "sk-wrong-key-0000" not in wrong.stdout + wrong.stderr


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_exits_130_and_says_how_to_resume(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, sig: int
) -> None:
    sim.plan(RenderPlan(seconds=30))
    jobs_file = _json_file(tmp_path, jobs)
    child = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aistudios_chromakey",
            "run",
            str(jobs_file),
            "--base-url",
            sim.base_url,
            "--poll-interval",
            "0.05",
        ],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signal_handling,
    )
    deadline = time.monotonic() + 30
    while len(sim.polls()) < 3:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    child.send_signal(sig)
    _, stderr = child.communicate(timeout=30)
    assert child.returncode == 130
    assert "Run the same command again to resume without paying twice" in stderr
    assert "Traceback" not in stderr


def test_a_malformed_base_url_is_a_usage_error(jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    result = cli("run", str(_json_file(tmp_path, jobs)), "--base-url", "aistudios.com", cwd=tmp_path)
    assert result.returncode == 2
    assert "must look like" in result.stderr and "aistudios.com" in result.stderr


def test_demo_makes_three_playable_videos(tmp_path: Path) -> None:
    # A last demo's files are there: they are replaced, the folder does not grow.
    (tmp_path / "videos-demo").mkdir()
    made = ["demo-1.webm", "demo-1_composite.mp4", "demo-1_preview.png"] if shutil.which("ffmpeg") else []
    for name in ["demo-1.mp4", "demo-2.mp4", "demo-3.mp4", *made]:
        (tmp_path / "videos-demo" / name).write_bytes(b"the last demo's")
    result = cli("demo", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "videos").exists()  # never mixed with real runs
    videos = sorted((tmp_path / "videos-demo").glob("demo-?.mp4"))
    assert [v.name for v in videos] == ["demo-1.mp4", "demo-2.mp4", "demo-3.mp4"]
    assert "3 of 3 done" in result.stdout
    if made:  # the green keyed away: a transparent clip, a composite and a frame of it
        assert all((tmp_path / "videos-demo" / name).stat().st_size > 100 for name in made)
    else:
        assert 'pip install "aistudios-chromakey[video]"' in result.stderr
    assert sorted(path.name for path in (tmp_path / "videos-demo").iterdir()) == sorted([v.name for v in videos] + made)
    assert all(v.read_bytes()[4:8] == b"ftyp" for v in videos)
    if shutil.which("ffprobe"):
        for video in videos:
            probe = subprocess.run(
                ["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", str(video)],
                capture_output=True,
                text=True,
                check=True,
            )
            assert "h264" in probe.stdout


def _simulate(cwd: Path, *options: str) -> subprocess.Popen[str]:
    """``aistudios-chromakey simulate`` as a child that Ctrl-C stops."""
    return subprocess.Popen(
        [sys.executable, "-m", "aistudios_chromakey", "simulate", *options],
        cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=default_signal_handling,
    )  # fmt: skip


def test_simulate_serves_until_ctrl_c(jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-m", "aistudios_chromakey", "simulate", "--token", "local-key"],
        cwd=tmp_path,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=default_signal_handling,
    )
    try:
        assert child.stdout is not None
        first = child.stdout.readline()
        base_url = re.search(r"http://[\d.]+:\d+", first)
        assert base_url, first
        assert request_export(jobs[0], "local-key", base_url=base_url.group(0))
    finally:
        child.send_signal(signal.SIGINT)
        child.communicate(timeout=10)
    assert child.returncode == 0


def test_version(tmp_path: Path) -> None:
    result = cli("--version", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.strip() == f"aistudios-chromakey {__version__}"


def test_quiet_prints_only_the_summary(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    result = _run(sim, _json_file(tmp_path, jobs), "-q", "--timeout", "0")  # 0: no time limit
    assert result.returncode == 0
    assert result.stderr == ""
    assert "3 of 3 done" in result.stdout


def test_on_a_terminal_each_job_has_a_line_redrawn_in_place(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    primary, secondary = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "aistudios_chromakey", "run", str(_json_file(tmp_path, jobs)),
         "--base-url", sim.base_url, "--poll-interval", "0.05"],
        cwd=tmp_path, env=_env(), stdout=subprocess.DEVNULL, stderr=secondary,
    )  # fmt: skip
    os.close(secondary)
    screen = _read_terminal(primary)
    assert child.wait(timeout=30) == 0
    assert b"\x1b[4F" in screen and b"\x1b[2K" in screen  # back up three jobs and the total line, redraw
    assert re.search(rb"\[#*-*\] +\d+%", screen) and screen.count(b"done") >= 3  # bars, percents


# --- the beginner's path ----------------------------------------------------------


def test_a_korean_excel_csv_in_cp949_runs_and_the_encoding_is_reported(sim: Simulator, tmp_path: Path) -> None:
    rows = [
        "language,text,model,clothes",
        "ko,안녕하세요 첫번째,M000004017,BG00006160",
        "ko,두번째 작업,M000004017,BG00001004",
    ]
    jobs_file = tmp_path / "scripts.csv"
    jobs_file.write_bytes("\r\n".join(rows).encode("cp949"))
    result = _run(sim, jobs_file)
    assert result.returncode == 0, result.stderr
    assert "reading " in result.stderr and "scripts.csv as cp949" in result.stderr
    assert [e.body["text"] for e in sim.exports] == ["안녕하세요 첫번째", "두번째 작업"]
    assert len(list((tmp_path / "videos").glob("*.mp4"))) == 2


def test_a_utf8_file_is_read_without_a_word_about_encodings(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    result = _run(sim, _json_file(tmp_path, jobs[:1]))
    assert result.returncode == 0 and "reading" not in result.stderr


def test_name_names_the_files_from_a_template(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    result = _run(sim, _json_file(tmp_path, jobs), "--name", "{position:03d}-{language}-{clothes}")
    assert result.returncode == 0, result.stderr
    names = sorted(p.name for p in (tmp_path / "videos").glob("*.mp4"))
    assert names == ["001-ko-BG00006160.mp4", "002-ko-BG00001004.mp4", "003-ko-BG00006160.mp4"]
    bad = _run(sim, _json_file(tmp_path, jobs), "--name", "{nonsense}", "--out", "other")
    assert bad.returncode == 2 and "nonsense" in bad.stderr
    assert len(sim.exports) == 3  # the bad template sent nothing


def test_a_filename_column_names_the_file(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    jobs[0]["filename"] = "인사.mp4"
    result = _run(sim, _json_file(tmp_path, jobs[:1]))
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "videos" / "인사.mp4").is_file()
    assert "filename" not in sim.exports[0].body


def _screen_rows(screen: bytes) -> List[int]:
    """The cursor's row after each line feed or move up, from the board's start."""
    row, rows = 0, []
    for match in re.finditer(rb"\x1b\[(\d*)([A-Za-z])|\n", screen):
        if match.group(0) == b"\n":
            row += 1
        elif match.group(2) in (b"F", b"A"):
            row -= int(match.group(1) or b"1")
        rows.append(row)
    return rows


def test_on_a_small_terminal_the_board_never_outgrows_it(sim: Simulator, tmp_path: Path) -> None:
    import fcntl
    import struct
    import termios

    rows = 6
    sim.plan(*[RenderPlan(seconds=0.4) for _ in range(12)])
    many = [{"language": "ko", "text": f"작업 {n}", "model": "M000004017", "clothes": "BG00006160"} for n in range(12)]
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", rows, 70, 0, 0))
    child = subprocess.Popen(
        [sys.executable, "-m", "aistudios_chromakey", "run", str(_json_file(tmp_path, many)),
         "--base-url", sim.base_url, "--poll-interval", "0.05", "--concurrency", "3"],
        cwd=tmp_path, env={**_env(), "LINES": str(rows), "COLUMNS": "70"}, stdout=subprocess.DEVNULL,
        stderr=secondary, preexec_fn=default_signal_handling,
    )  # fmt: skip
    os.close(secondary)
    screen = _read_terminal(primary)
    assert child.wait(timeout=60) == 0
    assert max(_screen_rows(screen)) <= rows - 1  # the screen never scrolled
    text = screen.decode("utf-8", "replace")
    assert "elapsed" in text and "%" in text
    assert "more:" in text and "12/12 done, 0 running" in text
    assert all(len(line) <= 70 + 12 for line in re.split(r"\r?\n", text))  # no line wraps


def test_a_rerun_says_what_it_skipped_and_what_it_exported(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    jobs_file = _json_file(tmp_path, jobs)
    first = _run(sim, jobs_file)
    assert "exported in this run: 3" in first.stdout
    (tmp_path / "videos" / f"{sim.exports[2].key}.mp4").unlink()  # one video went missing
    again = _run(sim, jobs_file)
    assert again.returncode == 0, again.stderr
    assert again.stderr.count("already downloaded, skipped") == 2
    assert "3 of 3 done; exported in this run: 0; resumed from an earlier run's export: 1;" in again.stdout
    assert "already downloaded, skipped: 2" in again.stdout
    assert len(sim.exports) == 3


def test_a_terminal_that_cannot_show_korean_never_fails_a_run(sim: Simulator, tmp_path: Path) -> None:
    ascii_only = {"PYTHONIOENCODING": "ascii", "LC_ALL": "C", "LANG": "C"}
    # The demo's jobs (Korean texts, so Korean names on the board), one with a Korean file name.
    jobs = [*TUTORIAL_JOBS[:2], {**TUTORIAL_JOBS[2], "filename": "인사.mp4"}]
    run = _run(sim, _json_file(tmp_path, jobs), "--out", "영상", env=ascii_only)
    assert run.returncode == 0, run.stderr
    assert "3 of 3 done" in run.stdout
    assert "\\uc601\\uc0c1" in run.stdout  # the folder's name, escaped rather than a crash
    assert (tmp_path / "영상" / "인사.mp4").is_file()


# --- exit statuses ------------------------------------------------------------------


def test_a_corrupt_journal_exits_2(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    (tmp_path / "videos").mkdir()
    (tmp_path / "videos" / ".aistudios-chromakey.json").write_text("{not json", encoding="utf-8")
    result = _run(sim, _json_file(tmp_path, jobs))
    assert result.returncode == 2, result.stderr
    assert "journal" in result.stderr and "Traceback" not in result.stderr
    assert sim.exports == []


def test_an_unwritable_output_folder_exits_2(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    out = tmp_path / "locked"
    out.mkdir()
    out.chmod(0o500)
    try:
        if os.access(out, os.W_OK):  # root writes anyway: a file where the folder should be fails for anyone
            out.chmod(0o700)
            out.rmdir()
            out.write_text("not a folder", encoding="utf-8")
        result = _run(sim, _json_file(tmp_path, jobs), "--out", str(out))
    finally:
        if out.is_dir():
            out.chmod(0o700)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert sim.exports == []


def test_a_second_run_on_a_busy_folder_exits_2(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    import fcntl

    out = tmp_path / "videos"
    out.mkdir()
    descriptor = os.open(out, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as a first run holds it
        result = _run(sim, _json_file(tmp_path, jobs))
    finally:
        os.close(descriptor)
    assert result.returncode == 2, result.stderr
    assert "another run" in result.stderr
    assert sim.exports == []


# --- scripting -------------------------------------------------------------------------


def test_dry_run_checks_everything_and_sends_no_export(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    result = _run(sim, _json_file(tmp_path, jobs), "--dry-run", "--out", "clips")
    assert result.returncode == 0, result.stderr
    assert "3 job(s)" in result.stdout and "legacy" in result.stdout and sim.base_url in result.stdout
    assert str(tmp_path / "clips") in result.stdout and "credentials" in result.stdout
    assert sim.exports == [] and not (tmp_path / "clips").exists()
    assert SECRET not in result.stdout + result.stderr


def test_json_prints_one_object_for_scripts(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    sim.plan(RenderPlan(seconds=0.1), RenderPlan(seconds=0.1, fail_at=0), RenderPlan(seconds=0.1))
    result = _run_here(sim, _json_file(tmp_path, jobs), "--json", "-q", monkeypatch=monkeypatch, capsys=capsys)
    assert result.returncode == 1
    data = json.loads(result.stdout)
    totals = {"jobs": 3, "done": 2, "exported": 3, "resumed": 0, "skipped": 0, "failed": 1, "not_finished": 0}
    assert data["totals"] == totals
    assert data["exit_status"] == 1
    first, second = data["jobs"][0], data["jobs"][1]
    assert first["state"] == "done" and first["project_key"] == sim.exports[0].key
    assert (tmp_path / first["file"]).read_bytes() == sim.video(sim.exports[0].key)
    assert re.fullmatch(r"[0-9a-f]{64}", first["sha256"]) and first["size"] > 0 and first["skipped"] is False
    assert second["state"] == "failed" and "render failed" in second["error"] and second["file"] is None


def test_timeout_help_shows_the_default_as_the_user_types_it(tmp_path: Path) -> None:
    help_text = cli("run", "--help", cwd=tmp_path).stdout
    assert re.search(r"0 for no limit\s+\(default:\s+3600\)", help_text), help_text
    bad = cli("run", "jobs.json", "--timeout", "-5", cwd=tmp_path)
    assert bad.returncode == 2 and "0 for no limit" in bad.stderr


def test_a_bad_jobs_file_and_a_missing_key_are_reported_together(sim: Simulator, tmp_path: Path) -> None:
    jobs_file = tmp_path / "jobs.csv"
    jobs_file.write_text("language,text,model\nko,hi,M000004017\n", encoding="utf-8")
    result = _run(sim, jobs_file, key=None)
    assert result.returncode == 2
    assert "lacks the column(s) clothes" in result.stderr and "AISTUDIOS_API_KEY" in result.stderr
    assert sim.log == []


def test_simulate_verbose_logs_each_request(jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    child = _simulate(tmp_path, "--token", "local-key", "-v")
    try:
        assert child.stdout is not None
        base_url = re.search(r"http://[\d.]+:\d+", child.stdout.readline())
        assert base_url
        request_export(jobs[0], "local-key", base_url=base_url.group(0))
    finally:
        child.send_signal(signal.SIGINT)
        _, stderr = child.communicate(timeout=10)
    assert "/api/odin/simple/video" in stderr
    assert "local-key" not in stderr


# --- credentials for both flows, and the catalogue -------------------------------------


def test_v3_with_half_of_its_credentials_names_the_missing_half(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    result = _run(sim, _json_file(tmp_path, jobs), "--api", "v3", key=None, env={"AISTUDIOS_APP_ID": "app-1234"})
    assert result.returncode == 2
    assert "AISTUDIOS_USER_KEY" in result.stderr and "app-1234" not in result.stderr
    assert sim.log == []


def test_v3_credentials_from_files_mint_a_token_and_are_never_printed(
    jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    app_id, user_key = "app-Zq8-SECRET-id", "user-Zq8-SECRET-key"
    (tmp_path / "app_id.txt").write_text(app_id + "\n", encoding="utf-8")
    (tmp_path / "user_key.txt").write_text(user_key + "\n", encoding="utf-8")
    with Simulator(render_seconds=0.2, app_id=app_id, user_key=user_key) as v3:  # type: ignore[call-arg]
        result = _run(
            v3, _json_file(tmp_path, jobs[:1]), "--api", "v3", "-v",
            "--app-id-file", str(tmp_path / "app_id.txt"), "--user-key-file", str(tmp_path / "user_key.txt"),
            key=None,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert len(v3.exports) == 1
    assert app_id not in result.stdout + result.stderr and user_key not in result.stdout + result.stderr


def test_models_offers_no_legacy_api_and_its_help_says_what_to_do(tmp_path: Path) -> None:
    text = " ".join(cli("models", "--help", cwd=tmp_path).stdout.split())
    assert re.search(r"--api(?![-\w])", text) is None  # not offered only to be refused
    assert "the legacy API documents none" in text and "$AISTUDIOS_APP_ID and $AISTUDIOS_USER_KEY" in text


def test_a_dry_run_checks_the_output_folder_as_a_run_does(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    (tmp_path / "taken").write_text("a file, not a folder", encoding="utf-8")
    result = _run(sim, _json_file(tmp_path, jobs), "--dry-run", "--out", str(tmp_path / "taken"))
    assert result.returncode == 2 and "cannot save videos in the output folder" in result.stderr
    assert sim.log == []


def test_models_prints_the_v3_catalogue(sim: Simulator, tmp_path: Path) -> None:
    table = cli("models", "--base-url", sim.base_url, cwd=tmp_path)
    assert table.returncode == 0, table.stderr
    assert "M000004017" in table.stdout and "BG00006160" in table.stdout
    listing = cli("models", "--json", "--base-url", sim.base_url, cwd=tmp_path)
    models = json.loads(listing.stdout)
    assert all({"id", "names", "clothes"} <= set(model) for model in models)
    korean = [name for model in models for name in model["names"].values() if not name.isascii()]
    assert korean and all(name in listing.stdout for name in korean)  # Hangul as Hangul, not \uc0ac


def test_a_printed_key_is_given_back_with_adopt(sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path) -> None:
    key = request_export(jobs[0], SECRET, base_url=sim.base_url)
    result = _run(sim, _json_file(tmp_path, jobs[:1]), "--adopt", f"1={key}")
    assert result.returncode == 0, result.stderr
    assert [e.key for e in sim.exports] == [key]  # polled and downloaded, not exported again
    assert (tmp_path / "videos" / f"{key}.mp4").read_bytes() == sim.video(key)
    bad = _run(sim, _json_file(tmp_path, jobs[:1]), "--adopt", "one=KEY")
    assert bad.returncode == 2 and "POSITION=KEY" in bad.stderr


def test_a_service_that_moved_stops_the_batch_and_exits_2(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    moved = cli("run", str(_json_file(tmp_path, jobs)), "--base-url", sim.old_base_url, cwd=tmp_path)
    assert moved.returncode == 2, moved.stderr
    assert moved.stderr.count("redirected to") == 1 and sim.base_url in moved.stderr
    assert sim.exports == []


@pytest.mark.parametrize(
    ("api", "command"),
    [("legacy", ["run"]), ("v3", ["run"]), ("v3", ["models"]), ("v3", ["run", "--dry-run"])],
)
def test_a_service_that_cannot_be_reached_stops_the_batch_and_exits_2(
    jobs: List[Dict[str, Any]], tmp_path: Path, api: str, command: List[str], refused_port: int
) -> None:
    arguments = command[:1] + ([str(_json_file(tmp_path, jobs))] if command[0] == "run" else []) + command[1:]
    # V3: the token cannot be minted, once, for the whole batch, the model list and a dry run.
    v3 = {"AISTUDIOS_APP_ID": "sim-app-id", "AISTUDIOS_USER_KEY": "sim-user-key"}
    options = {"key": None, "env": v3} if api == "v3" else {}
    result = cli(*arguments, "--base-url", f"http://127.0.0.1:{refused_port}", cwd=tmp_path, **options)
    assert result.returncode == 2, (command, result.stderr)
    assert result.stderr.count("connection was refused") == 1, result.stderr


def test_a_bare_command_prints_the_help(tmp_path: Path) -> None:
    result = cli(cwd=tmp_path)
    assert result.returncode == 0
    assert "usage: aistudios-chromakey" in result.stdout and "run" in result.stdout and "demo" in result.stdout


def test_simulate_takes_and_shows_v3_credentials_and_names_a_busy_port(
    jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    child = _simulate(tmp_path, "--app-id", "my-app", "--user-key", "my-key")
    try:
        assert child.stdout is not None
        base_url = re.search(r"http://[\d.]+:(\d+)", child.stdout.readline())
        assert base_url
        assert "V3 AppId: my-app   V3 UserKey: my-key" in child.stdout.readline()
        request_export(jobs[0], app_id="my-app", user_key="my-key", base_url=base_url.group(0))
        busy = cli("simulate", "--port", base_url.group(1), cwd=tmp_path)
        assert busy.returncode == 2
        assert f"port {base_url.group(1)} is in use" in busy.stderr and "Errno" not in busy.stderr
    finally:
        child.send_signal(signal.SIGINT)
        child.communicate(timeout=10)
    assert child.returncode == 0


def test_json_always_prints_one_json_object_even_when_the_run_stops_early(sim: Simulator, tmp_path: Path) -> None:
    bad_file = tmp_path / "bad.csv"
    bad_file.write_text("language,text,model\nko,hi,M000004017\n", encoding="utf-8")
    early = json.loads(_run(sim, bad_file, "--json").stdout)
    assert early["exit_status"] == 2 and early["jobs"] == []
    assert "clothes" in early["errors"][0]["message"] and early["errors"][0]["file"] == str(bad_file)

    bad_job = tmp_path / "jobs.csv"
    bad_job.write_text("language,text,model,clothes\nko,hi,M000004017,BG00006160\nko,,M000004017,BG00006160\n", "utf-8")
    invalid = json.loads(_run(sim, bad_job, "--json").stdout)
    assert invalid["exit_status"] == 2
    assert {k: invalid["errors"][0][k] for k in ("job", "field", "where")} == {
        "job": 2,
        "field": "text",
        "where": "line 3",
    }

    refused = _run(sim, tmp_path / "jobs.csv", "--json", key="wrong-key")
    assert refused.returncode == 2 and json.loads(refused.stdout)["exit_status"] == 2  # the same bad job comes first
    good = tmp_path / "good.json"
    good.write_text(json.dumps([{"language": "ko", "text": "hi", "model": "M000004017", "clothes": "BG00006160"}]))
    refused = _run(sim, good, "--json", key="wrong-key")
    answer = json.loads(refused.stdout)
    assert refused.returncode == answer["exit_status"] == 1 and "refused the API key" in answer["errors"][0]["message"]
    assert sim.exports == []


def test_a_text_past_the_bound_exits_2_naming_the_job_and_the_option(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    jobs_file = _json_file(tmp_path, [jobs[0], dict(jobs[1], text="x" * 60_000)])
    refused = cli("run", str(jobs_file), "--base-url", sim.base_url, cwd=tmp_path)
    assert refused.returncode == 2
    assert "job 2" in refused.stderr and "60,000 characters" in refused.stderr and "--max-text-length" in refused.stderr
    assert sim.log == []
    raised = cli("run", str(jobs_file), "--base-url", sim.base_url, "--max-text-length", "60000",
                 "--poll-interval", "0.05", cwd=tmp_path)  # fmt: skip
    assert raised.returncode == 0, raised.stderr
    assert len(sim.exports) == 2


def test_an_ascii_terminal_with_korean_names_keeps_an_exact_board(sim: Simulator, tmp_path: Path) -> None:
    import fcntl
    import struct
    import termios

    rows, columns = 10, 40
    sim.plan(*[RenderPlan(seconds=0.6) for _ in range(3)])
    jobs = [{"language": "ko", "text": f"안녕하세요, 저는 {n}번째 작업입니다.", "model": "M000004017",
             "clothes": "BG00006160", "filename": f"인사-{n}.mp4"} for n in range(3)]  # fmt: skip
    primary, secondary = pty.openpty()
    fcntl.ioctl(secondary, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
    child = subprocess.Popen(
        [sys.executable, "-m", "aistudios_chromakey", "run", str(_json_file(tmp_path, jobs)),
         "--base-url", sim.base_url, "--poll-interval", "0.05", "--concurrency", "3"],
        cwd=tmp_path, env={**_env(), "PYTHONIOENCODING": "ascii", "LINES": str(rows), "COLUMNS": str(columns)},
        stdout=subprocess.DEVNULL, stderr=secondary, preexec_fn=default_signal_handling,
    )  # fmt: skip
    os.close(secondary)
    screen = _read_terminal(primary)
    assert child.wait(timeout=60) == 0
    text = screen.decode("ascii")  # every byte ASCII: the Korean names came as escapes
    assert "\\uc778\\uc0ac" in text  # 인사, escaped, and counted as the terminal shows it
    assert max(_screen_rows(screen)) <= rows - 1  # the redraw went back over exactly what it drew
    drawn = [re.sub(r"\x1b\[[0-9]*[A-Za-z]", "", line) for line in re.split(r"\r?\n", text)]
    assert all(len(line) <= columns for line in drawn), [line for line in drawn if len(line) > columns]


def test_the_summary_fits_a_40_column_terminal_through_the_console_script(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    reason = "the text has a word the avatar cannot say in the chosen language and voice"
    sim.plan(RenderPlan(seconds=0.1), RenderPlan(reject=reason), RenderPlan(seconds=0.1))
    jobs[0]["filename"] = "안녕하세요-저는-첫번째-작업입니다-아주-긴-이름.mp4"
    result = _run(sim, _json_file(tmp_path, jobs), env={"COLUMNS": "40"})
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert all(width(line) <= 40 for line in lines), lines
    assert "..." in result.stdout and sim.exports[0].key in result.stdout  # shortened name, key kept
    assert reason in " ".join(result.stdout.split())  # the reason whole, on lines of its own
    assert "Run the same command again to retry job 2" in result.stderr


def test_an_empty_credential_file_is_refused_not_replaced_by_another_credential(
    sim: Simulator, jobs: List[Dict[str, Any]], tmp_path: Path
) -> None:
    for name in ("app_id.txt", "user_key.txt"):
        (tmp_path / name).write_text("\n", encoding="utf-8")
    files = ["--app-id-file", str(tmp_path / "app_id.txt"), "--user-key-file", str(tmp_path / "user_key.txt")]
    result = _run(sim, _json_file(tmp_path, jobs), *files)  # $AISTUDIOS_API_KEY is set too
    assert result.returncode == 2 and "the file is empty" in result.stderr, result.stderr
    assert sim.log == []


def test_main_may_run_on_a_thread_of_its_callers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aistudios_chromakey._cli import main

    monkeypatch.chdir(tmp_path)
    statuses: List[int] = []
    thread = threading.Thread(target=lambda: statuses.append(main(["run", "missing.json"])))
    thread.start()
    thread.join()
    assert statuses == [2]  # a usage error, not a crash on setting a signal handler
