"""Reading the service's answers: their size, whether they say success, and
where the project key, the progress, the video's address and the service's
own message stand in them. The docs name these differently from page to page
(``url``, ``videoUrl``, ``downloadUrl``, ``download_url``; a flat ``msg`` or
a nested ``error.msg``), and a failure may come as HTTP 200 with ``success:
false``: each spelling is accepted, nothing else is trusted.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Optional, Tuple

import requests

from ._errors import AuthenticationError, ExportRejected, ExportUncertain, RateLimited, RenderFailed, ServiceError
from ._http import retry_after_seconds
from ._jobs import is_http_url

#: An API answer is a few hundred bytes; past this it is refused unread.
MAX_ANSWER_BYTES = 1024 * 1024
_SNIPPET = 200
_SHORT = 8

# A refused credential answered with HTTP 200 and success: false (no page lists the codes): its
# code or message speaks of a credential, which a failed render or a bad field never does.
_CREDENTIAL_WORDS = re.compile(r"token|auth|credential|jwt|app.?id|user.?key|api.?key|forbidden|access.?denied", re.I)
# A V3 state that says the render failed (none is documented): any case.
_FAILED_STATE = re.compile(r"fail|error|cancel", re.I)
#: V3 states the docs name: running, and ready ("exported"; getting-started's "Complete").
KNOWN_STATES = frozenset({"exporting", "exported", "complete"})

_KEY_FIELDS = ("key", "projectId", "project_id")
_ADDRESS_FIELDS = ("url", "videoUrl", "downloadUrl", "download_url")

Redact = Callable[[str], str]


def redactor(secrets: Iterable[str]) -> Redact:
    """A function that blanks every one of ``secrets`` out of a text (before
    any text is cut short). A secret shorter than :data:`_SHORT` characters (a
    typo, a test value) is blanked only where it stands alone: blanking every
    ``a`` inside words would shred the service's message and hide nothing."""
    hidden = sorted({s for s in secrets if s}, key=len, reverse=True)
    short = [re.compile(rf"(?<![0-9A-Za-z]){re.escape(s)}(?![0-9A-Za-z])") for s in hidden if len(s) < _SHORT]
    long = [s for s in hidden if len(s) >= _SHORT]

    def redact(text: str) -> str:
        for secret in long:
            text = text.replace(secret, "<credential>")
        for pattern in short:
            text = pattern.sub("<credential>", text)
        return text

    return redact


@dataclass(frozen=True)
class Answer:
    """One answer of the API host: its HTTP status, its JSON (``None`` when it
    was not JSON) and a short description for messages, already redacted."""

    status: int
    body: Any
    detail: str
    retry_after: Optional[float] = None

    @property
    def ok(self) -> bool:
        """A JSON object that says ``success: true``; anything else is not."""
        return isinstance(self.body, Mapping) and self.body.get("success") is True

    @property
    def data(self) -> Mapping[str, Any]:
        body = self.body if isinstance(self.body, Mapping) else {}
        data = body.get("data")
        return data if isinstance(data, Mapping) else body


@dataclass(frozen=True)
class Progress:
    """One progress answer: percent (0 to 100), the video's address once there
    is one, and the service's word for the render's state (V3), if any."""

    progress: float
    address: Optional[str] = None
    state: Optional[str] = None

    @property
    def done(self) -> bool:
        """Progress at 100 *and* an address: the tutorial's test for done (or
        V3's state ``exported``, the docs' word for ready, and an address)."""
        ready = self.progress >= 100 or (self.state or "").lower() == "exported"
        return ready and bool(self.address)


def read_answer(response: requests.Response, redact: Redact) -> Answer:
    """Read a streamed answer, at most :data:`MAX_ANSWER_BYTES`, and parse its JSON."""
    raw = bytearray()
    for chunk in response.iter_content(chunk_size=16 * 1024):
        raw += chunk
        if len(raw) > MAX_ANSWER_BYTES:
            raise ServiceError(
                f"the service's answer (HTTP {response.status_code}) is larger than {MAX_ANSWER_BYTES} bytes; "
                "it was not read further",
                status=response.status_code,
            )
    try:
        body: Any = json.loads(raw.decode("utf-8"))
    except (ValueError, RecursionError):
        body = None
    message = server_message(body)
    if not message and body is None:
        kind = response.headers.get("Content-Type", "no content type")
        text = redact(" ".join(raw.decode("utf-8", errors="replace").split()))
        message = f"{kind}: {text[:_SNIPPET]!r}"
    detail = redact(f"HTTP {response.status_code}" + (f": {message}" if message else ""))[: _SNIPPET * 2]
    return Answer(response.status_code, body, detail, retry_after_seconds(response.headers.get("Retry-After")))


def credential_refused(answer: Answer) -> bool:
    """HTTP 401 or 403, or a ``success: false`` whose code or message refuses the credential."""
    if answer.status in (401, 403):
        return True
    body = answer.body
    if not isinstance(body, Mapping) or body.get("success") is not False:
        return False
    message, code = _message_and_code(body)
    return code in ("401", "403") or bool(_CREDENTIAL_WORDS.search(f"{code} {message}"))


def server_message(body: Any) -> str:
    """The service's own words: ``error.msg`` and ``error.code`` (V3), or a
    flat ``msg``, ``message``, ``code``, as text, never as a Python dict."""
    if not isinstance(body, Mapping):
        return ""
    message, code = _message_and_code(body)
    if message and code and code not in message:
        return f"{message} (code {code})"
    if message or code:
        return message or f"code {code}"
    data = body.get("data")
    return server_message(data) if isinstance(data, Mapping) else ""


def _message_and_code(body: Mapping[str, Any]) -> Tuple[str, str]:
    error = body.get("error")
    if isinstance(error, Mapping):
        return _text(error.get("msg") or error.get("message")), _text(error.get("code"))
    return _text(body.get("msg") or body.get("message") or error), _text(body.get("code"))


def _text(value: Any) -> str:
    if value is None or isinstance(value, (Mapping, list)):
        return ""
    return " ".join(str(value).split())


def refuse_errors(answer: Answer, what: str, credential: str, hint: str) -> None:
    """Raise for the answers no endpoint can use: a refused ``credential`` (its
    kind; ``hint`` says what to do), a rate limit, a server error, or no JSON."""
    status, detail = answer.status, answer.detail
    if credential_refused(answer):
        raise AuthenticationError(f"{what}: the service refused the {credential} ({detail}). {hint}")
    if status == 429:
        raise RateLimited(
            f"{what}: rate limited by the service ({detail}); wait a while and try again",
            status=status,
            retry_after=answer.retry_after,
        )
    if status >= 500:
        raise ServiceError(f"{what}: the service failed ({detail}); try again later", status=status)
    if answer.body is None:
        raise ServiceError(f"{what}: the service did not answer JSON ({detail})", status=status)


def uncertain(what: str, reason: str) -> ExportUncertain:
    """The export went out, and nothing says whether the service took it."""
    return ExportUncertain(
        f"{what}: {reason}. The service may have accepted it and may charge for it: "
        "check your AI STUDIOS dashboard before exporting it again."
    )


def project_key_of(answer: Answer, what: str, credential: str, hint: str) -> str:
    """The project key an export's answer carries; or the error it is."""
    status = answer.status
    if 200 <= status < 300 and answer.body is None:
        raise uncertain(what, f"the service answered HTTP {status} without JSON")
    if status >= 500:
        # The service (or a gateway in front of it, which says 503 for an
        # upstream reset) may have taken the job before failing.
        raise uncertain(what, f"the service answered HTTP {status}")
    refuse_errors(answer, what, credential, hint)
    if status >= 400 or not answer.ok:
        raise ExportRejected(f"{what}: the service rejected it ({answer.detail})")
    for field in _KEY_FIELDS:
        key = answer.data.get(field)
        if isinstance(key, (str, int)) and not isinstance(key, bool) and str(key).strip():
            return str(key).strip()
    raise uncertain(what, f"the answer carries no project key ({answer.detail})")


def progress_of(answer: Answer, what: str, redact: Redact) -> Progress:
    """The progress a poll's answer carries; :class:`RenderFailed` when it
    says the render failed, or does not say it is going well."""
    if answer.status == 404:
        raise RenderFailed(f"{what}: the service does not know this project ({answer.detail})")
    if answer.status >= 400:
        raise ServiceError(f"{what}: unexpected answer ({answer.detail})", status=answer.status)
    body = answer.body if isinstance(answer.body, Mapping) else {}
    data = body.get("data")
    if body.get("success") is not True or not isinstance(data, Mapping):
        # Anything but an object that says success: true is not a success,
        # least of all a "false" written as a string beside an address.
        reason = "the render failed" if body.get("success") is False else "the service did not report success"
        raise RenderFailed(f"{what}: {reason} ({answer.detail})")
    state = _text(data.get("state")) or None  # V3's, beside the progress (its values are not documented)
    if state is not None and _FAILED_STATE.search(state):
        raise RenderFailed(f"{what}: the service says the render is {redact(state)[:_SNIPPET]!r} ({answer.detail})")
    raw = data.get("progress", 0)
    try:
        progress = 0.0 if raw is None else float(raw)
    except (TypeError, ValueError, OverflowError):
        progress = math.nan
    if isinstance(raw, bool) or not math.isfinite(progress):
        raise ServiceError(f"{what}: progress is not a number: {redact(str(raw))[:_SNIPPET]!r}")
    address = next((data[field] for field in _ADDRESS_FIELDS if data.get(field) not in (None, "")), None)
    if address is not None and not is_http_url(address):
        raise ServiceError(f"{what}: the video address is not an http(s) URL: {redact(str(address))[:_SNIPPET]!r}")
    return Progress(progress, None if address is None else str(address), state)
