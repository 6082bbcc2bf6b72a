"""The service's endpoints: the export request and the progress poll.

Both flows are here: ``api="legacy"`` (the tutorial's endpoints, with
``data.key``, and the address in ``url`` or ``videoUrl``) and ``api="v3"``
(``data.projectId`` and ``downloadUrl``).
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple
from urllib.parse import quote, urlsplit

import requests

from . import __version__
from ._transport import (
    DEFAULT_REQUEST_TIMEOUT,
    RequestTimeout,
    certainly_not_sent,
    retry_after_seconds,
    session_scope,
)
from .errors import (
    AuthenticationError,
    ExportRejected,
    ExportUncertain,
    InvalidJob,
    RateLimited,
    RenderFailed,
    RenderTimeout,
    ServiceError,
)

logger = logging.getLogger("aistudios_chromakey")

#: ``None``: adaptive polling. A number of seconds: that fixed interval (the
#: tutorial's is 3).
DEFAULT_POLL_INTERVAL: Optional[float] = None
# Adaptive polling: the wait before the rate is known, the bounds of any wait,
# and how long after the estimated finish to look.
_ADAPTIVE_FIRST = 1.0
_ADAPTIVE_MIN = 0.5
_ADAPTIVE_MAX = 15.0
_ADAPTIVE_MARGIN = 0.1
# A rate-limited poll or export waits this long when the service names no time.
_RATE_LIMIT_PAUSE = 5.0
#: Seconds one render may take before :class:`RenderTimeout` (one hour).
DEFAULT_RENDER_TIMEOUT = 3600.0

API_KEY_ENV = "AISTUDIOS_API_KEY"
BASE_URL_ENV = "AISTUDIOS_BASE_URL"

_USER_AGENT = f"aistudios-chromakey/{__version__} python-requests/{requests.__version__}"

REQUIRED_FIELDS = ("language", "text", "model", "clothes")


def _is_str(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:  # for example an unclosed IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# Optional fields each flow documents (API.md): name -> (check, what it must be).
_Check = Tuple[Callable[[Any], bool], str]
_LEGACY_OPTIONAL: Dict[str, _Check] = {
    "locale": (_is_str, "a non-empty string such as 'zh'"),
    "uppercut": (_is_number, "a number"),
    "webhook": (_is_http_url, "an http(s) URL"),
}
_V3_RESOLUTIONS = ("4k", "1080", "720", "480")
_V3_OPTIONAL: Dict[str, _Check] = {
    "isExport": (lambda v: isinstance(v, bool), "true or false"),
    "workspaceId": (_is_str, "a non-empty string"),
    "resolution": (lambda v: v in _V3_RESOLUTIONS, "one of " + ", ".join(repr(r) for r in _V3_RESOLUTIONS)),
    "webhookUrl": (_is_http_url, "an http(s) URL"),
}


@dataclass(frozen=True)
class _Flow:
    name: str
    host: str
    export_path: str
    progress_path: str
    optional: Mapping[str, _Check]


_FLOWS = {
    "legacy": _Flow(
        "legacy", "https://aistudios.com", "/api/odin/simple/video", "/api/odin/editor/progress/", _LEGACY_OPTIONAL
    ),
    "v3": _Flow(
        "v3", "https://app.aistudios.com", "/api/odin/v3/simple/video", "/api/odin/v3/editor/progress/", _V3_OPTIONAL
    ),
}

# Where the project key and the video's address may stand in an answer: the
# documentation names them differently from page to page and version to version.
_KEY_FIELDS = ("key", "projectId", "project_id")
_ADDRESS_FIELDS = ("url", "videoUrl", "downloadUrl", "download_url")
_MESSAGE_FIELDS = ("msg", "message", "error", "code")


@dataclass(frozen=True)
class ProgressEvent:
    """What ``on_progress`` callbacks receive.

    :ivar kind: ``"submitted"``, ``"progress"``, ``"downloading"``, ``"done"``
        or ``"failed"``.
    :ivar position: the job's 1-based position in a batch, or ``None``.
    :ivar project_key: the project key, once the export was accepted.
    :ivar progress: the render's progress in percent, when known.
    :ivar path: the downloaded file (``"done"``).
    :ivar error: what went wrong (``"failed"``).
    :ivar size: the file's size in bytes (``"done"``).
    :ivar sha256: the file's SHA-256, in hex (``"done"``).
    """

    kind: str
    position: Optional[int] = None
    project_key: Optional[str] = None
    progress: Optional[float] = None
    path: Optional[Path] = None
    error: Optional[BaseException] = None
    size: Optional[int] = None
    sha256: Optional[str] = None


ProgressCallback = Callable[[ProgressEvent], None]


# --- arguments -------------------------------------------------------------


def _flow(api: str) -> _Flow:
    try:
        return _FLOWS[api]
    except (KeyError, TypeError):
        raise ValueError(f"api must be 'legacy' or 'v3', not {api!r}") from None


def _base_url(flow: _Flow, base_url: Optional[str]) -> str:
    """The service's address: the argument, else ``$AISTUDIOS_BASE_URL`` (to
    aim a script at the simulator unchanged), else the flow's documented host."""
    if base_url is None:
        base_url = os.environ.get(BASE_URL_ENV) or flow.host
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.path.strip("/") or parts.query:
        raise ValueError(f"base_url (or ${BASE_URL_ENV}) must look like 'https://host[:port]', not {base_url!r}")
    return f"{parts.scheme}://{parts.netloc}"


def _resolve_token(token: Optional[str]) -> str:
    value = token if token is not None else os.environ.get(API_KEY_ENV, "")
    if not isinstance(value, str):
        raise AuthenticationError("the API key must be a string")
    value = value.strip()
    if not value:
        raise AuthenticationError(
            f"no API key: pass token=... or set the {API_KEY_ENV} environment variable "
            "(keys are issued in your AI STUDIOS account profile)"
        )
    if not (value.isascii() and value.isprintable()):
        raise AuthenticationError(
            "the API key contains a line break or a character that cannot be sent in a header; copy it again"
        )
    return value


def _validate_job(job: Any, flow: _Flow, position: Optional[int]) -> Dict[str, Any]:
    if not isinstance(job, Mapping):
        raise InvalidJob(
            f"must be a dict with {', '.join(REQUIRED_FIELDS)}, not {type(job).__name__}", position=position
        )
    for field in REQUIRED_FIELDS:
        if field not in job:
            raise InvalidJob("is missing (required)", position=position, field=field)
        value = job[field]
        if not isinstance(value, str):
            raise InvalidJob(f"must be a string, not {type(value).__name__}", position=position, field=field)
        if not value.strip():
            raise InvalidJob("must not be empty", position=position, field=field)
    for field, value in job.items():
        if field in REQUIRED_FIELDS:
            continue
        if not isinstance(field, str):
            raise InvalidJob(f"has a field name that is not a string: {field!r}", position=position)
        if field in flow.optional:
            check, expected = flow.optional[field]
            if not check(value):
                raise InvalidJob(f"must be {expected}, not {value!r}", position=position, field=field)
            continue
        other = [f for f in _FLOWS.values() if f is not flow and field in f.optional]
        if other:
            hint = f"it belongs to api={other[0].name!r}"
        else:
            known = list(REQUIRED_FIELDS) + list(flow.optional)
            close = difflib.get_close_matches(field, known, n=1)
            hint = f"did you mean {close[0]!r}?" if close else "known fields: " + ", ".join(known)
        raise InvalidJob(f"is not a field of the {flow.name} export request ({hint})", position=position, field=field)
    return dict(job)


def _validate_jobs(jobs: Iterable[Any], flow: _Flow) -> List[Dict[str, Any]]:
    if isinstance(jobs, (Mapping, str, bytes)):
        raise InvalidJob("jobs must be a list of dicts; to export one job, pass [job]")
    return [_validate_job(job, flow, position) for position, job in enumerate(jobs, start=1)]


# --- answers ---------------------------------------------------------------


def _server_message(body: Any) -> str:
    if isinstance(body, Mapping):
        for field in _MESSAGE_FIELDS:
            if body.get(field) not in (None, ""):
                return str(body[field])
        data = body.get("data")
        if isinstance(data, Mapping):
            return _server_message(data)
    return ""


def _redact(text: str, token: str) -> str:
    return text.replace(token, "<API key>") if token else text


def _describe(response: requests.Response, body: Any, token: str) -> str:
    message = _server_message(body)
    if not message and body is None:
        snippet = " ".join(response.text.split())[:200]
        message = f"{response.headers.get('Content-Type', 'no content type')}: {snippet!r}"
    text = f"HTTP {response.status_code}" + (f": {message}" if message else "")
    return _redact(text, token)


def _answer(response: requests.Response, token: str, what: str) -> Tuple[Any, str]:
    """The JSON body of a service answer; raise for HTTP errors the caller
    cannot interpret (authentication, rate limits, server errors, non-JSON)."""
    try:
        body: Any = response.json()
    except (ValueError, RecursionError):
        body = None
    status = response.status_code
    detail = _describe(response, body, token)
    if status in (401, 403):
        raise AuthenticationError(
            f"{what}: the service refused the API key ({detail}). Check the key in your AI STUDIOS "
            "profile; V3 keys expire after 24 hours."
        )
    if status == 429:
        raise RateLimited(
            f"{what}: rate limited by the service ({detail}); wait a while and try again",
            status=status,
            retry_after=retry_after_seconds(response.headers.get("Retry-After")),
        )
    if status >= 500:
        raise ServiceError(f"{what}: the service failed ({detail}); try again later", status=status)
    if body is None:
        raise ServiceError(f"{what}: the service did not answer JSON ({detail})", status=status)
    return body, detail


def _is_json(response: requests.Response) -> bool:
    try:
        response.json()
    except (ValueError, RecursionError):
        return False
    return True


def _data(body: Any) -> Mapping[str, Any]:
    data = body.get("data") if isinstance(body, Mapping) else None
    if isinstance(data, Mapping):
        return data
    return body if isinstance(body, Mapping) else {}


def _headers(token: str) -> Dict[str, str]:
    return {
        "Authorization": token,
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": _USER_AGENT,
    }


# --- step 3: the export request ---------------------------------------------


def _export(
    session: requests.Session,
    job: Mapping[str, Any],
    flow: _Flow,
    base: str,
    token: str,
    request_timeout: RequestTimeout,
    position: Optional[int],
) -> str:
    who = f"job {position}" if position is not None else "the job"
    what = f"export request for {who}"
    url = base + flow.export_path
    logger.debug("POST %s (%s)", url, who)
    try:
        response = session.post(
            url, json=dict(job), headers=_headers(token), timeout=request_timeout, allow_redirects=False
        )
    except requests.RequestException as error:
        if certainly_not_sent(error):
            raise ServiceError(f"{what}: could not reach {base} ({type(error).__name__}); nothing was sent") from None
        raise _uncertain(what, f"the request was sent but no answer came back ({type(error).__name__})") from None
    with response:
        status = response.status_code
        if status >= 500 and status != 503:
            # The service (or a gateway in front of it) may have taken the job before failing.
            raise _uncertain(what, f"the service answered HTTP {status}")
        if 300 <= status < 400:
            location = response.headers.get("Location", "?")
            raise ExportRejected(f"{what}: redirected to {location}; check base_url (nothing was exported)")
        if 200 <= status < 300 and not _is_json(response):
            raise _uncertain(what, f"the service answered HTTP {status} without JSON")
        body, detail = _answer(response, token, what)
    success = body.get("success") if isinstance(body, Mapping) else None
    if status >= 400 or success is False:
        raise ExportRejected(f"{what}: the service rejected it ({detail})")
    data = _data(body)
    for field in _KEY_FIELDS:
        key = data.get(field)
        if isinstance(key, (str, int)) and not isinstance(key, bool) and str(key).strip():
            logger.info("%s accepted: project key %s", what, key)
            return str(key)
    raise _uncertain(what, f"the answer carries no project key ({detail})")


def _uncertain(what: str, reason: str) -> ExportUncertain:
    return ExportUncertain(
        f"{what}: {reason}. The service may have accepted it and may charge for it: "
        "check your AI STUDIOS dashboard before exporting it again."
    )


def request_export(
    job: Mapping[str, Any],
    token: Optional[str] = None,
    *,
    api: str = "legacy",
    base_url: Optional[str] = None,
    session: Optional[requests.Session] = None,
    request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT,
) -> str:
    """Ask the service to render one chroma-key video (tutorial step 3).

    The job is checked before anything is sent. The request is resent only
    when the service certainly did not receive it, so one call is at most one
    paid render.

    :param job: a dict with ``language``, ``text``, ``model``, ``clothes`` and
        any optional field the chosen API documents.
    :param token: the API key; defaults to ``$AISTUDIOS_API_KEY``.
    :param api: ``"legacy"`` (the tutorial's endpoints) or ``"v3"``.
    :param base_url: ``scheme://host[:port]`` of the service; defaults to
        ``$AISTUDIOS_BASE_URL``, else the documented host of ``api``.
    :param session: a ``requests.Session`` to reuse.
    :param request_timeout: seconds to connect and to wait for an answer,
        one number or a ``(connect, read)`` pair.
    :return: the project key that :func:`wait_for_video` takes.
    :rtype: str
    :raises InvalidJob: the job is malformed (nothing was sent).
    :raises AuthenticationError: no key, or the service refused it.
    :raises ExportRejected: the service refused the job; its message says why.
    :raises ExportUncertain: the answer was lost; the render may exist.
    :raises ServiceError: the service could not be reached or answered
        something unusable.

    Usage::

        >>> key = request_export({"language": "ko", "text": "안녕하세요",
        ...                       "model": "M000004017", "clothes": "BG00006160"})
    """
    flow = _flow(api)
    body = _validate_job(job, flow, None)
    _check_timing(None, None, request_timeout)
    base = _base_url(flow, base_url)
    secret = _resolve_token(token)
    with session_scope(session) as active:
        return _export(active, body, flow, base, secret, request_timeout, None)


# --- step 4: progress --------------------------------------------------------


def _progress_value(data: Mapping[str, Any], what: str) -> float:
    raw = data.get("progress", 0)
    if raw is None:
        return 0.0
    if isinstance(raw, bool):
        raise ServiceError(f"{what}: progress is not a number: {raw!r}")
    try:
        value = float(raw)
    except (TypeError, ValueError, OverflowError):
        raise ServiceError(f"{what}: progress is not a number: {raw!r}") from None
    if not math.isfinite(value):
        raise ServiceError(f"{what}: progress is not a number: {raw!r}")
    return value


def _address(data: Mapping[str, Any], what: str) -> Optional[str]:
    for field in _ADDRESS_FIELDS:
        value = data.get(field)
        if value in (None, ""):
            continue
        if not _is_http_url(value):
            raise ServiceError(f"{what}: the video address is not an http(s) URL: {str(value)[:200]!r}")
        return str(value)
    return None


def _poll(
    session: requests.Session,
    key: str,
    flow: _Flow,
    base: str,
    token: str,
    request_timeout: RequestTimeout,
) -> Tuple[float, Optional[str]]:
    """One progress request: ``(progress, address or None)``."""
    what = f"progress of project {key}"
    url = base + flow.progress_path + quote(key, safe="")
    try:
        response = session.get(url, headers=_headers(token), timeout=request_timeout)
    except requests.RequestException as error:
        raise ServiceError(
            f"{what}: the service could not be reached ({type(error).__name__}); try again later"
        ) from None
    with response:
        body, detail = _answer(response, token, what)
    if response.status_code == 404:
        raise RenderFailed(f"{what}: the service does not know this project ({detail})")
    if response.status_code >= 400 or not isinstance(body, Mapping):
        raise ServiceError(f"{what}: unexpected answer ({detail})", status=response.status_code)
    if body.get("success") is False:
        raise RenderFailed(f"{what}: the render failed ({detail})")
    data = _data(body)
    progress = _progress_value(data, what)
    address = _address(data, what)
    logger.debug("project %s: progress %s, address %s", key, progress, "present" if address else "not yet")
    return progress, address


class _PollClock:
    """When to poll one render next.

    With a fixed interval, that interval. Adaptive (``interval=None``): the
    progress seen so far gives the render's rate, and the next poll is set
    just after the estimated finish, bounded by a minimum and a maximum wait,
    so a render is polled a few times whatever its length and its download
    starts soon after it is done.
    """

    def __init__(self, interval: Optional[float], started: float):
        self.interval = interval
        self.last: Tuple[float, float] = (started, 0.0)  # (time, progress) at the last rise

    def next_wait(self, now: float, progress: float) -> float:
        if self.interval is not None:
            return self.interval
        if progress >= 100:  # done, and waiting for the address
            return _ADAPTIVE_MIN
        then, before = self.last
        if progress <= before:
            # No rise yet (queued, or stalled): look again, less often the longer it lasts.
            return min(_ADAPTIVE_MAX, max(_ADAPTIVE_FIRST, (now - then) / 2))
        if now - then < _ADAPTIVE_FIRST / 2:
            # Too short a span for a rate: latency and rounding would dominate it.
            return _ADAPTIVE_FIRST
        self.last = (now, progress)
        rate = (progress - before) / (now - then)
        return min(_ADAPTIVE_MAX, max(_ADAPTIVE_MIN, (100 - progress) / rate + _ADAPTIVE_MARGIN))


def _check_timing(poll_interval: Optional[float], timeout: Optional[float], request_timeout: Any) -> None:
    """Refuse nonsense before anything is sent or paid for."""
    if poll_interval is not None and (not _is_number(poll_interval) or poll_interval <= 0):
        raise ValueError(f"poll_interval must be None (adaptive) or a number of seconds > 0, not {poll_interval!r}")
    if timeout is not None and (not _is_number(timeout) or timeout <= 0):
        raise ValueError(f"timeout must be a number of seconds > 0 or None (no limit), not {timeout!r}")
    parts = request_timeout if isinstance(request_timeout, tuple) else (request_timeout,)
    if not parts or len(parts) > 2 or not all(_is_number(p) and p > 0 for p in parts):
        raise ValueError(f"request_timeout must be seconds > 0 or a (connect, read) pair, not {request_timeout!r}")


def _pause_for(error: RateLimited) -> float:
    return max(1.0, error.retry_after if error.retry_after is not None else _RATE_LIMIT_PAUSE)


def _timed_out(key: str, timeout: Optional[float], progress: float, who: str = "") -> RenderTimeout:
    return RenderTimeout(
        f"{who}project {key}: not done after {timeout:g} s (progress {progress:g}%"
        + (", no video address yet" if progress >= 100 else "")
        + "). The render may still finish: wait for it again with the same project key, "
        "or run the same batch again."
    )


def wait_for_video(
    project_key: str,
    token: Optional[str] = None,
    *,
    api: str = "legacy",
    base_url: Optional[str] = None,
    session: Optional[requests.Session] = None,
    poll_interval: Optional[float] = DEFAULT_POLL_INTERVAL,
    timeout: Optional[float] = DEFAULT_RENDER_TIMEOUT,
    on_progress: Optional[ProgressCallback] = None,
    request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT,
) -> str:
    """Poll a render's progress until it is done (tutorial step 4).

    Done means progress has reached 100 *and* the video's address has
    appeared; until both hold, it polls again. By default the next poll is
    timed from the progress seen so far (just after the render should end);
    ``poll_interval=3`` polls every 3 seconds, as the tutorial does. When the
    service rate-limits the polls (HTTP 429), it waits as long as asked.

    :param project_key: what :func:`request_export` returned.
    :param token: the API key; defaults to ``$AISTUDIOS_API_KEY``.
    :param api: ``"legacy"`` or ``"v3"``, as for the export.
    :param base_url: the service's ``scheme://host[:port]``.
    :param session: a ``requests.Session`` to reuse.
    :param poll_interval: seconds between polls; ``None`` (the default) for
        adaptive polling.
    :param timeout: seconds the render may take, ``None`` for no limit.
    :param on_progress: called with a :class:`ProgressEvent` after each poll.
    :param request_timeout: seconds to connect and to wait for each answer.
    :return: the video's address (a URL on the storage host).
    :rtype: str
    :raises RenderFailed: the service reported a failed or unknown render.
    :raises RenderTimeout: not done within ``timeout`` (also a ``TimeoutError``).
    :raises AuthenticationError: the service refused the key.
    :raises ServiceError: the service answered something unusable.

    Usage::

        >>> url = wait_for_video(key, poll_interval=3, timeout=600)
    """
    if not isinstance(project_key, str) or not project_key.strip():
        raise ValueError(f"project_key must be a non-empty string, not {project_key!r}")
    _check_timing(poll_interval, timeout, request_timeout)
    flow = _flow(api)
    base = _base_url(flow, base_url)
    secret = _resolve_token(token)
    started = time.monotonic()
    deadline = None if timeout is None else started + timeout
    clock = _PollClock(poll_interval, started)
    progress = 0.0
    with session_scope(session) as active:
        while True:
            limited: Optional[RateLimited] = None
            try:
                progress, address = _poll(active, project_key, flow, base, secret, request_timeout)
            except RateLimited as error:
                limited, pause = error, _pause_for(error)
                logger.warning("project %s: rate limited; polling again in %g s", project_key, pause)
            else:
                if on_progress is not None:
                    on_progress(ProgressEvent("progress", project_key=project_key, progress=progress))
                if progress >= 100 and address:
                    return address
                pause = clock.next_wait(time.monotonic(), progress)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise limited or _timed_out(project_key, timeout, progress)
                pause = min(pause, left)
            time.sleep(pause)
