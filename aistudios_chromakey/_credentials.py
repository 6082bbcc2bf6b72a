"""Who the client is to the service: the legacy API key, a V3 AppId and
UserKey from which access tokens are minted (again before they expire, or
when refused), or a ready access token. Nothing here is ever logged, written
to disk, or put in a message."""

from __future__ import annotations

import base64
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Union

from ._apis import Api
from ._errors import AuthenticationError

API_KEY_ENV = "AISTUDIOS_API_KEY"
APP_ID_ENV = "AISTUDIOS_APP_ID"
USER_KEY_ENV = "AISTUDIOS_USER_KEY"
#: The docs: a token is valid "1 day (24 hours from the time of issuance)".
TOKEN_LIFETIME = 86400.0
# A token is minted anew this long before its "exp", or before its day ends if it has no readable "exp".
_EXPIRY_MARGIN = 60.0
_AGE_MARGIN = 3600.0


def choose_api(api: Optional[str], token: Optional[str], app_id: Optional[str], user_key: Optional[str]) -> str:
    """``api`` when given, else the API the credentials belong to (arguments
    first, then the environment): an AppId or a UserKey mean ``"v3"``, an API
    key ``"legacy"`` (a V3 token as ``token`` needs ``api="v3"``). Both kinds in
    the environment: :class:`AuthenticationError`, as guessing could export the
    same jobs again on the other API."""
    if api is not None:
        return api
    if app_id is not None or user_key is not None:
        return "v3"
    if token is not None:
        return "legacy"
    v3 = bool(os.environ.get(APP_ID_ENV, "").strip() or os.environ.get(USER_KEY_ENV, "").strip())
    if v3 and os.environ.get(API_KEY_ENV, "").strip():
        raise AuthenticationError(
            f"both V3 credentials (${APP_ID_ENV}, ${USER_KEY_ENV}) and a legacy API key (${API_KEY_ENV}) are set: "
            "say which API to use with api='v3' or api='legacy' (--api v3 or --api legacy)"
        )
    return "v3" if v3 else "legacy"


class Credentials:
    """The credential of one client, from the arguments, else the environment:
    for V3 an AppId and a UserKey first (they never expire), then a ready
    token (``token=`` or ``$AISTUDIOS_API_KEY``); for the legacy API the API
    key. Checked lazily, so that a bad job is reported before a missing key."""

    def __init__(self, api: Api, token: Optional[str], app_id: Optional[str], user_key: Optional[str]):
        self.api = api
        self._given = (token, app_id, user_key)
        self._token: Optional[str] = None
        self._minting: Optional[Dict[str, str]] = None  # the token request's body, for an AppId and a UserKey
        #: The minted token's end, and how long before it the token is minted anew.
        self.expires: Optional[float] = None
        self._margin = 0.0

    def __repr__(self) -> str:
        return f"<Credentials {self.kind}>"

    @property
    def kind(self) -> str:
        """``"API key"``, ``"access token"`` or ``"AppId and UserKey"``."""
        if self.mints:
            return "AppId and UserKey"
        return "access token" if self.api.mints_tokens else "API key"

    @property
    def mints(self) -> bool:
        """Whether tokens are minted from an AppId and a UserKey."""
        self.resolve()
        return self._minting is not None

    def resolve(self) -> None:
        """Find the credential; :class:`AuthenticationError` when there is none."""
        if self._token is not None or self._minting is not None:
            return  # found already
        token, app_id, user_key = self._given
        if token is None and app_id is None and user_key is None:
            app_id, user_key = os.environ.get(APP_ID_ENV) or None, os.environ.get(USER_KEY_ENV) or None
            if not (self.api.mints_tokens and app_id and user_key):
                app_id = user_key = None
                token = os.environ.get(API_KEY_ENV, "")
        if app_id is None and user_key is None:
            name = "access token (or AppId and UserKey)" if self.api.mints_tokens else "API key"
            self._token = _checked(token, name, API_KEY_ENV, "token")
        elif not self.api.mints_tokens:
            raise AuthenticationError(
                "app_id and user_key are V3 credentials: use api='v3', or give the legacy API key as token"
            )
        else:
            self._minting = {
                "appId": _checked(app_id, "AppId", APP_ID_ENV, "app_id"),
                "userKey": _checked(user_key, "UserKey", USER_KEY_ENV, "user_key"),
            }

    def refusal_hint(self) -> str:
        """What to do when the service refuses this credential."""
        token = self._token or ""
        if not self.api.mints_tokens and token.count(".") == 2:
            return "It looks like a V3 access token: pass api='v3' (or --api v3)."
        if self.api.mints_tokens and not self.mints and token.count(".") != 2:
            return (
                "V3 takes an access token, or better the AppId and UserKey of your profile (app_id=, user_key=); "
                "a legacy API key needs api='legacy' (or --api legacy)."
            )
        return "Check it in your AI STUDIOS profile."

    @property
    def token(self) -> Optional[str]:
        """The ``Authorization`` header's value, if any yet (a minted one: ``None`` until minted, once expired)."""
        if self.mints and self.expires is not None and time.time() >= self.expires - self._margin:
            return None
        return self._token

    def minting_body(self) -> Dict[str, str]:
        """The token request's body, ``{"appId", "userKey"}``."""
        assert self._minting is not None
        return dict(self._minting)

    def minted(self, token: str) -> None:
        """Keep a freshly minted token."""
        self._token = _checked(token, "minted access token", None, None)
        now = time.time()
        expires = token_expiry(token)
        if expires is not None and expires > now:
            # Renewed a little before the end, never so early that a short-lived token is renewed at every call.
            self.expires, self._margin = expires, min(_EXPIRY_MARGIN, (expires - now) / 10)
        else:
            # No "exp" (the docs never promise a JWT), or one past by our clock (which disagrees with the
            # service's): renewed by age, an hour before the documented day ends.
            self.expires, self._margin = now + TOKEN_LIFETIME, min(_AGE_MARGIN, TOKEN_LIFETIME / 10)

    def forget_token(self) -> bool:
        """The service refused the token: drop it if it can be minted again."""
        if self.mints:
            self._token = self.expires = None
        return self.mints

    def secrets(self) -> List[str]:
        """Every value to keep out of messages."""
        values = [*self._given, self._token, *(self._minting or {}).values()]
        return [v.strip() for v in values if isinstance(v, str) and v.strip()]


def _checked(value: Any, what: str, env: Optional[str], argument: Optional[str]) -> str:
    if value is not None and not isinstance(value, str):
        raise AuthenticationError(f"the {what} must be a string")
    text: str = (value or "").strip()
    if not text:
        where = f"pass {argument}=... or set the {env} environment variable" if env else "the service sent none"
        new_customer = (
            ". A profile that shows an AppId and a UserKey (V3, what today's docs describe): pass app_id= and "
            f"user_key=, or set {APP_ID_ENV} and {USER_KEY_ENV}"
        )
        raise AuthenticationError(
            f"no {what}: {where} (they are shown in your AI STUDIOS account profile)"
            + (new_customer if env == API_KEY_ENV else "")
        )
    if not (text.isascii() and text.isprintable()):
        raise AuthenticationError(
            f"the {what} contains a line break or a character that cannot be sent in a header; copy it again"
        )
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


PathLike = Union[str, "os.PathLike[str]"]


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
            value = Path(path).read_text(encoding="utf-8-sig").strip()
        except OSError as error:
            raise ValueError(f"{option} {path}: cannot read it ({error.strerror})") from None
        if not value:
            raise ValueError(f"{option} {path}: the file is empty")
        return value

    v3_files = app_id_file or user_key_file
    if api is None and v3_files and key_file:
        raise ValueError("--api-key-file is the legacy API's, --app-id-file and --user-key-file V3's: add --api")
    if api is None and not (v3_files or key_file):
        try:
            api = choose_api(None, None, None, None)
        except AuthenticationError as error:
            raise ValueError(str(error)) from None
    api = api or ("v3" if v3_files else "legacy")
    key = secret(key_file, "--api-key-file", API_KEY_ENV)
    if api != "v3":
        if v3_files:
            raise ValueError("--app-id-file and --user-key-file are V3 credentials: add --api v3")
        if not key:
            raise ValueError(
                f"no credentials: set {APP_ID_ENV} and {USER_KEY_ENV} (V3: the AppId and UserKey your AI STUDIOS "
                f"profile shows), or the legacy API key as {API_KEY_ENV}; or pass --app-id-file and "
                "--user-key-file, or --api-key-file. To try without them: aistudios-chromakey demo"
            )
        return Given(token=key, api="legacy")
    app_id = secret(app_id_file, "--app-id-file", APP_ID_ENV)
    user_key = secret(user_key_file, "--user-key-file", USER_KEY_ENV)
    if app_id and user_key:
        return Given(app_id=app_id, user_key=user_key, api="v3")
    if app_id or user_key:
        missing = f"{USER_KEY_ENV} (or --user-key-file)" if app_id else f"{APP_ID_ENV} (or --app-id-file)"
        raise ValueError(f"V3 needs both the AppId and the UserKey: {missing} is missing")
    if key:
        return Given(token=key, api="v3")  # a ready V3 access token
    raise ValueError(
        f"no V3 credentials: set {APP_ID_ENV} and {USER_KEY_ENV}, or pass --app-id-file and --user-key-file "
        "(both are shown in your AI STUDIOS account profile). To try without them: aistudios-chromakey demo"
    )
