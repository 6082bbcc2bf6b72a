"""The ``aistudios-chromakey`` command, a thin front over the library: it owns the terminal, the library only logs;
every argument is read and checked before anything is sent."""

from __future__ import annotations

import argparse
import enum
import errno
import io
import json
import logging
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from . import _access as access
from . import video
from ._access import API_KEY_ENV, APP_ID_ENV, USER_KEY_ENV, Given, api_named, credentials_from
from ._batch import check_folder
from ._board import Board, shown, summary, summary_json, terminal_size, width
from ._client import Client
from ._functions import export_chromakeys, list_models
from ._jobs import MAX_TEXT_LENGTH, JobsFileError, check_jobs, check_template, first_words, read_jobs_file
from ._polling import DEFAULT_POLL_INTERVAL, DEFAULT_RENDER_TIMEOUT
from ._reports import AIStudiosError, BatchError, InvalidJob
from ._version import VERSION
from .simulator import Simulator

logger = logging.getLogger("aistudios_chromakey")

_CREDENTIALS_HELP = (
    f"Credentials: ${APP_ID_ENV} and ${USER_KEY_ENV}, or --app-id-file and --user-key-file (V3: what today's "
    f"AI STUDIOS profile shows); ${API_KEY_ENV} or --api-key-file (the tutorial's legacy API key). Without "
    "--api, the credentials choose the API: an AppId and a UserKey mean v3, an API key legacy (a V3 access "
    "token in the API key's place needs --api v3; both kinds set at once need --api)."
)


def _service_address(text: str) -> str:
    if text.strip().lower() in access.named_hosts():
        return text.strip().lower()  # resolved once the API is known
    try:
        return access.service_address(access.LEGACY, text)
    except ValueError:
        names = ", ".join(access.named_hosts())
        raise argparse.ArgumentTypeError(f"must look like https://host[:port] (or be {names}), not {text!r}") from None


def _adopted(text: str) -> Tuple[int, str]:
    position, _, key = text.partition("=")
    if not position.strip().isdigit() or not key.strip():
        raise argparse.ArgumentTypeError(f"must look like POSITION=KEY, e.g. 2=ee002400bc75, not {text!r}")
    return int(position), key.strip()


def _positive(kind: Callable[[str], Any], text: str, zero: bool = False) -> Any:
    """More than 0; with ``zero``, 0 too, meaning no limit (``None``)."""
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 or (zero and value == 0)):  # nan is neither
        raise argparse.ArgumentTypeError(f"must be more than 0{', or 0 for no limit' if zero else ''}: {text!r}")
    return value or None


def _video_options(parser: argparse.ArgumentParser, what: str, flag: str = "--transparent") -> None:
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(flag, dest="transparent", choices=("webm", "mov", "png"), metavar="FORMAT", help=what + "a "
                        "clip with an alpha channel: webm (VP9, for the web), mov (ProRes 4444, for editing suites) or "
                        "png (a folder of frames); needs ffmpeg")  # fmt: skip
    choice.add_argument("--background", metavar="FILE|COLOR", help=what + "a finished MP4 over this image, video or "
                        "colour (#3050A0); needs ffmpeg")  # fmt: skip


def _batch_options(parser: argparse.ArgumentParser, out: str) -> None:
    add = parser.add_argument
    add("--out", default=out, metavar="DIR", help="output folder (default: %(default)s)")
    add("--name", metavar="TEMPLATE", help="name the files from a template of {position}, {text}, {language}, {model}, "
        "{clothes}, {key} and {name} (the default), e.g. '{position:03d}-{text}'; a filename column wins")  # fmt: skip
    add("--concurrency", type=partial(_positive, int), default=1, metavar="N", help="renders at once (default: 1)")
    add("--poll-interval", type=partial(_positive, float), default=DEFAULT_POLL_INTERVAL, metavar="SECONDS",
        help="seconds between progress polls (default: adaptive, timed from each render's progress)")  # fmt: skip
    add("--timeout", type=partial(_positive, float, zero=True), default=DEFAULT_RENDER_TIMEOUT, metavar="SECONDS",
        help=f"seconds one render may take, 0 for no limit (default: {DEFAULT_RENDER_TIMEOUT:g})")  # fmt: skip
    _video_options(parser, "also make each video, as it arrives, ")
    add("--json", action="store_true", help="print the summary as one JSON object, for scripts")
    add("-v", "--verbose", action="store_true", help="log every request and poll")
    add("-q", "--quiet", action="store_true", help="no progress, only the summary")


def _service_options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--base-url", type=_service_address, metavar="URL", help="the service's scheme://host[:port], or cn for "
        "V3's China service (default: $AISTUDIOS_BASE_URL, else the documented host)")  # fmt: skip
    add("--api-key-file", metavar="PATH", help=f"read the API key from this file, not ${API_KEY_ENV}")
    add("--app-id-file", metavar="PATH", help=f"V3: read the AppId from this file, not ${APP_ID_ENV}")
    add("--user-key-file", metavar="PATH", help=f"V3: read the UserKey from this file, not ${USER_KEY_ENV}")


def parser() -> argparse.ArgumentParser:
    """The command line's parser; ``options.command`` names the command."""
    parser = argparse.ArgumentParser(
        prog="aistudios-chromakey", description="Chroma-key (green-screen) avatar videos from the AI STUDIOS API.",
        epilog=_CREDENTIALS_HELP + " Exit status: 0 all done; 1 some jobs failed, or the service refused us; "
        "2 bad usage or input, nothing sent; 130 interrupted.")  # fmt: skip
    parser.add_argument("--version", action="version", version=f"aistudios-chromakey {VERSION}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    run = commands.add_parser("run", help="export the jobs of a JSON, CSV or Excel file", epilog=_CREDENTIALS_HELP,
                              description="Export every job of JOBS_FILE and download the videos.")  # fmt: skip
    add = run.add_argument
    add("jobs_file", metavar="JOBS_FILE", help="a JSON array of jobs, or a CSV or .xlsx table with a header row "
        "language,text,model,clothes[,...]")  # fmt: skip
    _batch_options(run, "videos")
    add("--api", choices=("legacy", "v3"), help="legacy: the tutorial's endpoints; v3: the V3 endpoints (default: "
        "the credentials decide, see below)")  # fmt: skip
    _service_options(run)
    add("--no-resume", action="store_true", help="keep no journal: export every job, even finished ones")
    add("--adopt", action="append", type=_adopted, default=[], metavar="POSITION=KEY",
        help="a project key you know for job POSITION: polled and downloaded, never exported again")  # fmt: skip
    add("--no-catalogue-check", action="store_true", help="V3: skip checking the models against the service's list")
    add("--max-text-length", type=partial(_positive, int), default=MAX_TEXT_LENGTH, metavar="N",
        help="the longest text a job may have (default: %(default)s characters)")  # fmt: skip
    add("--dry-run", action="store_true", help="check the jobs file and the credentials, show what would be sent")

    demo = commands.add_parser("demo", help="run the tutorial's three jobs on the built-in simulator",
                               description="See the whole flow work in seconds, with no key or network.")  # fmt: skip
    _batch_options(demo, "videos-demo")
    demo.set_defaults(no_resume=True, adopt=[], no_catalogue_check=False, max_text_length=MAX_TEXT_LENGTH)

    models = commands.add_parser(
        "models", help="list the avatar models and their clothes (V3)", description="The V3 model catalogue: ids, "
        "names and clothes ids (the legacy API documents none: use the ids of your account).", epilog=f"Credentials: "
        f"${APP_ID_ENV} and ${USER_KEY_ENV}, or --app-id-file and --user-key-file (the AppId and UserKey of your AI "
        f"STUDIOS profile); a ready V3 access token in ${API_KEY_ENV} or --api-key-file.")  # fmt: skip
    models.set_defaults(api="v3")
    _service_options(models)
    models.add_argument("--json", action="store_true", help="print the catalogue as JSON")
    models.add_argument("-v", "--verbose", action="store_true", help="log every request")

    transparent = commands.add_parser(
        "transparent", help="key the green away from videos already downloaded (needs ffmpeg)", description="Make "
        "each VIDEO a clip with an alpha channel (default: webm), or, with --background, a finished MP4 over a "
        "background. The key colour is measured on each clip; the original is kept.")  # fmt: skip
    transparent.add_argument("videos", nargs="+", metavar="VIDEO", help="a chroma-key MP4")
    _video_options(transparent, "", "--format")
    transparent.add_argument("--out", metavar="DIR", help="output folder (default: each video's own)")

    simulate = commands.add_parser("simulate", help="run the simulator of the service until Ctrl-C",
                                   description="Run the simulator in the foreground, for your own tests.")  # fmt: skip
    add = simulate.add_argument
    add("--port", type=int, default=0, help="the API port (default: any free one)")
    add("--token", default="sim-key", help="the API key it accepts (default: %(default)s)")
    add("--app-id", default="sim-app-id", help="the V3 AppId it accepts (default: %(default)s)")
    add("--user-key", default="sim-user-key", help="the V3 UserKey it accepts (default: %(default)s)")
    add("--render-seconds", type=partial(_positive, float), default=5.0, metavar="SECONDS",
        help="how long each render takes (default: %(default)s)")  # fmt: skip
    add("-v", "--verbose", action="store_true", help="log each request it serves")
    return parser


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


def _cmd_run(options: argparse.Namespace) -> int:
    """Read the jobs and the credentials, report every problem at once, then run."""
    problems: List[Tuple[str, Dict[str, Any]]] = []  # each with where it is, for --json
    jobs_file = credentials = None
    try:
        credentials = credentials_from(options.api, key_file=options.api_key_file, app_id_file=options.app_id_file,
                                       user_key_file=options.user_key_file)  # fmt: skip
    except ValueError as error:  # what is missing
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


def _run_batch(jobs: List[Dict[str, Any]], origins: List[str], credentials: Given, options: argparse.Namespace) -> int:
    labels = [job.get("filename") or first_words(str(job.get("text", "")), 30) for job in jobs]
    board = Board(len(jobs), sys.stderr, sys.stderr.isatty() and not options.verbose, options.quiet, labels=labels,
                  concurrency=options.concurrency,
                  finishing="transparent" if options.transparent else "compositing")  # fmt: skip
    level, status = logger.level, ExitStatus.OK
    if not options.verbose:  # verbose, every log line is printed already; else the board shows the notices
        logger.addHandler(board)
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
    except BatchError:  # each failure is on the board already, told by its event
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
        logger.removeHandler(board)
        logger.setLevel(level)
    if options.json:
        options.json_out = {**summary_json(board, status), "errors": _said}
    elif status != ExitStatus.INTERRUPTED:
        print(summary(board, terminal_size(sys.stdout)[0] - 1, sys.stdout.encoding or "utf-8"))
    return status


def _dry_run(jobs: List[Dict[str, Any]], origins: List[str], credentials: Given, options: argparse.Namespace) -> int:
    """What a run would send, and whether the credentials are accepted; no export."""
    check_folder(Path(options.out), create=False)  # as a run does, but making nothing
    with Client(**asdict(credentials), base_url=options.base_url) as client:
        print(f"dry run: nothing is exported. {len(jobs)} job(s) from {options.jobs_file}")
        print(f"flow: {credentials.api} at {client.base_url}; output folder: {Path(options.out).resolve()}")
        for position, (job, origin) in enumerate(zip(jobs, origins), start=1):
            text = first_words(str(job.get("text", "")), 40)
            print(f"  job {position} ({origin}): {job.get('language')} {job.get('model')} {job.get('clothes')} "
                  f"\"{text}\"" + (f" -> {job['filename']}" if job.get("filename") else ""))  # fmt: skip
        accepted = client.verify_credentials()
    if accepted is False:
        return _error("the service refused the credentials; copy them again from your profile", ExitStatus.FAILED)
    print("credentials: " + ("accepted by the service" if accepted else "present; not checked, as the legacy "
          "API has no way to check a key without exporting"))  # fmt: skip
    return ExitStatus.OK


def _cmd_demo(options: argparse.Namespace) -> int:
    say = partial(print, file=sys.stderr)
    say("Demo: the tutorial's three jobs, against the built-in simulator of AI STUDIOS (no key, no network).")
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
    say("With your own key: aistudios-chromakey run jobs.json")
    return status


def _demo_clips(mp4: Path, say: Callable[..., None]) -> None:
    """Where ffmpeg is, the green keyed away: a transparent clip, a finished one over a colour, a frame of it."""
    try:
        ffmpeg = video.check_ffmpeg("composite")
        video.check_ffmpeg("webm")
    except video.FFmpegMissing:
        say('With ffmpeg (or pip install "aistudios-chromakey[video]") the demo also keys the green away.')
        return
    clip, finished = video.make_transparent(mp4), video.composite(mp4, "#3050A0")
    frame = mp4.with_name(f"{mp4.stem}_preview.png")
    subprocess.run([ffmpeg, "-nostdin", "-loglevel", "error", "-y", "-ss", "1", "-i", str(finished),
                    "-frames:v", "1", str(frame)], check=True, timeout=60)  # fmt: skip
    say(f"keyed with ffmpeg: {clip} (transparent), {finished} (over a colour), {frame} (a frame of it)")


def _cmd_transparent(options: argparse.Namespace) -> int:
    make: Callable[..., Path] = partial(video.make_transparent, format=options.transparent or "webm")
    try:
        video.check_ffmpeg("composite" if options.background else options.transparent or "webm")
        if options.background:
            video.check_background(options.background)
            make = partial(video.composite, background=options.background)
    except (video.FFmpegMissing, video.InvalidVideoInput) as error:
        return _error(str(error))
    if options.out:
        Path(options.out).mkdir(parents=True, exist_ok=True)
    failed = 0
    for mp4 in options.videos:
        try:
            made = make(mp4, out_dir=options.out)
        except video.VideoError as error:
            failed += 1
            print(f"error: {shown(mp4)}: {shown(error)}", file=sys.stderr)
            continue
        print(shown(made))
    return ExitStatus.FAILED if failed else ExitStatus.OK


def _cmd_simulate(options: argparse.Namespace) -> int:
    try:
        with Simulator(options.token, render_seconds=options.render_seconds, port=options.port,
                       app_id=options.app_id, user_key=options.user_key) as sim:  # fmt: skip
            print(f"AI STUDIOS simulator: {sim.base_url}  (videos from {sim.download_url})")
            print(f"API key: {sim.token}   V3 AppId: {sim.app_id}   V3 UserKey: {sim.user_key}")
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
        credentials = credentials_from(options.api, key_file=options.api_key_file, app_id_file=options.app_id_file,
                                       user_key_file=options.user_key_file)  # fmt: skip
    except ValueError as error:
        return _error(str(error))
    models = list_models(**asdict(credentials), base_url=options.base_url)
    if options.json:
        options.json_out = [asdict(model) for model in models]
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
    main_thread = threading.current_thread() is threading.main_thread()  # the only one that may set a signal
    sigterm = signal.signal(signal.SIGTERM, signal.default_int_handler) if main_thread else None  # as Ctrl-C
    try:
        status = int({"run": _cmd_run, "demo": _cmd_demo, "models": _cmd_models, "simulate": _cmd_simulate,
                      "transparent": _cmd_transparent}[options.command](options))  # fmt: skip
    except AIStudiosError as error:
        nothing_sent = any(getattr(error, name, False) for name in ("unreachable", "moved", "nothing_sent"))
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
        if main_thread:
            signal.signal(signal.SIGTERM, sigterm or signal.SIG_DFL)
    if getattr(options, "json", False):  # always one object, even when it stopped before its summary
        stopped = {"exit_status": status, "errors": _said, "jobs": [], "totals": None}
        print(json.dumps(getattr(options, "json_out", stopped), indent=2, ensure_ascii=False))  # Hangul as Hangul
    return status
