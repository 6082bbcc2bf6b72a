"""Which route a request is for, and the answer it gets, faults included.

The API host serves both flows of ``API.md``; the download host and its
mirror serve videos; the old host only points at the new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import Message
from typing import Optional
from urllib.parse import urlsplit

from .answer import Answer, empty_answer
from .faults import REPLACING, Fault, FaultBook, accepted_then_status, echo_key, replacement, reshape
from .service import Service
from .settings import Settings
from .storage import Storage

__all__ = ["EXPORT_PATHS", "PROGRESS_PREFIXES", "Request", "Router", "flow_of", "route_of"]

EXPORT_PATHS = {"/api/odin/simple/video": "legacy", "/api/odin/v3/simple/video": "v3"}
PROGRESS_PREFIXES = {"/api/odin/editor/progress/": "legacy", "/api/odin/v3/editor/progress/": "v3"}
TOKEN_PATH = "/api/odin/v3/auth/token"
AUTH_PATH = "/api/odin/v3/auth"
MODEL_PATH = "/api/odin/v3/model"
DROPDOWN_PATH = "/api/odin/v3/dropdown/models"
PROJECTS_PATH = "/api/odin/v3/editor/project"


@dataclass
class Request:
    """A request as the routes see it."""

    server: str
    method: str
    target: str  # path and query, as sent
    headers: Message
    body: bytes

    @property
    def path(self) -> str:
        return urlsplit(self.target).path


def route_of(server: str, method: str, path: str) -> str:
    """The route name of a request (also the name faults are scripted by)."""
    if server == "old":
        return "moved"
    if server != "api":
        return "download"
    if method == "POST":
        return "export" if path in EXPORT_PATHS else "token" if path == TOKEN_PATH else "other"
    if method != "GET":
        return "other"
    if any(path.startswith(prefix) for prefix in PROGRESS_PREFIXES):
        return "progress"
    routes = {MODEL_PATH: "model", DROPDOWN_PATH: "dropdown", AUTH_PATH: "auth", PROJECTS_PATH: "projects"}
    return routes.get(path, "other")


def flow_of(path: str) -> str:
    return "v3" if path.startswith("/api/odin/v3/") else "legacy"


class Router:
    """Answers each request: the route's logic, reshaped by its fault."""

    def __init__(self, settings: Settings, service: Service, storage: Storage, faults: FaultBook) -> None:
        self.settings = settings
        self.service = service
        self.storage = storage
        self.faults = faults
        #: The API host's address, for the old host's redirects.
        self.api_url = ""

    def answer(self, request: Request, route: str) -> Answer:
        if route == "moved":
            # The old host processes nothing: it only says where the service went.
            return empty_answer(self.settings.old_host_status, {"Location": self.api_url + request.target})
        api = flow_of(request.path)
        if route == "other":
            return self.service.refusal(api, "NOT_FOUND", "not found", 404)
        credential = request.headers.get("Authorization")
        if route == "auth":
            return self.service.is_authenticated(credential)
        if route in ("export", "progress", "model", "dropdown", "projects"):
            refused = self.service.authorise(api, credential)
            if refused is not None:
                return refused
        fault = self.faults.take(route)
        if fault is None:
            return self._serve(route, api, request)
        if fault.kind in REPLACING:
            body = self.service.refusal(api, "SIMULATED", f"simulated HTTP {fault.status}").body
            return replacement(fault, route, b"".join(body), self.storage.clip)
        if fault.kind == "echo_key":
            field = self.service.address_field(api)
            return echo_key(fault, credential or "", field, self.storage.url)
        return self._reshaped(fault, route, api, request)

    def _reshaped(self, fault: Fault, route: str, api: str, request: Request) -> Answer:
        if fault.kind == "redirect":
            if self.storage.key_of(request.target) is None:
                return self._serve(route, api, request)
            return self.storage.redirect(request.target, fault.other_host)
        answer = self._serve(route, api, request)
        if fault.kind == "accept_then_status":
            return accepted_then_status(fault)
        return reshape(fault, answer)

    def _serve(self, route: str, api: str, request: Request) -> Answer:
        if route == "download":
            return self.storage.answer(
                request.target, request.headers.get("Range", ""), request.headers.get("If-Range")
            )
        if route == "export":
            return self.service.export(api, request.body)
        if route == "token":
            return self.service.mint(request.body)
        if route == "projects":
            return self.service.project_list()
        if route in ("model", "dropdown"):
            return self.service.catalogue_answer("old" if route == "model" else "dropdown")
        key = _after_prefix(request.path)
        return self.service.progress(api, key or "")


def _after_prefix(path: str) -> Optional[str]:
    for prefix in PROGRESS_PREFIXES:
        if path.startswith(prefix):
            return path[len(prefix) :]
    return None
