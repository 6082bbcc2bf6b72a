"""The API's logic: tokens, exports, renders and their progress, the model
catalogue, and the shape of every refusal. Transport-free: each call
returns the :class:`~.answer.Answer` the API host sends."""

from __future__ import annotations

import hmac
import json
import re
import secrets
import threading
import time
from collections import deque
from dataclasses import replace
from typing import Any, Deque, Dict, List, Optional

from .answer import Answer, json_answer
from .catalogue import clothes_of
from .plans import Export, Project, RenderPlan, progress_at
from .settings import Settings
from .storage import Storage
from .tokens import TokenIssuer

__all__ = ["Service"]

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


class Service:
    """The service behind the API host."""

    def __init__(
        self, settings: Settings, storage: Storage, catalogue: List[Dict[str, Any]], default_plan: RenderPlan
    ) -> None:
        self.settings = settings
        self.storage = storage
        self.catalogue = catalogue
        self.tokens = TokenIssuer()
        self.default_plan = default_plan
        self.lock = threading.Lock()
        self.projects: Dict[str, Project] = {}
        self.exports: List[Export] = []
        self._plans: Deque[RenderPlan] = deque()

    def plan(self, plans: List[RenderPlan], changes: Dict[str, Any]) -> None:
        with self.lock:
            self._plans.extend(plans)
            if changes:
                self.default_plan = replace(self.default_plan, **changes)

    # --- refusals and credentials -----------------------------------------------

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
        return self.tokens.check(credential) if api == "v3" else "unknown"

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
        which (``INVALID_APP_ID`` or ``INVALID_USER_KEY``)."""
        payload = _json(body)
        fields = payload if isinstance(payload, dict) else {}
        code = None
        if fields.get("appId") != self.settings.app_id:
            code = "INVALID_APP_ID"
        elif fields.get("userKey") != self.settings.user_key:
            code = "INVALID_USER_KEY"
        if code is not None:
            return self.credential_refusal("v3", code, "invalid appId or userKey")
        token = self.tokens.mint(self.settings.app_id, self.settings.token_ttl, self.settings.opaque_tokens)
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

    # --- exports --------------------------------------------------------------------

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
            known = clothes_of(self.catalogue, model)
            if known is None:
                return "MODEL_NOT_FOUND", f"model not found: {model}"
            if clothes not in known:
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
                entry = {"id": project.key, "name": name[self.settings.project_name],
                         "state": "exported" if done else "exporting"}  # fmt: skip
                if done:
                    entry["download_url"] = self.storage.address(project.key, f"{project.key}.mp4", None)
                listed.append(entry)
        return json_answer(200, {"success": True, "data": listed})

    # --- progress ---------------------------------------------------------------------

    def address_field(self, api: str, plan: Optional[RenderPlan] = None) -> str:
        plan = plan or self.default_plan
        if api == "legacy" and plan.url_field:
            return plan.url_field
        return "url" if api == "legacy" else "downloadUrl"

    def progress(self, api: str, key: str) -> Answer:
        """``GET .../editor/progress/<key>``: O(1) whatever the number of projects."""
        with self.lock:
            project = self.projects.get(key)
            if project is None or project.api != api:
                return self.refusal(api, "PROJECT_NOT_FOUND", "project not found")
            project.polls += 1
            if project.is_flaky_poll():
                return self.refusal(api, "TEMPORARY_ERROR", "temporary error, please try again")
            plan = project.plan
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
        with self.lock:
            edges = [(p.created, 1) for p in self.projects.values()]
            edges += [(p.render_end(), -1) for p in self.projects.values()]
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
