"""The ``aistudios-chromakey`` command: a thin front over the library.

``run JOBS_FILE`` exports a batch from a JSON array or a CSV file, ``demo``
runs the tutorial's three jobs against the built-in simulator, and
``simulate`` runs the simulator alone. The command owns the terminal: the
library only logs.
"""

from __future__ import annotations

import argparse
import contextlib
import enum
import errno
import functools
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence, Tuple

from ._apis import api_named
from ._arguments import parser
from ._board import Board, shown, summary, summary_json, terminal_size, width
from ._client import Client
from ._credentials import API_KEY_ENV, APP_ID_ENV, USER_KEY_ENV, Given, credentials_from
from ._errors import AIStudiosError, BatchError, ExportRejected, InvalidJob, JournalError, ServiceError
from ._functions import export_chromakeys, list_models
from ._jobs import MAX_TEXT_LENGTH, check_jobs
from ._jobsfile import JobsFileError, read_jobs_file
from ._names import check_template, first_words
from ._preflight import check_folder
from .simulator import Simulator
from .video import (
    FFmpegMissing,
    InvalidVideoInput,
    VideoError,
    check_background,
    check_ffmpeg,
    composite,
    make_transparent,
)

logger = logging.getLogger("aistudios_chromakey")


class ExitStatus(enum.IntEnum):
    """What the command returns to the shell."""

    OK = 0
    FAILED = 1  # some jobs failed, or the service refused us
    USAGE = 2  # bad arguments, a bad jobs file, no key: nothing was sent
    INTERRUPTED = 130  # Ctrl-C or SIGTERM


class UsageError(Exception):
    """Bad input from the user; the message says what and where."""


# The tutorial's jobs, which the demo exports.
TUTORIAL_JOBS: List[Dict[str, Any]] = [
    {"language": "ko", "text": "안녕하세요, 저는 첫번째 작업입니다.", "model": "M000004017", "clothes": "BG00006160"},
    {"language": "ko", "text": "안녕하세요, 저는 두번째 작업입니다.", "model": "M000004017", "clothes": "BG00001004"},
    {"language": "ko", "text": "안녕하세요, 저는 세번째 작업입니다.", "model": "M000004017", "clothes": "BG00006160"},
]


def _credentials(options: argparse.Namespace) -> Given:
    """The credentials, from the files given, else the environment, and the
    API they are for (``--api``, else the one they belong to)."""
    try:
        return credentials_from(options.api, key_file=options.api_key_file, app_id_file=options.app_id_file,
                                user_key_file=options.user_key_file)  # fmt: skip
    except ValueError as error:
        raise UsageError(str(error)) from None


# --- commands ---------------------------------------------------------------------


def _run_batch(jobs: List[Dict[str, Any]], origins: List[str], credentials: Given, options: argparse.Namespace,
               *, base_url: Optional[str], resume: bool) -> int:  # fmt: skip
    live = sys.stderr.isatty() and not options.verbose

    labels = [job.get("filename") or first_words(str(job.get("text", "")), 30) for job in jobs]
    doing = "transparent" if options.transparent else "compositing"
    board = Board(len(jobs), sys.stderr, live, options.quiet, labels=labels, concurrency=options.concurrency,
                  finishing=doing)  # fmt: skip
    extra: Dict[str, Any] = {} if options.name is None else {"filename_template": options.name}
    if options.transparent or options.background:
        extra.update(transparent=options.transparent, background=options.background)
    if getattr(options, "adopt", None):
        extra["adopt"] = dict(options.adopt)
    if getattr(options, "no_catalogue_check", False):
        extra["check_catalogue"] = False
    errors: Dict[int, BaseException] = {}
    try:
        with board, _notices(board, options.verbose), Client(
            credentials.token, app_id=credentials.app_id, user_key=credentials.user_key, api=credentials.api,
            base_url=base_url, max_text_length=getattr(options, "max_text_length", MAX_TEXT_LENGTH),
        ) as client:  # fmt: skip
            export_chromakeys(
                jobs, out_dir=options.out, poll_interval=options.poll_interval, timeout=options.timeout,
                concurrency=options.concurrency, resume=resume, on_progress=board, client=client, **extra,
            )  # fmt: skip
    except InvalidJob as error:
        return _usage(f"{_where(error, origins)}; nothing was sent", job=error.position, field=error.field)
    except JournalError as error:
        _error(error)
        return ExitStatus.USAGE if error.nothing_sent else ExitStatus.FAILED
    except BatchError as error:
        errors = dict(error.failures)
        board.record_failures(errors)
    except (ValueError, FFmpegMissing) as error:  # refused before anything was sent
        if _sent(board):
            raise
        return _usage(f"{error}; nothing was sent")
    except KeyboardInterrupt:
        print(
            "\ninterrupted. Run the same command again to resume without paying twice"
            + ("." if resume else " (but --no-resume kept no journal: every job would be exported again)."),
            file=sys.stderr,
        )
        _report(board, options, ExitStatus.INTERRUPTED)
        return ExitStatus.INTERRUPTED
    status = ExitStatus.FAILED if errors else ExitStatus.OK
    _report(board, options, status)
    return status


class _NoticeHandler(logging.Handler):
    """The library's warnings meant for the user (``extra={"notice": True}``),
    shown on the board, which the other log lines would only disturb."""

    def __init__(self, board: Board):
        super().__init__(logging.WARNING)
        self.board = board

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, "notice", False):
            self.board.note(f"warning: {record.getMessage()}")


@contextlib.contextmanager
def _notices(board: Board, verbose: bool) -> Iterator[None]:
    if verbose:  # every log line is printed already
        yield
        return
    library = logging.getLogger("aistudios_chromakey")
    handler, level = _NoticeHandler(board), library.level
    library.addHandler(handler)
    library.setLevel(logging.WARNING)
    try:
        yield
    finally:
        library.removeHandler(handler)
        library.setLevel(level)


def _sent(board: Board) -> bool:
    return any(view.exported for view in board.views)


_said: List[Dict[str, Any]] = []  # this command's errors, for --json


def _error(message: Any, **where: Any) -> None:
    """Say an error on stderr, and keep it for ``--json``."""
    _said.append({"message": shown(message), **{k: v for k, v in where.items() if v is not None}})
    print(f"error: {shown(message)}", file=sys.stderr)


def _usage(message: str, **where: Any) -> int:
    _error(message, **where)
    return ExitStatus.USAGE


def _where(error: InvalidJob, origins: List[str]) -> str:
    if error.position and error.position <= len(origins):
        return f"{error} ({origins[error.position - 1]})"
    return str(error)


def _report(board: Board, options: argparse.Namespace, status: int) -> None:
    if options.json:
        print(json.dumps({**summary_json(board, status), "errors": _said}, indent=2, ensure_ascii=False))
        options.json_printed = True
    elif status != ExitStatus.INTERRUPTED:
        print(summary(board, terminal_size(sys.stdout)[0] - 1, sys.stdout.encoding or "utf-8"))


def _cmd_run(options: argparse.Namespace) -> int:
    """Read the jobs and the credentials, report every problem at once, then run."""
    problems: List[Tuple[str, Dict[str, Any]]] = []  # each with where it is, for --json
    jobs_file = None
    try:
        jobs_file = read_jobs_file(options.jobs_file)
    except JobsFileError as error:
        problems.append((str(error), {"file": str(options.jobs_file)}))
    credentials = None
    try:
        credentials = _credentials(options)
    except UsageError as error:
        problems.append((str(error), {}))
    if jobs_file is not None:
        if jobs_file.encoding not in (None, "UTF-8", "UTF-8 with BOM") and not options.quiet:
            print(f"reading {options.jobs_file} as {jobs_file.encoding}", file=sys.stderr)
        try:
            api = api_named(credentials.api if credentials else options.api or "legacy")
            check_jobs(jobs_file.jobs, api, getattr(options, "max_text_length", MAX_TEXT_LENGTH))
        except InvalidJob as error:
            origin = jobs_file.origins[error.position - 1] if error.position else None
            where = {"job": error.position, "field": error.field, "where": origin}
            problems.insert(0, (_where(error, jobs_file.origins), where))
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
    if options.dry_run:
        return _dry_run(jobs_file.jobs, jobs_file.origins, credentials, options)
    return _run_batch(
        jobs_file.jobs, jobs_file.origins, credentials, options, base_url=options.base_url, resume=not options.no_resume
    )


def _dry_run(jobs: List[Dict[str, Any]], origins: List[str], credentials: Given,
             options: argparse.Namespace) -> int:  # fmt: skip
    """What a run would send, and whether the credentials are accepted; no export."""

    try:
        check_folder(Path(options.out), create=False)  # as a run does, but making nothing
    except JournalError as error:
        return _usage(str(error))

    with Client(credentials.token, api=credentials.api, base_url=options.base_url,
                app_id=credentials.app_id, user_key=credentials.user_key) as client:  # fmt: skip
        endpoints = "the tutorial's endpoints" if credentials.api == "legacy" else "the V3 endpoints"
        print(f"dry run: nothing is exported. {len(jobs)} job(s) from {options.jobs_file}")
        print(f"flow: {credentials.api} ({endpoints}) at {client.base_url}")
        print(f"output folder: {Path(options.out).resolve()}")
        for position, (job, origin) in enumerate(zip(jobs, origins), start=1):
            text = " ".join(str(job.get("text", "")).split())
            text = text if len(text) <= 40 else text[:37] + "..."
            name = f" -> {job['filename']}" if job.get("filename") else ""
            print(f"  job {position} ({origin}): {job.get('language')} {job.get('model')} "
                  f"{job.get('clothes')} \"{text}\"{name}")  # fmt: skip
        accepted = client.verify_credentials()
    if accepted is None:
        print("credentials: present; not checked, as the legacy API has no way to check a key without exporting")
    elif accepted:
        print("credentials: accepted by the service")
    else:
        print(
            "error: the service refused the credentials; copy them again from your AI STUDIOS profile", file=sys.stderr
        )
        return ExitStatus.FAILED
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
        status = _run_batch(
            list(TUTORIAL_JOBS), [], Given(token=sim.token), options, base_url=sim.base_url, resume=False
        )
    if status == ExitStatus.OK and not options.transparent and not options.background:
        _demo_clips(Path(options.out) / "demo-1.mp4", say)
    say(f"finished in {time.monotonic() - started:.1f} s. With your own key: aistudios-chromakey run jobs.json")
    return status


def _demo_clips(video: Path, say: Callable[..., None]) -> None:
    """The green keyed away from the demo's first video, where ffmpeg is: a
    transparent clip, a finished one over a colour, and a frame of it."""
    try:
        ffmpeg = check_ffmpeg("composite")
        check_ffmpeg("webm")
    except FFmpegMissing:
        say("With ffmpeg the demo also keys the green away (aistudios-chromakey transparent): install it "
            '(sudo apt install ffmpeg, brew install ffmpeg) or pip install "aistudios-chromakey[video]".')  # fmt: skip
        return
    clip = make_transparent(video)
    finished = composite(video, "#3050A0")
    frame = video.with_name(f"{video.stem}_preview.png")
    command = [ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-ss", "1", "-i", str(finished), "-frames:v", "1"]
    subprocess.run([*command, str(frame)], check=True, timeout=60)
    say(f"keyed with ffmpeg: {clip} (transparent), {finished} (over a colour), {frame} (a frame of it)")


def _cmd_transparent(options: argparse.Namespace) -> int:
    """Key the green away from clips already downloaded, one after the other."""
    live = sys.stderr.isatty()

    def make(video: str, progress: Callable[[float], None]) -> Path:
        if options.background:
            return composite(video, options.background, out_dir=options.out, progress=progress)
        return make_transparent(video, format=options.transparent or "webm", out_dir=options.out, progress=progress)

    try:
        check_ffmpeg("composite" if options.background else options.transparent or "webm")
        if options.background:
            check_background(options.background)
    except (FFmpegMissing, InvalidVideoInput) as error:
        return _usage(str(error))
    if options.out:
        Path(options.out).mkdir(parents=True, exist_ok=True)
    failed = 0
    for video in options.videos:

        def progress(fraction: float, video: str = video) -> None:
            if live:
                print(f"\r\x1b[2K{shown(video)}: {fraction * 100:3.0f}%", end="", file=sys.stderr, flush=True)

        try:
            made = make(video, progress=progress)
        except (VideoError, InvalidVideoInput) as error:
            failed += 1
            print(("\r\x1b[2K" if live else "") + f"error: {shown(video)}: {shown(error)}", file=sys.stderr)
            continue
        print(("\r\x1b[2K" if live else "") + f"{shown(video)} -> {shown(made)}", file=sys.stderr)
        print(shown(made))
    return ExitStatus.FAILED if failed else ExitStatus.OK


def _cmd_simulate(options: argparse.Namespace) -> int:
    sim = Simulator(options.token, render_seconds=options.render_seconds, port=options.port,
                    app_id=options.app_id, user_key=options.user_key)  # fmt: skip
    try:
        sim.start()
    except OSError as error:
        if error.errno == errno.EADDRINUSE:
            raise UsageError(
                f"port {options.port} is in use: choose another with --port, or 0 for any free one"
            ) from None
        raise
    try:
        print(f"AI STUDIOS simulator: {sim.base_url}  (videos from {sim.download_url})")
        print(f"API key: {sim.token}   V3 AppId: {sim.app_id}   V3 UserKey: {sim.user_key}")
        print(f"try: {API_KEY_ENV}={sim.token} aistudios-chromakey run jobs.json --base-url {sim.base_url}")
        print(f"  or: {APP_ID_ENV}={sim.app_id} {USER_KEY_ENV}={sim.user_key} aistudios-chromakey run jobs.json "
              f"--base-url {sim.base_url}")  # fmt: skip
        print("Ctrl-C to stop." + (" Each request is logged below." if options.verbose else ""), flush=True)
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("stopped.")
    finally:
        sim.stop()
    return ExitStatus.OK


def _cmd_models(options: argparse.Namespace) -> int:

    credentials = _credentials(options)
    models = list_models(
        credentials.token, api="v3", base_url=options.base_url, app_id=credentials.app_id, user_key=credentials.user_key
    )
    if options.json:
        entries = [
            {
                "id": m.id,
                "names": m.names,
                "clothes": None if m.clothes is None else [{"id": c.id, "names": c.names} for c in m.clothes],
            }
            for m in models
        ]
        print(json.dumps(entries, indent=2, ensure_ascii=False))  # Hangul as Hangul
        options.json_printed = True
        return ExitStatus.OK
    rows = [("model", "Korean name", "English name", "clothes")]
    rows += [
        (
            m.id,
            m.names.get("ko", "-"),
            m.names.get("en", m.names.get("label", "-")),
            "(not listed)" if m.clothes is None else ", ".join(c.id for c in m.clothes),
        )
        for m in models
    ]
    widths = [max(width(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join(cell + " " * (size - width(cell)) for cell, size in zip(row, widths)) + "  " + row[3])
    print(f"{len(models)} models")
    return ExitStatus.OK


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """Let SIGTERM stop a run as cleanly as Ctrl-C: the batch's journal keeps
    what was paid for, and the same command resumes it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Optional[FrameType]) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _never_fail_on_encoding() -> None:
    """A terminal or log that cannot show Korean (``LC_ALL=C``, a pipe in
    ASCII) gets escapes such as ``\\uc548`` instead of a crash."""
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)
        if reconfigure is not None:
            with contextlib.suppress(ValueError, OSError):
                reconfigure(errors="backslashreplace")


_COMMANDS: Dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _cmd_run,
    "demo": _cmd_demo,
    "models": _cmd_models,
    "simulate": _cmd_simulate,
    "transparent": _cmd_transparent,
}


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    _never_fail_on_encoding()
    arguments = sys.argv[1:] if argv is None else list(argv)
    if not arguments:  # a bare command: what it can do, not an error
        parser().print_help()
        return ExitStatus.OK
    options = parser().parse_args(arguments)
    _said.clear()
    status = _main(options)
    if getattr(options, "json", False) and not getattr(options, "json_printed", False):
        # A run that stopped before its summary: stdout still holds one JSON object.
        print(
            json.dumps(
                {"exit_status": status, "errors": _said, "jobs": [], "totals": None}, indent=2, ensure_ascii=False
            )
        )
    return status


def _main(options: argparse.Namespace) -> int:
    verbose = getattr(options, "verbose", False)
    library = logging.getLogger("aistudios_chromakey")
    level = library.level
    if verbose:
        # Every step as a log line; the board then writes plain lines too.
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(levelname)s %(message)s", stream=sys.stderr)
    else:
        library.setLevel(logging.CRITICAL)  # the board says it all
    try:
        with _sigterm_as_interrupt():
            return int(_COMMANDS[options.command](options))
    except UsageError as error:
        _error(error)
        return ExitStatus.USAGE
    except (ServiceError, ExportRejected) as error:
        _error(error)
        # No connection at all, or an address that moved: nothing was exported.
        nothing_sent = getattr(error, "unreachable", False) or getattr(error, "moved", False)
        return ExitStatus.USAGE if nothing_sent else ExitStatus.FAILED
    except AIStudiosError as error:
        _error(error)
        return ExitStatus.FAILED
    except KeyboardInterrupt:
        print("\ninterrupted.", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except Exception as error:
        if verbose:
            raise
        _error(f"{type(error).__name__}: {error} (run with -v for the details)")
        return ExitStatus.FAILED
    finally:
        library.setLevel(level)
