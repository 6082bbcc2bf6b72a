"""The HTTP sessions behind a client, and where each kind of failure is
tried again.

Every retry of the library is listed here, each kind of failure in one
place, each with a bound:

* **API requests** (``Retry`` below, mounted on the API session): a
  connection that could not be opened is tried again, for any request; a
  progress poll, a token or the catalogue (``GET``) is also tried again
  after a read error or an HTTP 5xx; any request after an HTTP 429 that
  asks for a short wait (``Retry-After`` up to 5 s, twice). At most 6
  attempts per request. The export (``POST``, a paid render) is resent only
  when it certainly did not arrive: no connection, or HTTP 429; a timeout, a
  reset or a 5xx after the body was sent is reported, never resent.
* **A longer rate limit** (HTTP 429 beyond those): the client's shared pause
  (``Client.pause``); the batch gives a job at most 5 of them.
* **Downloads** (``download.py``): the storage session retries nothing
  itself; the download's own loop makes at most 5 attempts, each resuming
  where the last stopped.
* **Expired video addresses** (``batch.py``): a fresh address is asked for
  at most 3 times per job.
"""

from __future__ import annotations

import email.utils
import inspect
import math
import random
import socket
import time
from typing import Any, Dict, Optional, Tuple, Union

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError
from urllib3.util.retry import Retry

#: ``(connect, read)`` seconds for every request unless the caller says otherwise.
DEFAULT_REQUEST_TIMEOUT: Tuple[float, float] = (10.0, 60.0)

RequestTimeout = Union[float, Tuple[float, float]]

_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
_POST_RETRY_STATUSES = frozenset({429, 503})
_RETRY_AFTER_MAX = 120.0
# Inside one request: at most this many 429s waited out, this long each.
_IN_REQUEST_429S = 2
_IN_REQUEST_WAIT_MAX = 5.0
_BACKOFF_MAX = 30


class _Retry(Retry):
    """urllib3's ``Retry`` with our POST rule, jitter and a cap on
    ``Retry-After``, written so that it works on urllib3 1.26 and 2.x alike."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429 and sum(entry.status == 429 for entry in self.history) >= _IN_REQUEST_429S:
            return False  # a longer rate limit is the caller's to wait out (RateLimited)
        if method.upper() == "POST":
            return bool(self.total) and status_code in _POST_RETRY_STATUSES
        return super().is_retry(method, status_code, has_retry_after)

    def get_backoff_time(self) -> float:
        backoff = float(super().get_backoff_time())
        if backoff <= 0:
            return 0.0
        return backoff * random.uniform(0.75, 1.25)

    # urllib3 1.26 reads this class attribute; 2.x takes backoff_max below.
    DEFAULT_BACKOFF_MAX = _BACKOFF_MAX

    def get_retry_after(self, response: Any) -> Optional[float]:
        # Inside one request, wait briefly; a longer pause is the caller's to
        # take, where deadlines and the rest of the batch are known.
        seconds = retry_after_seconds(response.headers.get("Retry-After"))
        return None if seconds is None else min(seconds, _IN_REQUEST_WAIT_MAX)


def retry_after_seconds(value: Optional[str]) -> Optional[float]:
    """Seconds a ``Retry-After`` header asks for (a number or an HTTP date),
    capped; ``None`` when it is absent or unreadable."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - time.time()
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), _RETRY_AFTER_MAX)


def _api_retry() -> Retry:
    options: Dict[str, Any] = {}
    if "backoff_max" in inspect.signature(Retry.__init__).parameters:
        options["backoff_max"] = _BACKOFF_MAX
    return _Retry(
        total=6,
        connect=4,
        read=4,
        status=5,
        other=0,
        backoff_factor=0.25,
        status_forcelist=_RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,
        respect_retry_after_header=True,
        redirect=0,
        **options,
    )


def _session(settings_from: Optional[requests.Session], adapter: HTTPAdapter) -> requests.Session:
    session = requests.Session()
    if settings_from is not None:
        session.headers.update(settings_from.headers)
        session.headers.pop("Authorization", None)
        session.cookies = settings_from.cookies
        session.proxies = dict(settings_from.proxies)
        session.verify = settings_from.verify
        session.cert = settings_from.cert
        session.trust_env = settings_from.trust_env
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def api_session(settings_from: Optional[requests.Session] = None) -> requests.Session:
    """A session for the API host, with the retry policy above.

    ``settings_from``, a caller's session, lends its proxies, TLS settings,
    client certificate, cookies and extra headers; not its adapters (so
    nothing can resend a paid export) and not its ``auth`` or any
    ``Authorization`` header (the credential is added to each API request
    alone, so that no other host ever receives it from us).
    """
    return _session(settings_from, HTTPAdapter(max_retries=_api_retry()))


def storage_session(settings_from: Optional[requests.Session] = None) -> requests.Session:
    """A session for the storage host: the caller's settings as above, no
    credential ever, and no retries of its own (the download's loop has them)."""
    return _session(settings_from, HTTPAdapter(max_retries=0))


def certainly_not_sent(error: requests.RequestException) -> bool:
    """True when the request never reached the service: no connection, a
    failed TLS handshake, a refusing proxy, or a request that could not even
    be built."""
    if isinstance(
        error,
        (
            requests.ConnectTimeout,
            requests.exceptions.SSLError,
            requests.exceptions.ProxyError,
            requests.exceptions.InvalidHeader,
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema,
        ),
    ):
        return True
    if not isinstance(error, requests.ConnectionError):
        return False
    reason: Any = error.args[0] if error.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def unreachable_reason(error: requests.RequestException) -> str:
    """Why no connection could be made, in words a user can act on: a name
    that does not resolve (DNS) is told from a refused connection."""
    if isinstance(error, requests.exceptions.SSLError):
        return "the TLS handshake failed (check the address and your certificates)"
    if isinstance(error, requests.exceptions.ProxyError):
        return "the proxy refused the connection (check HTTPS_PROXY and NO_PROXY)"
    if isinstance(error, requests.ConnectTimeout):
        return "no answer to the connection in time (a firewall, or the host is down)"
    cause: Optional[BaseException] = error
    seen = 0
    while cause is not None and seen < 10:
        text = str(cause)
        if isinstance(cause, socket.gaierror) or "Name or service not known" in text or "NameResolution" in text:
            return "its name could not be resolved (DNS): check the address and your network"
        if isinstance(cause, ConnectionRefusedError) or "Connection refused" in text:
            return "the connection was refused: nothing listens at that address and port"
        reason = getattr(cause, "reason", None)
        cause = reason if isinstance(reason, BaseException) else (cause.__context__ or cause.__cause__)
        seen += 1
    return f"no connection could be made ({type(error).__name__})"


def check_request_timeout(request_timeout: Any) -> RequestTimeout:
    """``request_timeout`` if it is seconds > 0 or a ``(connect, read)`` pair."""
    parts = request_timeout if isinstance(request_timeout, tuple) else (request_timeout,)
    if not parts or len(parts) > 2 or not all(_positive(p) for p in parts):
        raise ValueError(f"request_timeout must be seconds > 0 or a (connect, read) pair, not {request_timeout!r}")
    return request_timeout  # type: ignore[no-any-return]


def _positive(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0
