"""Reading the service's answers: their size, whether they say success, and
where the project key, the progress, the video's address, the service's own
message and V3's model catalogue stand in them. The docs name these
differently from page to page (``url``, ``videoUrl``, ``download_url``...; a
flat ``msg`` or a nested ``error.msg``), and a failure may come as HTTP 200
with ``success: false``: each spelling is accepted, nothing else is trusted.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, NoReturn, Optional, Sequence, Tuple

import requests

from ._http import retry_after_seconds
from ._jobs import Job, is_http_url
from ._reports import AuthenticationError, ExportUncertain, InvalidJob, RateLimited, RenderFailed, ServiceError

MAX_ANSWER_BYTES = 1024 * 1024  # an API answer is a few hundred bytes: past this it is refused unread
_SNIPPET = 200

# A credential refused with HTTP 200 and success: false (no page lists the codes) speaks of one.
_CREDENTIAL_WORDS = re.compile(r"token|auth|credential|jwt|app.?id|user.?key|api.?key|forbidden|access.?denied", re.I)
_FAILED_STATE = re.compile(r"fail|error|cancel", re.I)  # a V3 state that says the render failed (none documented)

_KEY_FIELDS = ("key", "projectId", "project_id")
_ADDRESS_FIELDS = ("url", "videoUrl", "downloadUrl", "download_url")

Redact = Callable[[str], str]


def redactor(secrets: Iterable[str]) -> Redact:
    """A function that blanks every one of ``secrets`` out of a text. One shorter than 8 characters
    (a typo, a test value) only where it stands alone, not to shred every word."""
    hidden = sorted({s for s in secrets if s}, key=len, reverse=True)  # the longest first
    alone = r"(?<![0-9A-Za-z]){}(?![0-9A-Za-z])"
    pattern = "|".join(re.escape(s) if len(s) >= 8 else alone.format(re.escape(s)) for s in hidden)
    return lambda text: re.sub(pattern, "<credential>", text) if pattern else text


@dataclass(frozen=True)
class Answer:
    """One answer of the API host: its status, its JSON (``None`` if not JSON), a redacted description."""

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
    """One progress answer: percent, the video's address once there is one, and V3's state, if any."""

    progress: float
    address: Optional[str] = None
    state: Optional[str] = None

    @property
    def done(self) -> bool:
        """Progress at 100 (or V3's state ``exported``, the docs' word for ready) *and* an address."""
        ready = self.progress >= 100 or (self.state or "").lower() == "exported"
        return ready and bool(self.address)


def read_answer(response: requests.Response, redact: Redact) -> Answer:
    """Read a streamed answer, at most :data:`MAX_ANSWER_BYTES`, and parse its JSON."""
    raw = bytearray()
    for chunk in response.iter_content(chunk_size=16 * 1024):
        raw += chunk
        if len(raw) > MAX_ANSWER_BYTES:
            message = f"the service's answer (HTTP {response.status_code}) is larger than {MAX_ANSWER_BYTES} bytes"
            raise ServiceError(message, status=response.status_code)
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
    if message or code:
        return f"{message} (code {code})" if message and code and code not in message else message or f"code {code}"
    data = body.get("data")
    return server_message(data) if isinstance(data, Mapping) else ""


def _message_and_code(body: Mapping[str, Any]) -> Tuple[str, str]:
    error = body.get("error")
    if isinstance(error, Mapping):
        return _text(error.get("msg") or error.get("message")), _text(error.get("code"))
    return _text(body.get("msg") or body.get("message") or error), _text(body.get("code"))


def _text(value: Any) -> str:
    return "" if value is None or isinstance(value, (Mapping, list)) else " ".join(str(value).split())


def refuse_errors(answer: Answer, what: str, credential: str, hint: str) -> None:
    """Raise for the answers no endpoint can use: a refused ``credential`` (its
    kind; ``hint`` says what to do), a rate limit, a server error, or no JSON."""
    status, detail = answer.status, answer.detail
    if credential_refused(answer):
        raise AuthenticationError(f"{what}: the service refused the {credential} ({detail}). {hint}")
    if status == 429:
        raise RateLimited(f"{what}: rate limited by the service ({detail})", retry_after=answer.retry_after)
    if status >= 500:
        raise ServiceError(f"{what}: the service failed ({detail}); try again later", status=status)
    if answer.body is None:
        raise ServiceError(f"{what}: the service did not answer JSON ({detail})", status=status)


def uncertain(what: str, reason: str) -> ExportUncertain:
    """The export went out, and nothing says whether the service took it."""
    advice = "The service may have accepted it and may charge for it: check your AI STUDIOS dashboard"
    return ExportUncertain(f"{what}: {reason}. {advice} before exporting it again.")


def project_key(answer: Answer) -> Optional[str]:
    """The project key an export's answer carries, if any."""
    for field in _KEY_FIELDS:
        key = answer.data.get(field)
        if isinstance(key, (str, int)) and not isinstance(key, bool) and str(key).strip():
            return str(key).strip()
    return None


def progress_of(answer: Answer, what: str, redact: Redact) -> Progress:
    """The progress a poll's answer carries; :class:`RenderFailed` when it
    says the render failed, or does not say it is going well."""
    if answer.status == 404:
        raise RenderFailed(f"{what}: the service does not know this project ({answer.detail})")
    if answer.status >= 400:
        raise ServiceError(f"{what}: unexpected answer ({answer.detail})", status=answer.status)
    body = answer.body if isinstance(answer.body, Mapping) else {}
    data = body.get("data")
    if body.get("success") is not True or not isinstance(data, Mapping):  # a "false" string is no success either
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


@dataclass(frozen=True)
class Clothes:
    """Clothes a model can wear: its ID for a job's ``clothes``, and its
    names by language (``"ko"``, ``"en"``)."""

    id: str
    names: Dict[str, str]


@dataclass(frozen=True)
class Model:
    """An AI model: its ID for a job's ``model``, its names by language
    (``"ko"``, ``"en"``; a page that gives one plain label: ``"label"``),
    and the clothes it can wear (``None`` when the page does not say)."""

    id: str
    names: Dict[str, str]
    clothes: Optional[Tuple[Clothes, ...]]


def parse_catalogue(answer: Answer, what: str) -> List[Model]:
    """The models of a catalogue answer, a list bare, under ``models`` or in the usual
    ``{"success": true, "data": ...}``; :class:`ServiceError` for an answer that holds none."""
    body = answer.body
    data = body.get("data", body) if isinstance(body, Mapping) else body
    models = data.get("models") if isinstance(data, Mapping) else data
    result = []
    for model in models if isinstance(models, list) else []:
        if _has_id(model):  # one odd entry does not hide the others
            listed, clothes = model.get("clothes"), None
            if isinstance(listed, list):
                clothes = tuple(Clothes(item["id"], _names(item)) for item in listed if _has_id(item))
            result.append(Model(model["id"], _names(model), clothes))
    if answer.status >= 400 or not (answer.ok or "success" not in body) or not result:
        raise ServiceError(f"{what}: no models in it ({answer.detail})", status=answer.status)
    return result


def _has_id(entry: Any) -> bool:
    return isinstance(entry, Mapping) and isinstance(entry.get("id"), str)


def _names(entry: Mapping[str, Any]) -> Dict[str, str]:
    label = entry.get("label")
    if isinstance(label, str) and label.strip():
        return {"label": label.strip()}
    items = label.items() if isinstance(label, Mapping) else []
    return {str(language): str(name) for language, name in items if isinstance(name, (str, int, float))}


def check_jobs_against(jobs: Sequence[Job], models: Sequence[Model]) -> None:
    """Every job's ``model`` in the catalogue, and its ``clothes`` among that model's where it lists
    them (it only catches typos); else :class:`InvalidJob` with the nearest ID."""
    by_id = {model.id: model for model in models}
    for job in jobs:
        model = by_id.get(job.body["model"].strip())
        if model is None:
            _refuse(job, "model", list(by_id), "model")
        elif model.clothes is not None and job.body["clothes"].strip() not in [c.id for c in model.clothes]:
            _refuse(job, "clothes", [c.id for c in model.clothes], f"clothes of model {model.id}")


def _refuse(job: Job, field: str, known: List[str], what: str) -> NoReturn:
    import difflib  # only for a mistake: not at every start-up

    value = job.body[field]
    close = difflib.get_close_matches(value.strip(), known, n=1, cutoff=0.5)
    shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
    hint = f"did you mean {close[0]!r}?" if close else f"known: {shown or 'none'}"
    message = f"{value!r} is not in the service's model catalogue as one of the {what} ({hint})"
    raise InvalidJob(f"{message}; see `aistudios-chromakey models`", position=job.position, field=field)
