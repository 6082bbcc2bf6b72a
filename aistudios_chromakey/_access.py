"""How the client reaches the service: its two APIs (what ``api=`` names), its
address, and the credential: the tutorial's ``legacy`` API takes an API key, ``v3``
an access token minted from an AppId and a UserKey (again before it expires, or when
refused), or a ready one. No credential is ever logged, written to disk, or put in a message."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union
from urllib.parse import urlsplit

from ._reports import AuthenticationError

BASE_URL_ENV = "AISTUDIOS_BASE_URL"
API_KEY_ENV = "AISTUDIOS_API_KEY"
APP_ID_ENV = "AISTUDIOS_APP_ID"
USER_KEY_ENV = "AISTUDIOS_USER_KEY"
PathLike = Union[str, "os.PathLike[str]"]

TEXT, NUMBER, URL, BOOLEAN, RESOLUTION = "text", "number", "url", "boolean", "resolution"  # optional fields' kinds


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
    "https://v2.aistudios.com",  # moved from https://aistudios.com, which the seed tutorial still shows
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
    defaults={"isExport": True},  # the docs' default, false, may leave a draft that never renders; samples send true
    hosts={"cn": "https://app.aistudios.cn"},  # getting-started: "China service domain"
)
APIS: Mapping[str, Api] = {"legacy": LEGACY, "v3": V3}

TOKEN_PATH = "/api/odin/v3/auth/token"  # an access token minted from an AppId and a UserKey
AUTH_PATH = "/api/odin/v3/auth"  # whether a token is accepted: {"isAuthenticated": bool}
MODEL_PATH = "/api/odin/v3/model"  # the model catalogue with clothes (documented up to 1.4.x)
PROJECTS_PATH = "/api/odin/v3/editor/project"  # the account's exported projects: id, name, state, download_url
DROPDOWN_PATH = "/api/odin/v3/dropdown/models"  # today's model list (1.5.x on): {id, label, avatarType}, no clothes

TOKEN_LIFETIME = 86400.0  # the docs: "1 day (24 hours from the time of issuance)"
_EXPIRY_MARGIN = 60.0  # a token is minted anew this long before its "exp",
_AGE_MARGIN = 3600.0  # or before its day ends, without a readable "exp"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def api_named(api: str) -> Api:
    """The API called ``api``; a ``ValueError`` for anything else."""
    try:
        return APIS[api]
    except (KeyError, TypeError):
        raise ValueError(f"api must be 'legacy' or 'v3', not {api!r}") from None


def service_address(api: Api, base_url: Optional[str]) -> str:
    """The service's address in one spelling (the batch journal's fingerprints need one per service):
    the argument, else ``$AISTUDIOS_BASE_URL``, else the API's host; ``"cn"`` names V3's China host."""
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
    extra = parts and (parts.username is not None or parts.path.strip("/") or parts.query or parts.fragment)
    if parts is None or extra or parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        names = " or ".join(repr(name) for name in named_hosts())
        raise ValueError(
            f"base_url (or ${BASE_URL_ENV}) must look like 'https://host[:port]' (or be {names}), not {base_url!r}"
        )
    scheme = parts.scheme.lower()
    host = _canonical_host(parts.hostname)
    netloc = host if port in (None, _DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    return f"{scheme}://{netloc}"


def named_hosts() -> Mapping[str, str]:
    """Every host that has a name, over both APIs."""
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


def choose_api(api: Optional[str], token: Optional[str], app_id: Optional[str], user_key: Optional[str]) -> str:
    """``api`` when given, else the API the credentials (arguments, then the environment) belong to.
    Both kinds in the environment: :class:`AuthenticationError`, as a guess could export twice."""
    if api is not None:
        return api
    if token is not None or app_id is not None or user_key is not None:
        return "legacy" if app_id is None and user_key is None else "v3"
    v3 = bool(os.environ.get(APP_ID_ENV, "").strip() or os.environ.get(USER_KEY_ENV, "").strip())
    if v3 and os.environ.get(API_KEY_ENV, "").strip():
        raise AuthenticationError(
            f"both V3 credentials (${APP_ID_ENV}, ${USER_KEY_ENV}) and a legacy API key (${API_KEY_ENV}) are set: "
            "say which API to use with api='v3' or api='legacy' (--api v3 or --api legacy)"
        )
    return "v3" if v3 else "legacy"


class Credentials:
    """One client's credential from the arguments, else the environment: for V3 an AppId and a UserKey
    first, then a ready token; for the legacy API the API key. Checked lazily, after the jobs."""

    def __init__(self, api: Api, token: Optional[str], app_id: Optional[str], user_key: Optional[str]):
        self.api = api
        self._given = (token, app_id, user_key)
        self._token: Optional[str] = None
        self.minting: Optional[Dict[str, str]] = None  # the token request's body, for an AppId and a UserKey
        self.expires: Optional[float] = None  # the minted token's end; it is minted anew _margin before
        self._margin = 0.0

    @property
    def kind(self) -> str:
        """What the credential is, for messages."""
        return "AppId and UserKey" if self.mints else "access token" if self.api.mints_tokens else "API key"

    @property
    def mints(self) -> bool:
        """Whether tokens are minted from an AppId and a UserKey."""
        self.resolve()
        return self.minting is not None

    def resolve(self) -> None:
        """Find the credential; :class:`AuthenticationError` when there is none."""
        if self._token is not None or self.minting is not None:
            return  # found already
        token, app_id, user_key = self._given
        if token is None and app_id is None and user_key is None:
            app_id, user_key = os.environ.get(APP_ID_ENV) or None, os.environ.get(USER_KEY_ENV) or None
            if not (self.api.mints_tokens and app_id and user_key):
                app_id = user_key = None
                token = os.environ.get(API_KEY_ENV, "")
        if app_id is None and user_key is None:
            name = "access token (or AppId and UserKey)" if self.api.mints_tokens else "API key"
            self._token = _checked(token, name, API_KEY_ENV)
        elif not self.api.mints_tokens:
            raise AuthenticationError("app_id and user_key are V3 credentials: use api='v3'")
        else:
            self.minting = {
                "appId": _checked(app_id, "AppId", APP_ID_ENV),
                "userKey": _checked(user_key, "UserKey", USER_KEY_ENV),
            }

    def refusal_hint(self) -> str:
        """What to do when the service refuses this credential (a V3 token, a JWT, given as the other)."""
        jwt = (self._token or "").count(".") == 2
        if not self.api.mints_tokens and jwt:
            return "It looks like a V3 access token: pass api='v3' (or --api v3)."
        if self.api.mints_tokens and not self.mints and not jwt:
            return "V3 takes an AppId and a UserKey (or an access token); a legacy API key needs api='legacy'."
        return "Check it in your AI STUDIOS profile."

    @property
    def token(self) -> Optional[str]:
        """The ``Authorization`` header's value, if any yet (a minted one: ``None`` until minted, once expired)."""
        if self.mints and self.expires is not None and time.time() >= self.expires - self._margin:
            return None
        return self._token

    def minted(self, token: Any) -> str:
        """Keep and return a freshly minted token, as the token request's answer gave it."""
        self._token = checked = _checked(token, "minted access token", None)
        now = time.time()
        expires = token_expiry(checked)
        if expires is not None and expires > now:
            self.expires, self._margin = expires, min(_EXPIRY_MARGIN, (expires - now) / 10)
        else:
            # No "exp" (the docs promise no JWT), or one past by our clock: renewed by the documented day.
            self.expires, self._margin = now + TOKEN_LIFETIME, min(_AGE_MARGIN, TOKEN_LIFETIME / 10)
        return checked

    def forget_token(self) -> bool:
        """The service refused the token: drop it if it can be minted again."""
        if self.mints:
            self._token = self.expires = None
        return self.mints

    def secrets(self) -> List[str]:
        """Every value to keep out of messages."""
        values = [*self._given, self._token, *(self.minting or {}).values()]
        return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def _checked(value: Any, what: str, env: Optional[str]) -> str:
    text = value.strip() if isinstance(value, str) else ""
    if not text:
        where = f"pass it or set ${env} (your AI STUDIOS profile shows it)" if env else "the service sent none"
        raise AuthenticationError(f"no {what} (a non-empty string): {where}")
    if not (text.isascii() and text.isprintable()):
        raise AuthenticationError(f"the {what} holds a character a header cannot carry; copy it again")
    return text


def token_expiry(token: str) -> Optional[float]:
    """A JWT's ``exp`` claim (unix seconds), its signature unverified (only the service can); else ``None``."""
    try:
        _, claims, _ = token.split(".")
        payload = json.loads(base64.urlsafe_b64decode(claims + "=" * (-len(claims) % 4)))
        exp = payload.get("exp") if isinstance(payload, dict) else None
    except (ValueError, TypeError, RecursionError):  # not three parts, not base64, not JSON
        return None
    return float(exp) if isinstance(exp, (int, float)) and not isinstance(exp, bool) else None


@dataclass(frozen=True)
class Given:
    """The credential a command line or a script hands to a client (never shown), and its API."""

    token: Optional[str] = field(default=None, repr=False)
    app_id: Optional[str] = field(default=None, repr=False)
    user_key: Optional[str] = field(default=None, repr=False)
    api: str = "legacy"


def credentials_from(
    api: Optional[str],
    *,
    key_file: Optional[PathLike] = None,
    app_id_file: Optional[PathLike] = None,
    user_key_file: Optional[PathLike] = None,
) -> Given:
    """The credential as the command line reads it, from the files given, else the environment, and
    its API (``api``, else chosen by what was found, files first); ``ValueError`` says what is missing."""

    def secret(path: Optional[PathLike], option: str, env: str) -> str:
        if path is None:
            return os.environ.get(env, "").strip()
        try:
            text = Path(path).read_text(encoding="utf-8-sig").strip()
        except OSError as error:
            raise ValueError(f"{option} {path}: cannot read it ({error.strerror})") from None
        if not text:  # never fall back on another credential, and another API, in its place
            raise ValueError(f"{option} {path}: the file is empty")
        return text

    v3_files = app_id_file or user_key_file
    if v3_files and (api == "legacy" or (api is None and key_file)):
        raise ValueError("--app-id-file and --user-key-file are V3's, --api-key-file the legacy API's: add --api")
    if api is None and not (v3_files or key_file):
        try:
            api = choose_api(None, None, None, None)
        except AuthenticationError as error:
            raise ValueError(str(error)) from None
    api = api or ("v3" if v3_files else "legacy")
    key = secret(key_file, "--api-key-file", API_KEY_ENV)
    app_id = secret(app_id_file, "--app-id-file", APP_ID_ENV) if api == "v3" else ""
    user_key = secret(user_key_file, "--user-key-file", USER_KEY_ENV) if api == "v3" else ""
    if app_id and user_key:
        return Given(app_id=app_id, user_key=user_key, api="v3")
    if app_id or user_key:
        missing = f"{USER_KEY_ENV} (or --user-key-file)" if app_id else f"{APP_ID_ENV} (or --app-id-file)"
        raise ValueError(f"V3 needs both the AppId and the UserKey: {missing} is missing")
    if key:
        return Given(token=key, api=api)  # the legacy API key, or a ready V3 access token
    raise ValueError(
        f"no credentials: set {APP_ID_ENV} and {USER_KEY_ENV} (V3: your AI STUDIOS profile shows them), or "
        f"{API_KEY_ENV} (legacy), or pass their --*-file options. To try without them: aistudios-chromakey demo"
    )
