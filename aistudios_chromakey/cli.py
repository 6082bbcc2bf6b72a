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
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any, Dict, Iterator, List, Optional, Sequence

from ._version import VERSION
from .api import export_chromakeys
from .board import Board, summary
from .credentials import API_KEY_ENV
from .errors import AIStudiosError, BatchError, InvalidJob, JournalError
from .flows import LEGACY, service_address
from .jobsfile import JobsFileError, read_jobs_file
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


def _read_key(options: argparse.Namespace) -> str:
    if options.api_key_file is not None:
        try:
            key = Path(options.api_key_file).read_text(encoding="utf-8-sig").strip()
        except OSError as error:
            raise UsageError(f"--api-key-file {options.api_key_file}: cannot read it ({error.strerror})") from None
        if not key:
            raise UsageError(f"--api-key-file {options.api_key_file}: the file is empty")
        return key
    key = os.environ.get(API_KEY_ENV, "").strip()
    if not key:
        raise UsageError(
            f"no API key: set {API_KEY_ENV}, or pass --api-key-file PATH "
            "(keys are issued in your AI STUDIOS account profile). To try without one: aistudios-chromakey demo"
        )
    return key


# --- showing progress -------------------------------------------------------------


# --- commands ---------------------------------------------------------------------


def _run_batch(
    jobs: List[Dict[str, Any]],
    origins: List[str],
    key: str,
    options: argparse.Namespace,
    *,
    base_url: Optional[str],
    resume: bool,
) -> int:
    board = Board(len(jobs), sys.stderr, sys.stderr.isatty() and not options.verbose, options.quiet)
    errors: Dict[int, BaseException] = {}
    try:
        paths: List[Optional[Path]] = list(
            export_chromakeys(
                jobs,
                key,
                out_dir=options.out,
                api=options.api,
                base_url=base_url,
                poll_interval=options.poll_interval,
                timeout=options.timeout,
                concurrency=options.concurrency,
                resume=resume,
                on_progress=board,
            )
        )
    except InvalidJob as error:
        where = f" ({origins[error.position - 1]})" if error.position and error.position <= len(origins) else ""
        print(f"error: {error}{where}; nothing was sent", file=sys.stderr)
        return ExitStatus.USAGE
    except JournalError as error:
        print(f"error: {error}", file=sys.stderr)
        return ExitStatus.FAILED
    except BatchError as error:
        paths = error.paths
        errors = {position: reason for position, reason in error.failures}
    except KeyboardInterrupt:
        print(
            "\ninterrupted. Run the same command again to resume without paying twice"
            + ("." if resume else " (but --no-resume kept no journal: every job would be exported again)."),
            file=sys.stderr,
        )
        return ExitStatus.INTERRUPTED
    print(summary(board, paths, errors))
    return ExitStatus.FAILED if errors else ExitStatus.OK


def _cmd_run(options: argparse.Namespace) -> int:
    try:
        jobs_file = read_jobs_file(options.jobs_file)
    except JobsFileError as error:
        raise UsageError(str(error)) from None
    jobs, origins = jobs_file.jobs, jobs_file.origins
    key = _read_key(options)
    return _run_batch(jobs, origins, key, options, base_url=options.base_url, resume=not options.no_resume)


def _cmd_demo(options: argparse.Namespace) -> int:
    from .simulator import Simulator

    print("Demo: the tutorial's three jobs, against the built-in simulator of AI STUDIOS (no key, no network).")
    started = time.monotonic()
    with Simulator(render_seconds=1.5) as sim:
        print(f"simulated service at {sim.base_url}")
        status = _run_batch(list(TUTORIAL_JOBS), [], sim.token, options, base_url=sim.base_url, resume=False)
    print(f"finished in {time.monotonic() - started:.1f} s. With your own key: aistudios-chromakey run jobs.json")
    return status


def _cmd_simulate(options: argparse.Namespace) -> int:
    from .simulator import Simulator

    with Simulator(options.token, render_seconds=options.render_seconds, port=options.port) as sim:
        print(f"AI STUDIOS simulator: {sim.base_url}  (videos from {sim.download_url})")
        print(f"API key: {sim.token}")
        print(f"try: {API_KEY_ENV}={sim.token} aistudios-chromakey run jobs.json --base-url {sim.base_url}")
        print("Ctrl-C to stop.", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopped.")
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
        if float(text) == 0:
            return None
    except ValueError:
        pass  # _positive says what is wrong
    seconds: float = _positive(float)(text)
    return seconds


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


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aistudios-chromakey",
        description="Chroma-key (green-screen) avatar videos from the AI STUDIOS API.",
        epilog=f"The API key comes from ${API_KEY_ENV} or --api-key-file. Exit status: 0 all done, "
        "1 some jobs failed, 2 bad usage or input (nothing sent), 130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"aistudios-chromakey {VERSION}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    batch = argparse.ArgumentParser(add_help=False)
    batch.add_argument("--out", default="videos", metavar="DIR", help="output folder (default: %(default)s)")
    batch.add_argument(
        "--concurrency",
        type=_positive(int),
        default=1,
        metavar="N",
        help="renders running at once (default: 1, the tutorial's loop)",
    )
    batch.add_argument(
        "--poll-interval",
        type=_positive(float),
        default=DEFAULT_POLL_INTERVAL,
        metavar="SECONDS",
        help="a fixed number of seconds between progress polls, as the tutorial's 3 "
        "(default: adaptive, timed from each render's progress)",
    )
    batch.add_argument(
        "--timeout",
        type=_render_limit,
        default=DEFAULT_RENDER_TIMEOUT,
        metavar="SECONDS",
        help="seconds one render may take, 0 for no limit (default: %(default)s)",
    )
    batch.add_argument("-v", "--verbose", action="store_true", help="log every request and poll")
    batch.add_argument("-q", "--quiet", action="store_true", help="no progress, only the summary")

    run = commands.add_parser(
        "run",
        parents=[batch],
        help="export the jobs of a JSON or CSV file",
        description="Export every job of JOBS_FILE and download the videos.",
    )
    run.add_argument(
        "jobs_file",
        metavar="JOBS_FILE",
        help="a JSON array of jobs, or a CSV file with a header row language,text,model,clothes[,...]",
    )
    run.add_argument(
        "--api",
        choices=("legacy", "v3"),
        default="legacy",
        help="legacy: the tutorial's endpoints (default); v3: the V3 endpoints",
    )
    run.add_argument(
        "--base-url",
        type=_service_address,
        metavar="URL",
        help="the service's scheme://host[:port] (default: $AISTUDIOS_BASE_URL, else the documented host)",
    )
    run.add_argument(
        "--api-key-file", metavar="PATH", help=f"read the API key from this file instead of ${API_KEY_ENV}"
    )
    run.add_argument("--no-resume", action="store_true", help="keep no journal: export every job, even finished ones")
    run.set_defaults(handler=_cmd_run)

    demo = commands.add_parser(
        "demo",
        parents=[batch],
        help="run the tutorial's three jobs on the built-in simulator",
        description="See the whole flow work in seconds, without a key or a network.",
    )
    demo.set_defaults(handler=_cmd_demo, api="legacy")

    simulate = commands.add_parser(
        "simulate",
        help="run the simulator of the service until Ctrl-C",
        description="Run the simulator in the foreground, for your own tests.",
    )
    simulate.add_argument("--port", type=int, default=0, help="the API port (default: any free one)")
    simulate.add_argument("--token", default="sim-key", help="the API key it accepts (default: %(default)s)")
    simulate.add_argument(
        "--render-seconds",
        type=_positive(float),
        default=5.0,
        metavar="SECONDS",
        help="how long each render takes (default: %(default)s)",
    )
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


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line; returns the exit status."""
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
