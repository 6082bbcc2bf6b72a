"""The service's two APIs (what ``api=`` names), and how a service address
is written. ``legacy`` is the tutorial's (``/api/odin/simple/video``, the
project key in ``data.key``); ``v3`` is today's docs' (``data.projectId``),
whose calls carry an access token minted from an AppId and a UserKey.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Optional
from urllib.parse import urlsplit

BASE_URL_ENV = "AISTUDIOS_BASE_URL"

# What an optional field must be, by kind; _jobs.py knows how to check each.
TEXT, NUMBER, URL, BOOLEAN, RESOLUTION = "text", "number", "url", "boolean", "resolution"


@dataclass(frozen=True)
class Api:
    """One of the service's APIs."""

    name: str  # "legacy" or "v3"
    host: str  # the documented scheme://host
    export_path: str  # where an export request is POSTed
    progress_path: str  # followed by the project key
    optional: Mapping[str, str]  # the optional fields of its export request, by kind
    mints_tokens: bool = False  # its calls use an access token minted from an AppId and a UserKey (V3)
    defaults: Mapping[str, Any] = field(default_factory=dict)  # sent with every export unless the job sets them
    hosts: Mapping[str, str] = field(default_factory=dict)  # other documented hosts, by the base_url naming them


LEGACY = Api(
    "legacy",
    # The legacy API moved from https://aistudios.com, which the seed tutorial still shows.
    "https://v2.aistudios.com",
    "/api/odin/simple/video",
    "/api/odin/editor/progress/",
    {"locale": TEXT, "uppercut": NUMBER, "webhook": URL},
)
V3 = Api(
    "v3",
    "https://app.aistudios.com",
    "/api/odin/v3/simple/video",
    "/api/odin/v3/editor/progress/",
    {"isExport": BOOLEAN, "workspaceId": TEXT, "resolution": RESOLUTION, "webhookUrl": URL},
    mints_tokens=True,
    # isExport defaults to false ("Expose to the project dashboard if false"): without it a
    # project may stay a draft that never renders, so every documented sample sends true.
    defaults={"isExport": True},
    # getting-started: "China service domain - https://app.aistudios.cn".
    hosts={"cn": "https://app.aistudios.cn"},
)
APIS: Mapping[str, Api] = {"legacy": LEGACY, "v3": V3}

# V3's other pages.
TOKEN_PATH = "/api/odin/v3/auth/token"  # an access token minted from an AppId and a UserKey
AUTH_PATH = "/api/odin/v3/auth"  # whether a token is accepted: {"isAuthenticated": bool}
MODEL_PATH = "/api/odin/v3/model"  # the model catalogue with clothes (documented up to 1.4.x)
PROJECTS_PATH = "/api/odin/v3/editor/project"  # the account's exported projects: id, name, state, download_url
DROPDOWN_PATH = "/api/odin/v3/dropdown/models"  # today's model list (1.5.x on): {id, label, avatarType}, no clothes

_DEFAULT_PORTS = {"http": 80, "https": 443}


def api_named(api: str) -> Api:
    """The API called ``api``; a ``ValueError`` for anything else."""
    try:
        return APIS[api]
    except (KeyError, TypeError):
        raise ValueError(f"api must be 'legacy' or 'v3', not {api!r}") from None


def service_address(api: Api, base_url: Optional[str]) -> str:
    """The service's address in one canonical spelling: the argument, else
    ``$AISTUDIOS_BASE_URL`` (to aim a script at the simulator unchanged),
    else the API's documented host; a name of :attr:`Api.hosts` (``"cn"``)
    stands for that host. Case, a default port, a trailing dot and slash are
    dropped: the batch journal's fingerprints need one address per service.
    """
    if base_url is None:
        base_url = os.environ.get(BASE_URL_ENV) or api.host
    name = base_url.strip().lower() if isinstance(base_url, str) else None
    if name in named_hosts():
        if name not in api.hosts:
            raise ValueError(f"base_url {name!r} names a host of another API than {api.name!r}")
        base_url = api.hosts[name]
    try:
        parts = urlsplit(base_url.strip()) if isinstance(base_url, str) else None
        port = parts.port if parts else None
    except ValueError:  # a port that is not a number, an unclosed bracket
        parts = None
    if (
        parts is None
        or parts.scheme.lower() not in _DEFAULT_PORTS
        or not parts.hostname
        or parts.username is not None
        or parts.path.strip("/")
        or parts.query
        or parts.fragment
    ):
        names = " or ".join(repr(name) for name in named_hosts())
        raise ValueError(
            f"base_url (or ${BASE_URL_ENV}) must look like 'https://host[:port]' (or be {names}), not {base_url!r}"
        )
    scheme = parts.scheme.lower()
    host = _canonical_host(parts.hostname)
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}"


def named_hosts() -> Mapping[str, str]:
    """Every host that has a name, over both flows."""
    return {name: host for api in APIS.values() for name, host in api.hosts.items()}


def _canonical_host(hostname: str) -> str:
    host = hostname.lower().rstrip(".")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        return str(mapped) if mapped else f"[{address.compressed}]"
    return str(address)
