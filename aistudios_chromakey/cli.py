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
import functools
import importlib
import json
import logging
import os
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from ._version import VERSION
from .api import export_chromakeys
from .board import Board, summary, summary_json, width
from .client import Client
from .credentials import API_KEY_ENV, APP_ID_ENV, USER_KEY_ENV
from .errors import AIStudiosError, BatchError, InvalidJob, JournalError
from .flows import LEGACY, flow_named, service_address
from .jobs import check_jobs
from .jobsfile import JobsFileError, read_jobs_file
from .names import check_template
from .polling import DEFAULT_POLL_INTERVAL, DEFAULT_RENDER_TIMEOUT

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


@dataclass(frozen=True)
class _Credentials:
    """What the command sends as credentials; never printed."""

    token: Optional[str] = None
    app_id: Optional[str] = None
    user_key: Optional[str] = None


def _from_file(path: str, option: str) -> str:
    try:
        value = Path(path).read_text(encoding="utf-8-sig").strip()
    except OSError as error:
        raise UsageError(f"{option} {path}: cannot read it ({error.strerror})") from None
    if not value:
        raise UsageError(f"{option} {path}: the file is empty")
    return value


def _secret(options: argparse.Namespace, option: str, env: str) -> str:
    path = getattr(options, option.lstrip("-").replace("-", "_"), None)
    return _from_file(path, option) if path is not None else os.environ.get(env, "").strip()


def _credentials(options: argparse.Namespace) -> _Credentials:
    """The credentials for ``--api``: from the files given, else the environment."""
    key = _secret(options, "--api-key-file", API_KEY_ENV)
    if options.api != "v3":
        if options.app_id_file or options.user_key_file:
            raise UsageError("--app-id-file and --user-key-file are V3 credentials: add --api v3")
        if not key:
            raise UsageError(
                f"no API key: set {API_KEY_ENV}, or pass --api-key-file PATH "
                "(keys are issued in your AI STUDIOS account profile). To try without one: aistudios-chromakey demo"
            )
        return _Credentials(token=key)
    app_id = _secret(options, "--app-id-file", APP_ID_ENV)
    user_key = _secret(options, "--user-key-file", USER_KEY_ENV)
    if app_id and user_key:
        return _Credentials(app_id=app_id, user_key=user_key)
    if app_id or user_key:
        missing = f"{USER_KEY_ENV} (or --user-key-file)" if app_id else f"{APP_ID_ENV} (or --app-id-file)"
        raise UsageError(f"V3 needs both the AppId and the UserKey: {missing} is missing")
    if key:
        return _Credentials(token=key)  # a ready V3 access token
    raise UsageError(
        f"no V3 credentials: set {APP_ID_ENV} and {USER_KEY_ENV}, or pass --app-id-file and --user-key-file "
        "(both are shown in your AI STUDIOS account profile). To try without them: aistudios-chromakey demo"
    )


# --- commands ---------------------------------------------------------------------


def _run_batch(jobs: List[Dict[str, Any]], origins: List[str], credentials: _Credentials, options: argparse.Namespace,
               *, base_url: Optional[str], resume: bool) -> int:  # fmt: skip
    live = sys.stderr.isatty() and not options.verbose
    board = Board(len(jobs), sys.stderr, live, options.quiet, concurrency=options.concurrency)
    extra: Dict[str, Any] = {} if options.name is None else {"filename_template": options.name}
    errors: Dict[int, BaseException] = {}
    try:
        with board:
            export_chromakeys(
                jobs, credentials.token, app_id=credentials.app_id, user_key=credentials.user_key,
                out_dir=options.out, api=options.api, base_url=base_url, poll_interval=options.poll_interval,
                timeout=options.timeout, concurrency=options.concurrency, resume=resume, on_progress=board, **extra,
            )  # fmt: skip
    except InvalidJob as error:
        return _usage(f"{_where(error, origins)}; nothing was sent")
    except JournalError as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitStatus.USAGE if getattr(error, "nothing_sent", not _sent(board)) else ExitStatus.FAILED
    except BatchError as error:
        errors = dict(error.failures)
        board.record_failures(errors)
    except ValueError as error:  # an option the library refused before sending anything
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


def _sent(board: Board) -> bool:
    return any(view.exported for view in board.views)


def _usage(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return ExitStatus.USAGE


def _where(error: InvalidJob, origins: List[str]) -> str:
    if error.position and error.position <= len(origins):
        return f"{error} ({origins[error.position - 1]})"
    return str(error)


def _report(board: Board, options: argparse.Namespace, status: int) -> None:
    if options.json:
        print(json.dumps(summary_json(board, status), indent=2))
    elif status != ExitStatus.INTERRUPTED:
        print(summary(board))


def _cmd_run(options: argparse.Namespace) -> int:
    """Read the jobs and the credentials, report every problem at once, then run."""
    problems: List[str] = []
    jobs_file = None
    try:
        jobs_file = read_jobs_file(options.jobs_file)
    except JobsFileError as error:
        problems.append(str(error))
    if jobs_file is not None:
        if jobs_file.encoding not in (None, "UTF-8", "UTF-8 with BOM") and not options.quiet:
            print(f"reading {options.jobs_file} as {jobs_file.encoding}", file=sys.stderr)
        try:
            check_jobs(jobs_file.jobs, flow_named(options.api))
        except InvalidJob as error:
            problems.append(_where(error, jobs_file.origins))
    if options.name is not None:
        try:
            check_template(options.name)
        except ValueError as error:
            problems.append(f"--name: {error}")
    try:
        credentials = _credentials(options)
    except UsageError as error:
        problems.append(str(error))
    if problems or jobs_file is None:
        for problem in problems:
            print(f"error: {problem}", file=sys.stderr)
        print("nothing was sent.", file=sys.stderr)
        return ExitStatus.USAGE
    if options.dry_run:
        return _dry_run(jobs_file.jobs, jobs_file.origins, credentials, options)
    return _run_batch(
        jobs_file.jobs, jobs_file.origins, credentials, options, base_url=options.base_url, resume=not options.no_resume
    )


def _dry_run(jobs: List[Dict[str, Any]], origins: List[str], credentials: _Credentials,
             options: argparse.Namespace) -> int:  # fmt: skip
    """What a run would send, and whether the credentials are accepted; no export."""
    with Client(credentials.token, api=options.api, base_url=options.base_url,
                app_id=credentials.app_id, user_key=credentials.user_key) as client:  # fmt: skip
        flow = "the tutorial's endpoints" if options.api == "legacy" else "the V3 endpoints"
        print(f"dry run: nothing is exported. {len(jobs)} job(s) from {options.jobs_file}")
        print(f"flow: {options.api} ({flow}) at {client.base_url}")
        print(f"output folder: {Path(options.out).resolve()}")
        for position, (job, origin) in enumerate(zip(jobs, origins), start=1):
            text = " ".join(str(job.get("text", "")).split())
            text = text if len(text) <= 40 else text[:37] + "..."
            name = f" -> {job['filename']}" if job.get("filename") else ""
            print(f"  job {position} ({origin}): {job.get('language')} {job.get('model')} "
                  f"{job.get('clothes')} \"{text}\"{name}")  # fmt: skip
        verify: Optional[Callable[[], Optional[bool]]] = getattr(client, "verify_credentials", None)
        if verify is None:
            print("credentials: present (not checked with the service: this version of the library cannot)")
            return ExitStatus.OK
        accepted = verify()
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
    from .simulator import Simulator

    say = functools.partial(print, file=sys.stderr)
    say("Demo: the tutorial's three jobs, against the built-in simulator of AI STUDIOS (no key, no network).")
    started = time.monotonic()
    with Simulator(render_seconds=1.5) as sim:
        say(f"simulated service at {sim.base_url}; videos go to {options.out}")
        status = _run_batch(
            list(TUTORIAL_JOBS), [], _Credentials(token=sim.token), options, base_url=sim.base_url, resume=False
        )
    say(f"finished in {time.monotonic() - started:.1f} s. With your own key: aistudios-chromakey run jobs.json")
    return status


def _cmd_simulate(options: argparse.Namespace) -> int:
    from .simulator import Simulator

    with Simulator(options.token, render_seconds=options.render_seconds, port=options.port) as sim:
        print(f"AI STUDIOS simulator: {sim.base_url}  (videos from {sim.download_url})")
        print(f"API key: {sim.token}")
        print(f"try: {API_KEY_ENV}={sim.token} aistudios-chromakey run jobs.json --base-url {sim.base_url}")
        print("Ctrl-C to stop." + (" Each request is logged below." if options.verbose else ""), flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped.")
    return ExitStatus.OK


def _cmd_models(options: argparse.Namespace) -> int:
    if options.api != "v3":
        return _usage(
            "the legacy API documents no model catalogue: its model and clothes ids are those of your AI STUDIOS "
            "account. The V3 catalogue: aistudios-chromakey models --api v3"
        )
    try:
        catalogue: Any = importlib.import_module(".catalogue", __package__)
    except ImportError:
        return _usage("this version of aistudios-chromakey cannot list the model catalogue yet")
    credentials = _credentials(options)
    models = catalogue.list_models(
        credentials.token, api="v3", base_url=options.base_url, app_id=credentials.app_id, user_key=credentials.user_key
    )
    if options.json:
        entries = [
            {"id": m.id, "names": m.names, "clothes": [{"id": c.id, "names": c.names} for c in m.clothes]}
            for m in models
        ]
        print(json.dumps(entries, indent=2))
        return ExitStatus.OK
    rows = [("model", "Korean name", "English name", "clothes")]
    rows += [(m.id, m.names.get("ko", "-"), m.names.get("en", "-"), ", ".join(c.id for c in m.clothes)) for m in models]
    widths = [max(width(row[column]) for row in rows) for column in range(3)]
    for row in rows:
        print("  ".join(cell + " " * (size - width(cell)) for cell, size in zip(row, widths)) + "  " + row[3])
    print(f"{len(models)} models")
    return ExitStatus.OK


# --- arguments ----------------------------------------------------------------------


def _service_address(text: str) -> str:
    try:
        return service_address(LEGACY, text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must look like https://host[:port], not {text!r}") from None


def _render_limit(text: str) -> Optional[float]:
    """Seconds one render may take; 0 for no limit."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if seconds < 0 or seconds != seconds:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, or 0 for no limit, not {text!r}")
    return None if seconds == 0 else seconds


def _positive(kind: type) -> Any:
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
        return value

    return parse


_NAME_HELP = (
    "name the files from a template of {position}, {text} (its first words), {language}, {model}, {clothes}, "
    "{key} (the project key) and {name} (the address's name, the default), e.g. '{position:03d}-{text}'; "
    ".mp4 is added when missing; a filename column in the jobs file wins"
)


def _batch_options(parser: argparse.ArgumentParser, out: str) -> None:
    """The options of every command that runs a batch."""
    add = parser.add_argument
    add("--out", default=out, metavar="DIR", help="output folder (default: %(default)s)")
    add("--name", metavar="TEMPLATE", help=_NAME_HELP)
    add("--concurrency", type=_positive(int), default=1, metavar="N",
        help="renders running at once (default: 1, the tutorial's loop)")  # fmt: skip
    add("--poll-interval", type=_positive(float), default=DEFAULT_POLL_INTERVAL, metavar="SECONDS",
        help="a fixed number of seconds between progress polls, as the tutorial's 3 "
        "(default: adaptive, timed from each render's progress)")  # fmt: skip
    add("--timeout", type=_render_limit, default=DEFAULT_RENDER_TIMEOUT, metavar="SECONDS",
        help=f"seconds one render may take, 0 for no limit (default: {DEFAULT_RENDER_TIMEOUT:g})")  # fmt: skip
    add("--json", action="store_true", help="print the summary as one JSON object, for scripts")
    add("-v", "--verbose", action="store_true", help="log every request and poll")
    add("-q", "--quiet", action="store_true", help="no progress, only the summary")


def _service_options(parser: argparse.ArgumentParser) -> None:
    """Which service, and who we are to it."""
    add = parser.add_argument
    add("--api", choices=("legacy", "v3"), default=parser.get_default("api") or "legacy",
        help="legacy: the tutorial's endpoints; v3: the V3 endpoints (default: %(default)s)")  # fmt: skip
    add("--base-url", type=_service_address, metavar="URL",
        help="the service's scheme://host[:port] (default: $AISTUDIOS_BASE_URL, else the documented host)")  # fmt: skip
    add("--api-key-file", metavar="PATH", help=f"read the API key from this file, not ${API_KEY_ENV}")
    add("--app-id-file", metavar="PATH", help=f"V3: read the AppId from this file, not ${APP_ID_ENV}")
    add("--user-key-file", metavar="PATH", help=f"V3: read the UserKey from this file, not ${USER_KEY_ENV}")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aistudios-chromakey",
        description="Chroma-key (green-screen) avatar videos from the AI STUDIOS API.",
        epilog=f"Credentials: ${API_KEY_ENV} or --api-key-file (legacy); ${APP_ID_ENV} and ${USER_KEY_ENV}, or "
        "--app-id-file and --user-key-file (--api v3). Exit status: 0 all done; 1 some jobs failed, or the "
        "service refused us; 2 bad usage or input, nothing sent; 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"aistudios-chromakey {VERSION}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="export the jobs of a JSON, CSV or Excel file",
                              description="Export every job of JOBS_FILE and download the videos.")  # fmt: skip
    run.add_argument("jobs_file", metavar="JOBS_FILE",
                     help="a JSON array of jobs, or a CSV or .xlsx table with a header row "
                     "language,text,model,clothes[,...]")  # fmt: skip
    _batch_options(run, "videos")
    _service_options(run)
    run.add_argument("--no-resume", action="store_true", help="keep no journal: export every job, even finished ones")
    run.add_argument("--dry-run", action="store_true",
                     help="check the jobs file and the credentials, show what would be sent; no export")  # fmt: skip
    run.set_defaults(handler=_cmd_run)

    demo = commands.add_parser("demo", help="run the tutorial's three jobs on the built-in simulator",
                               description="See the whole flow work in seconds, with no key or network.")  # fmt: skip
    _batch_options(demo, "videos-demo")
    demo.set_defaults(handler=_cmd_demo, api="legacy")

    models = commands.add_parser("models", help="list the avatar models and their clothes (V3)",
                                 description="The V3 model catalogue: ids, names and clothes ids.")  # fmt: skip
    models.set_defaults(handler=_cmd_models, api="v3")
    _service_options(models)
    models.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    models.add_argument("-v", "--verbose", action="store_true", help="log every request")

    simulate = commands.add_parser("simulate", help="run the simulator of the service until Ctrl-C",
                                   description="Run the simulator in the foreground, for your own tests.")  # fmt: skip
    simulate.add_argument("--port", type=int, default=0, help="the API port (default: any free one)")
    simulate.add_argument("--token", default="sim-key", help="the API key it accepts (default: %(default)s)")
    simulate.add_argument("--render-seconds", type=_positive(float), default=5.0, metavar="SECONDS",
                          help="how long each render takes (default: %(default)s)")  # fmt: skip
    simulate.add_argument("-v", "--verbose", action="store_true", help="log each request it serves")
    simulate.set_defaults(handler=_cmd_simulate)
    return parser


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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
    _never_fail_on_encoding()
    options = _parser().parse_args(argv)
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
            return int(options.handler(options))
    except UsageError as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitStatus.USAGE
    except AIStudiosError as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitStatus.FAILED
    except KeyboardInterrupt:
        print("\ninterrupted.", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except Exception as error:
        if verbose:
            raise
        print(f"error: {type(error).__name__}: {error} (run with -v for the details)", file=sys.stderr)
        return ExitStatus.FAILED
    finally:
        library.setLevel(level)
