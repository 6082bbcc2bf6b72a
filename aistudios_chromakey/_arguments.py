"""The command line's arguments, each value read and checked before anything is sent."""

from __future__ import annotations

import argparse
from functools import partial
from typing import Any, Callable, Optional, Tuple

from ._access import API_KEY_ENV, APP_ID_ENV, LEGACY, USER_KEY_ENV, named_hosts, service_address
from ._jobs import MAX_TEXT_LENGTH
from ._polling import DEFAULT_POLL_INTERVAL, DEFAULT_RENDER_TIMEOUT
from ._version import VERSION

_CREDENTIALS_HELP = (
    f"Credentials: ${APP_ID_ENV} and ${USER_KEY_ENV}, or --app-id-file and --user-key-file (V3: what today's "
    f"AI STUDIOS profile shows); ${API_KEY_ENV} or --api-key-file (the tutorial's legacy API key). Without "
    "--api, the credentials choose the API: an AppId and a UserKey mean v3, an API key legacy (a V3 access "
    "token in the API key's place needs --api v3; both kinds set at once need --api)."
)


def _service_address(text: str) -> str:
    if text.strip().lower() in named_hosts():
        return text.strip().lower()  # resolved once the API is known
    try:
        return service_address(LEGACY, text)
    except ValueError:
        names = ", ".join(named_hosts())
        raise argparse.ArgumentTypeError(f"must look like https://host[:port] (or be {names}), not {text!r}") from None


def _render_limit(text: str) -> Optional[float]:
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if seconds < 0 or seconds != seconds:  # negative, or nan
        raise argparse.ArgumentTypeError(f"must be a number of seconds, or 0 for no limit, not {text!r}")
    return None if seconds == 0 else seconds


def _adopted(text: str) -> Tuple[int, str]:
    position, _, key = text.partition("=")
    if not position.strip().isdigit() or not key.strip():
        raise argparse.ArgumentTypeError(f"must look like POSITION=KEY, e.g. 2=ee002400bc75, not {text!r}")
    return int(position), key.strip()


def _positive(kind: Callable[[str], Any], text: str) -> Any:
    try:
        value = kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text!r}")
    return value


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
    add("--timeout", type=_render_limit, default=DEFAULT_RENDER_TIMEOUT, metavar="SECONDS",
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
