"""The API's logic: how renders go (:class:`RenderPlan`), the model
catalogue, V3 access tokens, exports and their progress, and the shape of
every refusal. Transport-free: each call returns the
:class:`~.answer.Answer` the API host sends."""

from __future__ import annotations

import base64
import copy
import hmac
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any, Callable, Deque, Dict, List, Optional

from .answer import Answer, json_answer
from .settings import Settings
from .storage import Storage

_REQUIRED = ("language", "text", "model", "clothes")
_MODEL_ID = re.compile(r"^M\d{9}$")
_CLOTHES_ID = re.compile(r"^BG\d{8}$")
# The legacy reference's own sample sends these; the service presumably takes them.
_DOCS_SAMPLE_IDS = {("ysy", "1")}
# V3 states: what a render shows while it runs and when done, per Settings.progress_state.
_STATES = {
    "exported": ("exporting", "exported"),
    "complete": ("exporting", "Complete"),
    "other": ("processing", "finished"),
}


#: The V3 model catalogue (``GET /api/odin/v3/model``), in its documented shape: the Korean
#: chroma-key tutorial's model and clothes, the official V3 Python sample's, and a made-up one.
DEFAULT_CATALOGUE: List[Dict[str, Any]] = [
    {
        "id": model,
        "label": {"ko": ko, "en": en},
        "thumbnail": f"https://cdn.aistudios.com/models/{model}.png",
        "clothes": [
            {"id": item, "label": {"ko": ko, "en": en}, "thumbnail": f"https://cdn.aistudios.com/clothes/{item}.png"}
            for item, ko, en in clothes
        ],
    }
    for model, ko, en, clothes in [
        ("M000004017", "사라", "Sarah", [("BG00006160", "정장", "Suit"), ("BG00001004", "캐주얼", "Casual")]),
        ("M000045058", "다니엘", "Daniel", [("BG00002320", "셔츠", "Shirt")]),
        ("M000120931", "지수", "Jisoo", [("BG00007715", "블라우스", "Blouse"), ("BG00007716", "니트", "Knit")]),
    ]
]


@dataclass
class RenderPlan:
    """How the simulator renders one export.

    :ivar seconds: how long the render takes; progress rises linearly.
    :ivar address_after_polls: polls at 100 % that still show no address
        (the tutorial keeps polling through them); ``None``: never any.
    :ivar url_field: the legacy flow's field naming the address; ``None``
        for ``url`` (V3's is always ``downloadUrl``).
    :ivar progress_as_string: send progress as ``"42.0"`` rather than ``42.0``.
    :ivar fail_at: progress at which the render fails for good: this poll and
        every later one answer ``success: false``.
    :ivar fail_state: with ``fail_at``, the failure is told in V3's
        ``state`` (for example ``"failed"``) beside ``success: true``, no
        address, instead of ``success: false``.
    :ivar finish: ``False`` for a render stuck below 100 forever.
    :ivar filename: the last segment of the address's path, as sent (already
        percent-encoded where needed); default ``<key>.mp4``.
    :ivar size: the video's size in bytes; default the clip plus a little.
        Generated on demand: a 1 GiB video costs no memory.
    :ivar reject: refuse the export with this message (``success: false``).
    :ivar curve: how progress rises: ``"linear"``, ``"slow-start"`` (slow,
        then fast) or ``"uneven"`` (a leap, a long crawl, a final rush).
    :ivar link_ttl: seconds a signed video address stays valid; each progress
        answer signs a fresh one. ``None``: plain, unsigned addresses.
    :ivar flaky_polls: this many polls, from poll number ``flaky_from``
        (1 = the first), answer ``success: false`` with HTTP 200; then the
        render carries on as if nothing happened (a transient hiccup).
    :ivar flaky_from: the first flaky poll, counted from 1.
    """

    seconds: float = 1.0
    address_after_polls: Optional[int] = 0
    url_field: Optional[str] = None
    progress_as_string: bool = False
    fail_at: Optional[float] = None
    fail_state: Optional[str] = None
    finish: bool = True
    filename: Optional[str] = None
    size: Optional[int] = None
    reject: Optional[str] = None
    curve: str = "linear"
    link_ttl: Optional[float] = None
    flaky_polls: int = 0
    flaky_from: int = 1


CURVES: Dict[str, Callable[[float], float]] = {
    "linear": lambda x: x,
    "slow-start": lambda x: x * x,
    # Through (0, 0), (0.2, 0.6), (0.8, 0.9), (1, 1).
    "uneven": lambda x: 3 * x if x < 0.2 else 0.6 + (x - 0.2) * 0.5 if x < 0.8 else 0.9 + (x - 0.8) * 0.5,
}


@dataclass(frozen=True)
class Export:
    """An export the simulator accepted."""

    key: str
    api: str
    body: Dict[str, Any]
    accepted: float = 0.0  # time.monotonic() when accepted
    render_seconds: float = 0.0  # as planned; the render ends at accepted + render_seconds


@dataclass
class Project:
    """A project the service holds, and what its polls have seen."""

    key: str
    api: str
    body: Dict[str, Any]
    plan: RenderPlan
    created: float
    polls: int = 0
    polls_at_100: int = 0


def progress_at(plan: RenderPlan, elapsed: float) -> float:
    """The progress (0 to 100, one decimal) a render shows ``elapsed`` seconds in."""
    if not plan.finish:
        return min(99.0, round(elapsed * 10, 1))
    if plan.seconds <= 0 or elapsed >= plan.seconds:
        return 100.0
    return min(99.9, round(100 * CURVES[plan.curve](elapsed / plan.seconds), 1))


def _base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _segment(value: Dict[str, Any]) -> str:
    return _base64url(json.dumps(value, separators=(",", ":")).encode("utf-8"))


class Service:
    """The service behind the API host."""

    def __init__(
        self, settings: Settings, storage: Storage, catalogue: Optional[List[Dict[str, Any]]], default_plan: RenderPlan
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.catalogue = copy.deepcopy(DEFAULT_CATALOGUE if catalogue is None else catalogue)
        self.default_plan = default_plan
        self.lock = threading.Lock()
        self.projects: Dict[str, Project] = {}
        self.exports: List[Export] = []
        self.tokens: Dict[str, float] = {}  # every V3 token minted, in order: when it expires
        self._plans: Deque[RenderPlan] = deque()

    def plan(self, plans: List[RenderPlan], changes: Dict[str, Any]) -> None:
        with self.lock:
            self._plans.extend(plans)
            self.default_plan = replace(self.default_plan, **changes)

    def refusal(self, api: str, code: str, msg: str, status: int = 200) -> Answer:
        """A refusal in the shape ``Settings.error_shape`` gives ``api``."""
        shape = self.settings.error_shape
        if shape == "auto":
            shape = "flat" if api == "legacy" else "nested"
        if shape == "flat":
            return json_answer(status, {"success": False, "msg": msg})
        error = {"code": code, "msg": msg} if code else {"msg": msg}
        return json_answer(status, {"success": False, "error": error})

    def credential_ok(self, api: str, credential: str) -> str:
        """``"valid"``, ``"expired"`` or ``"unknown"``: the static token works
        everywhere; a minted one on V3 only."""
        if hmac.compare_digest(credential.encode("utf-8", "replace"), self.settings.token.encode("utf-8", "replace")):
            return "valid"
        with self.lock:
            end = self.tokens.get(credential) if api == "v3" else None
        if end is None:
            return "unknown"
        return "valid" if time.time() < end else "expired"

    def authorise(self, api: str, credential: Optional[str]) -> Optional[Answer]:
        """The refusal for a request carrying ``credential``; None if it may pass."""
        verdict = self.credential_ok(api, credential or "")
        if verdict == "valid":
            return None
        if verdict == "expired":
            return self.credential_refusal(api, "TOKEN_EXPIRED", "token expired", self.settings.expired_token)
        word = "API key" if api == "legacy" else "token"
        return self.credential_refusal(api, "UNAUTHORIZED", f"Unauthorized: invalid {word}")

    def credential_refusal(self, api: str, code: str, msg: str, status: Optional[str] = None) -> Answer:
        """A refused credential, in the words and status the knobs give."""
        http = 401 if (status or self.settings.bad_credentials) == "401" else 200
        words = self.settings.credential_words
        if words == "numeric":
            code, msg = "401", "Unauthorized"
        elif words == "message":
            what = "appId or userKey" if code.startswith("INVALID_") else "API key" if api == "legacy" else "token"
            code, msg = "", f"Invalid {what}" if code != "TOKEN_EXPIRED" else "Access token has expired"
        return self.refusal(api, code, msg, http)

    def is_authenticated(self, credential: Optional[str]) -> Answer:
        return json_answer(200, {"isAuthenticated": self.credential_ok("v3", credential or "") == "valid"})

    def mint(self, body: bytes) -> Answer:
        """``POST /api/odin/v3/auth/token``: a token for the right appId and
        userKey. The message is the same for either mistake; the code says
        which (``INVALID_APP_ID`` or ``INVALID_USER_KEY``).

        A token is an HS256 JWT whose payload holds ``appId``, ``iat`` (integer
        seconds), ``exp`` (``time.time()`` plus the lifetime, rounded to
        milliseconds) and a random ``jti``; an opaque one (the docs never
        promise a JWT) is a random string. Any is good until it expires."""
        payload = _json(body)
        fields = payload if isinstance(payload, dict) else {}
        if fields.get("appId") != self.settings.app_id:
            return self.credential_refusal("v3", "INVALID_APP_ID", "invalid appId or userKey")
        if fields.get("userKey") != self.settings.user_key:
            return self.credential_refusal("v3", "INVALID_USER_KEY", "invalid appId or userKey")
        now = time.time()
        if self.settings.opaque_tokens:
            token, end = secrets.token_urlsafe(32), now + self.settings.token_ttl
        else:
            end = round(now + self.settings.token_ttl, 3)
            claims = {"appId": self.settings.app_id, "iat": int(now), "exp": end, "jti": secrets.token_hex(8)}
            # The signature is random: only the service judges its tokens, and it remembers them.
            header = _segment({"alg": "HS256", "typ": "JWT"})
            token = f"{header}.{_segment(claims)}.{_base64url(secrets.token_bytes(32))}"
        with self.lock:
            self.tokens[token] = end
        return json_answer(200, {"success": True, "data": {"token": token}})

    def catalogue_answer(self, page: str) -> Answer:
        """``GET /api/odin/v3/model`` (``page="old"``: models with clothes,
        listed up to 1.4.x) or ``/api/odin/v3/dropdown/models``
        (``"dropdown"``: ``{id, label, avatarType}``, no clothes)."""
        if self.settings.catalogue_pages not in ("both", page):
            return self.refusal("v3", "NOT_FOUND", "not found", 404)
        if page == "old":
            listed: Any = {"models": self.catalogue}
        else:
            listed = [
                {"id": m.get("id"), "label": (m.get("label") or {}).get("en", ""), "avatarType": "AI_HUMAN"}
                for m in self.catalogue
            ]
        return json_answer(200, {"success": True, "data": listed} if self.settings.catalogue_envelope else listed)

    def export(self, api: str, body: bytes) -> Answer:
        payload = _json(body)
        if payload is None:
            return self.refusal(api, "INVALID_PARAMETER", "request body is not JSON", 400)
        problem = self._invalid(api, payload)
        if problem is not None:
            return self.refusal(api, *problem)
        with self.lock:
            plan = self._plans.popleft() if self._plans else self.default_plan
            if plan.reject:
                return self.refusal(api, "EXPORT_REJECTED", plan.reject)
            key = secrets.token_hex(12)
            now = time.monotonic()
            self.projects[key] = Project(key, api, dict(payload), plan, now)
            self.exports.append(Export(key, api, dict(payload), now, plan.seconds))
        self.storage.store(key, plan.size, signed=plan.link_ttl is not None)
        return json_answer(200, {"success": True, "data": ({"key": key} if api == "legacy" else {"projectId": key})})

    def _invalid(self, api: str, payload: Any) -> Optional[tuple[str, str]]:
        """(code, message) of what is wrong with an export's body, or None."""
        if not isinstance(payload, dict):
            return "INVALID_PARAMETER", "request body must be a JSON object"
        for name in _REQUIRED:
            if not isinstance(payload.get(name), str) or not payload[name].strip():
                return "INVALID_PARAMETER", f"{name} is required"
        model, clothes = payload["model"], payload["clothes"]
        if api == "v3" and self.settings.check_catalogue:
            found = [m for m in self.catalogue if m.get("id") == model]
            if not found:
                return "MODEL_NOT_FOUND", f"model not found: {model}"
            if clothes not in {str(item.get("id")) for item in found[0].get("clothes", [])}:
                return "CLOTHES_NOT_FOUND", f"clothes not found: {clothes} (model {model})"
            return None
        if (model, clothes) in _DOCS_SAMPLE_IDS:
            return None
        if not _MODEL_ID.match(model):
            return "MODEL_NOT_FOUND", f"model not found: {model}"
        if not _CLOTHES_ID.match(clothes):
            return "CLOTHES_NOT_FOUND", f"clothes not found: {clothes}"
        return None

    def project_list(self) -> Answer:
        """``GET /api/odin/v3/editor/project``: the account's V3 projects,
        ``{id, name, state, download_url}`` (the envelope as elsewhere)."""
        listed = []
        with self.lock:
            projects = [p for p in self.projects.values() if p.api == "v3"]
            now = time.monotonic()
            for project in projects:
                done = progress_at(project.plan, now - project.created) >= 100 and not self._draft(project)
                text = str(project.body.get("text", ""))
                name = {"text": text, "title": text[:20] + ("..." if len(text) > 20 else ""), "none": ""}
                entry = {"id": project.key, "name": name[self.settings.project_name]}
                entry["state"] = "exported" if done else "exporting"
                if done:
                    entry["download_url"] = self.storage.address(project.key, f"{project.key}.mp4", None)
                listed.append(entry)
        return json_answer(200, {"success": True, "data": listed})

    def address_field(self, api: str, plan: RenderPlan) -> str:
        return "downloadUrl" if api == "v3" else plan.url_field or "url"

    def progress(self, api: str, key: str) -> Answer:
        """``GET .../editor/progress/<key>``: O(1) whatever the number of projects."""
        with self.lock:
            project = self.projects.get(key)
            if project is None or project.api != api:
                return self.refusal(api, "PROJECT_NOT_FOUND", "project not found")
            project.polls += 1
            plan = project.plan
            if plan.flaky_from <= project.polls < plan.flaky_from + plan.flaky_polls:
                return self.refusal(api, "TEMPORARY_ERROR", "temporary error, please try again")
            progress = progress_at(plan, time.monotonic() - project.created)
            if self._draft(project):
                return json_answer(200, {"success": True, "data": {"progress": 0, "state": "draft"}})
            if plan.fail_at is not None and progress >= plan.fail_at:
                if plan.fail_state is not None:  # a failure said in the state, beside success: true
                    failed = {"progress": plan.fail_at, "state": plan.fail_state}
                    return json_answer(200, {"success": True, "data": failed})
                return self.refusal(api, "RENDER_FAILED", "render failed: the avatar could not be synthesised")
            data: Dict[str, Any] = {"progress": str(progress) if plan.progress_as_string else progress}
            ready = False
            if progress >= 100:
                project.polls_at_100 += 1
                ready = plan.address_after_polls is not None and project.polls_at_100 > plan.address_after_polls
        if ready:
            name = plan.filename if plan.filename is not None else f"{key}.mp4"
            data[self.address_field(api, plan)] = self.storage.address(key, name, plan.link_ttl)
        states = _STATES.get(self.settings.progress_state)
        if api == "v3" and states is not None:
            data["state"] = states[1] if ready else states[0]
        return json_answer(200, {"success": True, "data": data})

    def _draft(self, project: Project) -> bool:
        """A V3 project exported without ``isExport: true``, under the strict reading."""
        return project.api == "v3" and self.settings.is_export == "strict" and project.body.get("isExport") is not True

    def max_in_flight(self) -> int:
        """The most renders running at one moment (acceptance to end)."""
        edges = []
        with self.lock:
            for p in self.projects.values():
                share = 1.0 if p.plan.fail_at is None else p.plan.fail_at / 100
                end = p.created + p.plan.seconds * share if p.plan.finish else float("inf")  # finished or failed
                edges += [(p.created, 1), (end, -1)]
        running = peak = 0
        for _, step in sorted(edges):
            running += step
            peak = max(peak, running)
        return peak


def _json(body: bytes) -> Any:
    """The parsed body, or None when it is not JSON."""
    try:
        return json.loads(body.decode("utf-8"))
    except ValueError:
        return None
