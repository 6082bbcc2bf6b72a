"""The ``aistudios-chromakey`` command, a thin front over the library: it owns the terminal, the library only logs."""

from __future__ import annotations

import argparse
import enum
import errno
import functools
import io
import json
import logging
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import video
from ._access import API_KEY_ENV, APP_ID_ENV, USER_KEY_ENV, Given, api_named, credentials_from
from ._arguments import parser
from ._batch import check_folder
from ._board import Board, shown, summary, summary_json, terminal_size, width
from ._client import Client
from ._functions import export_chromakeys, list_models
from ._jobs import JobsFileError, check_jobs, check_template, first_words, read_jobs_file
from ._reports import AIStudiosError, BatchError, InvalidJob, JournalError
from .simulator import Simulator

logger = logging.getLogger("aistudios_chromakey")


class ExitStatus(enum.IntEnum):
    OK = 0
    FAILED = 1  # some jobs failed, or the service refused us
    USAGE = 2  # bad arguments, a bad jobs file, no key: nothing was sent
    INTERRUPTED = 130  # Ctrl-C or SIGTERM


TUTORIAL_JOBS: List[Dict[str, Any]] = [
    {"language": "ko", "text": "안녕하세요, 저는 첫번째 작업입니다.", "model": "M000004017", "clothes": "BG00006160"},
    {"language": "ko", "text": "안녕하세요, 저는 두번째 작업입니다.", "model": "M000004017", "clothes": "BG00001004"},
    {"language": "ko", "text": "안녕하세요, 저는 세번째 작업입니다.", "model": "M000004017", "clothes": "BG00006160"},
]

_said: List[Dict[str, Any]] = []  # this command's errors, for --json


def _error(message: Any, status: int = ExitStatus.USAGE, **where: Any) -> int:
    """Say an error on stderr and keep it for ``--json``; returns ``status`` (by default: nothing was sent)."""
    _said.append({"message": shown(message), **{k: v for k, v in where.items() if v is not None}})
    print(f"error: {shown(message)}", file=sys.stderr)
    return status


def _where(error: InvalidJob, origins: List[str]) -> Tuple[str, Optional[str]]:
    """The message of a bad job, and the line or row it came from, where known."""
    if error.position and error.position <= len(origins):
        return f"{error} ({origins[error.position - 1]})", origins[error.position - 1]
    return str(error), None


def _print_json(value: Any, options: argparse.Namespace) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))  # Hangul as Hangul
    options.json_printed = True


def _credentials(options: argparse.Namespace) -> Given:
    """From the files given, else the environment; ``ValueError`` says what is missing."""
    return credentials_from(options.api, key_file=options.api_key_file, app_id_file=options.app_id_file,
                            user_key_file=options.user_key_file)  # fmt: skip


def _cmd_run(options: argparse.Namespace) -> int:
    """Read the jobs and the credentials, report every problem at once, then run."""
    problems: List[Tuple[str, Dict[str, Any]]] = []  # each with where it is, for --json
    jobs_file = credentials = None
    try:
        credentials = _credentials(options)
    except ValueError as error:
        problems.append((str(error), {}))
    try:  # the jobs file's problem comes first
        jobs_file = read_jobs_file(options.jobs_file)
        if jobs_file.encoding not in (None, "UTF-8", "UTF-8 with BOM") and not options.quiet:
            print(f"reading {options.jobs_file} as {jobs_file.encoding}", file=sys.stderr)
        check_jobs(jobs_file.jobs, api_named(credentials.api if credentials else options.api or "legacy"),
                   options.max_text_length)  # fmt: skip
    except JobsFileError as error:
        problems.insert(0, (str(error), {"file": str(options.jobs_file)}))
    except InvalidJob as error:
        message, origin = _where(error, jobs_file.origins if jobs_file else [])
        problems.insert(0, (message, {"job": error.position, "field": error.field, "where": origin}))
    if options.name is not None:
        try:
            check_template(options.name)
        except ValueError as error:
            problems.append((f"--name: {error}", {"option": "--name"}))
    if problems or jobs_file is None or credentials is None:
        for problem, where in problems:
            _error(problem, **where)
        print("nothing was sent.", file=sys.stderr)
        return ExitStatus.USAGE
    return (_dry_run if options.dry_run else _run_batch)(jobs_file.jobs, jobs_file.origins, credentials, options)


class _NoticeHandler(logging.Handler):
    """Shows the library's warnings meant for the user (``extra={"notice": True}``) on the board."""

    def __init__(self, board: Board):
        super().__init__(logging.WARNING)
        self.board = board

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "notice", False):
            self.board.note(f"warning: {record.getMessage()}")


def _run_batch(jobs: List[Dict[str, Any]], origins: List[str], credentials: Given, options: argparse.Namespace) -> int:
    labels = [job.get("filename") or first_words(str(job.get("text", "")), 30) for job in jobs]
    board = Board(len(jobs), sys.stderr, sys.stderr.isatty() and not options.verbose, options.quiet, labels=labels,
                  concurrency=options.concurrency,
                  finishing="transparent" if options.transparent else "compositing")  # fmt: skip
    notices, level, status = _NoticeHandler(board), logger.level, ExitStatus.OK
    if not options.verbose:  # verbose, every log line is printed already
        logger.addHandler(notices)
        logger.setLevel(logging.WARNING)
    try:
        with board, Client(**asdict(credentials), base_url=options.base_url,
                           max_text_length=options.max_text_length) as client:  # fmt: skip
            export_chromakeys(jobs, out_dir=options.out, poll_interval=options.poll_interval, timeout=options.timeout,
                              concurrency=options.concurrency, resume=not options.no_resume, on_progress=board,
                              client=client, filename_template=options.name, adopt=dict(options.adopt),
                              transparent=options.transparent, background=options.background,
                              check_catalogue=not options.no_catalogue_check)  # fmt: skip
    except InvalidJob as error:
        return _error(f"{_where(error, origins)[0]}; nothing was sent", job=error.position, field=error.field)
    except JournalError as error:
        return _error(error, ExitStatus.USAGE if error.nothing_sent else ExitStatus.FAILED)
    except BatchError as error:
        board.record_failures(dict(error.failures))
        status = ExitStatus.FAILED
    except (ValueError, video.FFmpegMissing) as error:  # refused before anything was sent
        if any(view.exported for view in board.views):
            raise
        return _error(f"{error}; nothing was sent")
    except KeyboardInterrupt:
        lost = " (but --no-resume kept no journal: every job would be exported again)" if options.no_resume else ""
        print(f"\ninterrupted. Run the same command again to resume without paying twice{lost}.", file=sys.stderr)
        status = ExitStatus.INTERRUPTED
    finally:
        logger.removeHandler(notices)
        logger.setLevel(level)
    if options.json:
        _print_json({**summary_json(board, status), "errors": _said}, options)
    elif status != ExitStatus.INTERRUPTED:
        print(summary(board, terminal_size(sys.stdout)[0] - 1, sys.stdout.encoding or "utf-8"))
    return status


def _dry_run(jobs: List[Dict[str, Any]], origins: List[str], credentials: Given, options: argparse.Namespace) -> int:
    """What a run would send, and whether the credentials are accepted; no export."""
    try:
        check_folder(Path(options.out), create=False)  # as a run does, but making nothing
    except JournalError as error:
        return _error(str(error))
    with Client(**asdict(credentials), base_url=options.base_url) as client:
        endpoints = "the tutorial's endpoints" if credentials.api == "legacy" else "the V3 endpoints"
        print(f"dry run: nothing is exported. {len(jobs)} job(s) from {options.jobs_file}")
        print(f"flow: {credentials.api} ({endpoints}) at {client.base_url}")
        print(f"output folder: {Path(options.out).resolve()}")
        for position, (job, origin) in enumerate(zip(jobs, origins), start=1):
            text = " ".join(str(job.get("text", "")).split())
            text = text if len(text) <= 40 else text[:37] + "..."
            print(f"  job {position} ({origin}): {job.get('language')} {job.get('model')} {job.get('clothes')} "
                  f"\"{text}\"" + (f" -> {job['filename']}" if job.get("filename") else ""))  # fmt: skip
        accepted = client.verify_credentials()
    if accepted is False:
        print("error: the service refused the credentials; copy them again from your AI STUDIOS profile",
              file=sys.stderr)  # fmt: skip
        return ExitStatus.FAILED
    print("credentials: " + ("accepted by the service" if accepted else "present; not checked, as the legacy "
          "API has no way to check a key without exporting"))  # fmt: skip
    return ExitStatus.OK


def _cmd_demo(options: argparse.Namespace) -> int:
    say = functools.partial(print, file=sys.stderr)
    say("Demo: the tutorial's three jobs, against the built-in simulator of AI STUDIOS (no key, no network).")
    started = time.monotonic()
    if options.name is None:  # the demo's own names, its last run's videos replaced: the folder never grows
        options.name = "demo-{position}"
        for position in range(1, len(TUTORIAL_JOBS) + 1):
            (Path(options.out) / f"demo-{position}.mp4").unlink(missing_ok=True)
    with Simulator(render_seconds=1.5) as sim:
        say(f"simulated service at {sim.base_url}; videos go to {options.out}")
        options.base_url = sim.base_url
        status = _run_batch(list(TUTORIAL_JOBS), [], Given(token=sim.token), options)
    if status == ExitStatus.OK and not options.transparent and not options.background:
        _demo_clips(Path(options.out) / "demo-1.mp4", say)
    say(f"finished in {time.monotonic() - started:.1f} s. With your own key: aistudios-chromakey run jobs.json")
    return status


def _demo_clips(mp4: Path, say: Callable[..., None]) -> None:
    """Where ffmpeg is, the green keyed away: a transparent clip, a finished one over a colour, a frame of it."""
    try:
        ffmpeg = video.check_ffmpeg("composite")
        video.check_ffmpeg("webm")
    except video.FFmpegMissing:
        say("With ffmpeg the demo also keys the green away (aistudios-chromakey transparent): install it "
            '(sudo apt install ffmpeg, brew install ffmpeg) or pip install "aistudios-chromakey[video]".')  # fmt: skip
        return
    clip, finished = video.make_transparent(mp4), video.composite(mp4, "#3050A0")
    frame = mp4.with_name(f"{mp4.stem}_preview.png")
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-ss", "1", "-i", str(finished),
                    "-frames:v", "1", str(frame)], check=True, timeout=60)  # fmt: skip
    say(f"keyed with ffmpeg: {clip} (transparent), {finished} (over a colour), {frame} (a frame of it)")


def _cmd_transparent(options: argparse.Namespace) -> int:
    clear = "\r\x1b[2K" if sys.stderr.isatty() else ""  # a terminal shows each clip's percent, then its result
    make: Callable[..., Path] = functools.partial(video.make_transparent, format=options.transparent or "webm")
    try:
        video.check_ffmpeg("composite" if options.background else options.transparent or "webm")
        if options.background:
            video.check_background(options.background)
            make = functools.partial(video.composite, background=options.background)
    except (video.FFmpegMissing, video.InvalidVideoInput) as error:
        return _error(str(error))
    if options.out:
        Path(options.out).mkdir(parents=True, exist_ok=True)
    failed = 0
    for mp4 in options.videos:
        try:
            made = make(mp4, out_dir=options.out, progress=functools.partial(_print_percent, mp4) if clear else None)
        except video.VideoError as error:
            failed += 1
            print(f"{clear}error: {shown(mp4)}: {shown(error)}", file=sys.stderr)
            continue
        print(f"{clear}{shown(mp4)} -> {shown(made)}", file=sys.stderr)
        print(shown(made))
    return ExitStatus.FAILED if failed else ExitStatus.OK


def _print_percent(name: str, fraction: float) -> None:
    print(f"\r\x1b[2K{shown(name)}: {fraction * 100:3.0f}%", end="", file=sys.stderr, flush=True)


def _cmd_simulate(options: argparse.Namespace) -> int:
    try:
        with Simulator(options.token, render_seconds=options.render_seconds, port=options.port,
                       app_id=options.app_id, user_key=options.user_key) as sim:  # fmt: skip
            run = f"aistudios-chromakey run jobs.json --base-url {sim.base_url}"
            print(f"AI STUDIOS simulator: {sim.base_url}  (videos from {sim.download_url})")
            print(f"API key: {sim.token}   V3 AppId: {sim.app_id}   V3 UserKey: {sim.user_key}")
            print(f"try: {API_KEY_ENV}={sim.token} {run}\n"
                  f"  or: {APP_ID_ENV}={sim.app_id} {USER_KEY_ENV}={sim.user_key} {run}")  # fmt: skip
            print("Ctrl-C to stop." + (" Each request is logged below." if options.verbose else ""), flush=True)
            while True:
                time.sleep(3600)
    except OSError as error:
        if error.errno != errno.EADDRINUSE:  # only starting the servers can meet a busy port
            raise
        return _error(f"port {options.port} is in use: choose another with --port, or 0 for any free one")
    except KeyboardInterrupt:
        print("stopped.")
    return ExitStatus.OK


def _cmd_models(options: argparse.Namespace) -> int:
    try:
        credentials = _credentials(options)
    except ValueError as error:
        return _error(str(error))
    models = list_models(**asdict(credentials), base_url=options.base_url)
    if options.json:
        _print_json([asdict(model) for model in models], options)
        return ExitStatus.OK
    rows = [("model", "Korean name", "English name", "clothes")]
    rows += [(m.id, m.names.get("ko", "-"), m.names.get("en", m.names.get("label", "-")),
              "(not listed)" if m.clothes is None else ", ".join(c.id for c in m.clothes)) for m in models]  # fmt: skip
    widths = [max(width(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join(cell + " " * (size - width(cell)) for cell, size in zip(row, widths)) + "  " + row[3])
    print(f"{len(models)} models")
    return ExitStatus.OK


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    for stream in (sys.stdout, sys.stderr):  # a terminal that cannot show Korean gets escapes (\uc548), not a crash
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    options = parser().parse_args((sys.argv[1:] if argv is None else argv) or ["--help"])  # no arguments: the help
    _said.clear()
    verbose, level = getattr(options, "verbose", False), logger.level
    if verbose:  # every step as a log line; the board then writes plain lines too
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    else:
        logger.setLevel(logging.CRITICAL)  # the board says it all
    sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler)  # stops a run as cleanly as Ctrl-C
    try:
        status = int({"run": _cmd_run, "demo": _cmd_demo, "models": _cmd_models, "simulate": _cmd_simulate,
                      "transparent": _cmd_transparent}[options.command](options))  # fmt: skip
    except AIStudiosError as error:
        # No connection at all, or an address that moved: nothing was exported.
        nothing_sent = getattr(error, "unreachable", False) or getattr(error, "moved", False)
        status = _error(error, ExitStatus.USAGE if nothing_sent else ExitStatus.FAILED)
    except KeyboardInterrupt:
        print("\ninterrupted.", file=sys.stderr)
        status = ExitStatus.INTERRUPTED
    except Exception as error:
        if verbose:
            raise
        status = _error(f"{type(error).__name__}: {error} (run with -v for the details)", ExitStatus.FAILED)
    finally:
        logger.setLevel(level)
        signal.signal(signal.SIGTERM, sigterm)
    if getattr(options, "json", False) and not getattr(options, "json_printed", False):  # stopped before its summary
        _print_json({"exit_status": status, "errors": _said, "jobs": [], "totals": None}, options)
    return status
