"""The HTTP sessions behind a client, and their retries (each request's
wall-clock bound is in _deadlines.py).

In one request to the API (``_Retry``), a connection that could not be
opened is tried again; a read error or an HTTP 5xx, for a ``GET`` (a poll,
the catalogue); an HTTP 429 asking for at most ``IN_REQUEST_WAIT_MAX``
seconds, twice (it proves the request was not taken). A ``POST`` (a paid
export; minting a token) is otherwise never resent: an error after its body
was sent may hide an accepted render. The other retries, each bounded, are
their callers': a refused token (``Client._exchange``), a long rate limit
(``Client.pause``), a failed render (``polling.FailureWatch``), a download
(``_download.py``) and an expired video address (``_life.py``).

Measured against the simulator (``tests/test_api.py``): one poll makes at
most 6 requests (an HTTP 503 every time: 6; a reset: 5; a 429: 3), 12 when
its token is refused between them, plus the new token's; one export at
most 3 (429s), 6 with a refused token. One video takes at most 4 addresses
of 5 attempts each.
"""

from __future__ import annotations

import email.utils
import math
import random
import socket
import ssl
import time
from typing import Any, List, Optional, Tuple, Union

import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import InvalidHeader, InvalidSchema, InvalidURL, MissingSchema
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError, ResponseError
from urllib3.util.retry import Retry

from ._deadlines import GuardedAdapter, time_left
from ._jobs import is_number

#: ``(connect, read)`` seconds for every request unless the caller says otherwise.
DEFAULT_REQUEST_TIMEOUT: Tuple[float, float] = (10.0, 60.0)
RequestTimeout = Union[float, Tuple[float, float]]

_RETRY_AFTER_MAX = 120.0
#: Seconds before the first retry of a request; each next one waits twice as
#: long (6 attempts at most: never near urllib3's cap on a backoff).
BACKOFF_FACTOR = 0.25
#: HTTP 429s waited out inside one request, each asking for at most
#: IN_REQUEST_WAIT_MAX seconds; a longer one, or a third, is the caller's.
IN_REQUEST_429S = 2
IN_REQUEST_WAIT_MAX = 5.0


class _Retry(Retry):
    """urllib3's ``Retry`` (1.26 or 2.x) with our rules for POST and HTTP 429,
    jitter, and nothing past the request's wall-clock bound."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429:
            return True  # proof that the request was not taken: even an export is asked again
        if method.upper() == "POST":
            return False  # an answer came: the body was sent, and may have been taken
        return super().is_retry(method, status_code, has_retry_after)

    def get_retry_after(self, response: Any) -> Optional[float]:
        if response.status != 429:
            return None  # a 5xx's Retry-After is not waited for: the backoff is
        asked = retry_after_seconds(response.headers.get("Retry-After"))
        return min(1.0 if asked is None else asked, time_left())

    def get_backoff_time(self) -> float:
        # Jittered, and never past the request's bound.
        return min(float(super().get_backoff_time()) * random.uniform(0.75, 1.25), time_left())

    def increment(  # type: ignore[override]  # urllib3 1.26 and 2.x spell the types differently
        self,
        method: Any = None,
        url: Any = None,
        response: Any = None,
        error: Any = None,
        _pool: Any = None,
        _stacktrace: Any = None,
    ) -> Retry:
        if time_left() <= 0:  # the request's wall-clock bound has passed: no more attempts
            raise MaxRetryError(_pool, url, error or ConnectionAbortedError("the request's time is up"))
        if response is not None and response.status == 429:
            asked = retry_after_seconds(response.headers.get("Retry-After"))
            waited = sum(1 for earlier in self.history if earlier.status == 429)
            if waited >= IN_REQUEST_429S or (1.0 if asked is None else asked) > min(IN_REQUEST_WAIT_MAX, time_left()):
                raise MaxRetryError(_pool, url, ResponseError("rate limited"))  # the 429 goes to the caller
        return super().increment(method, url, response, error, _pool, _stacktrace)


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
        seconds = when.timestamp() - time.time() if when.tzinfo else math.nan  # a date without a zone: unreadable
    return min(max(seconds, 0.0), _RETRY_AFTER_MAX) if math.isfinite(seconds) else None


def request_seconds(request_timeout: RequestTimeout) -> float:
    """The wall-clock bound of one request: the time to connect plus the time to wait for the answer."""
    return float(sum(request_timeout) if isinstance(request_timeout, tuple) else 2 * request_timeout)


class _Session(requests.Session):
    """A session with ``adapter`` and the settings of ``settings_from`` (see
    :func:`api_session`), on which a CA bundle (or ``verify=False``) lent wins
    over ``$REQUESTS_CA_BUNDLE``, which requests would let replace it."""

    def __init__(self, settings_from: Optional[requests.Session], adapter: HTTPAdapter):
        super().__init__()
        if settings_from is not None:
            self.headers.update(settings_from.headers)
            self.headers.pop("Authorization", None)
            self.cookies, self.proxies = settings_from.cookies, dict(settings_from.proxies)
            self.verify, self.cert, self.trust_env = settings_from.verify, settings_from.cert, settings_from.trust_env
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        if verify in (True, None) and self.verify is not True:
            verify = self.verify
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


def no_credentials(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """As ``auth``: keep requests from adding a ``.netrc`` login or a session's
    credentials (which would replace ours, or reach the storage host)."""
    return request


def api_session(settings_from: Optional[requests.Session] = None) -> requests.Session:
    """A session for the API host, with the retry policy above. A caller's
    session (``settings_from``) lends its proxies, TLS settings, client
    certificate, cookies and extra headers; never its adapters (which could
    resend a paid export), its ``auth`` or an ``Authorization`` header (the
    credential goes on each API request alone, to no other host)."""
    retry = _Retry(
        total=6, connect=4, read=4, status=5, other=0, redirect=0, backoff_factor=BACKOFF_FACTOR,
        status_forcelist=frozenset({500, 502, 503, 504}), allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False, respect_retry_after_header=True,  # for HTTP 429 alone (get_retry_after)
    )  # fmt: skip
    return _Session(settings_from, GuardedAdapter(max_retries=retry))


def storage_session(settings_from: Optional[requests.Session] = None) -> requests.Session:
    """A session for the storage host: the caller's settings as above, no
    credential ever, and no retries of its own (the download's loop has them)."""
    return _Session(settings_from, GuardedAdapter(max_retries=0))


def certainly_not_sent(error: requests.RequestException) -> bool:
    """True only when the request provably never left: it could not be
    built, no connection to the first hop (the service, or a proxy) was made,
    a proxy refused the tunnel, or the certificate failed verification. An
    export is resent only on its word: any other ``ProxyError`` or
    ``SSLError`` can come after the request was delivered."""
    never_opened = (NewConnectionError, ConnectTimeoutError, socket.gaierror, ssl.SSLCertVerificationError)
    return isinstance(error, (InvalidHeader, InvalidURL, InvalidSchema, MissingSchema)) or any(
        isinstance(cause, never_opened)
        # http.client's CONNECT to a proxy that refused (urllib3 raises it from connect()).
        or (isinstance(cause, OSError) and str(cause).startswith("Tunnel connection failed"))
        for cause in _causes(error)
    )


def _causes(error: BaseException) -> List[BaseException]:
    """``error`` and what it wraps (``reason``, ``args``, context), breadth first, bounded."""
    seen: List[BaseException] = []
    queue = [error]
    while queue and len(seen) < 16:
        cause = queue.pop(0)
        if not any(cause is other for other in seen):
            seen.append(cause)
            wrapped = [getattr(cause, "reason", None), *cause.args[:1], cause.__cause__, cause.__context__]
            queue.extend(item for item in wrapped if isinstance(item, BaseException))
    return seen


class NetworkProblem(Exception):
    """What went wrong on the network, in words, without the request (whose
    headers hold the credential: a ``requests`` exception must not travel on
    as its context). ``not_sent``: no connection was made, nothing was sent."""

    def __init__(self, reason: str, not_sent: bool):
        super().__init__(reason)
        self.not_sent = not_sent

    @classmethod
    def of(cls, error: requests.RequestException, cut_after: Optional[float] = None) -> NetworkProblem:
        """Describe ``error``; ``cut_after``: the guard cut the request after so many seconds."""
        if cut_after is not None:
            return cls(f"no complete answer within {cut_after:g} s", not_sent=False)
        if certainly_not_sent(error):
            return cls(unreachable_reason(error), not_sent=True)
        return cls(type(error).__name__, not_sent=False)


def unreachable_reason(error: requests.RequestException) -> str:
    """Why no connection could be made, in words a user can act on: a name
    that does not resolve (DNS) is told from a refused connection."""
    if isinstance(error, requests.exceptions.SSLError):
        return "the TLS handshake failed (check the address and your certificates)"
    if isinstance(error, requests.exceptions.ProxyError):
        return "the proxy refused the connection (check HTTPS_PROXY and NO_PROXY)"
    if isinstance(error, requests.ConnectTimeout):
        return "no answer to the connection in time (a firewall, or the host is down)"
    for cause in _causes(error):
        text = str(cause)
        if isinstance(cause, socket.gaierror) or "Name or service not known" in text or "NameResolution" in text:
            return "its name could not be resolved (DNS): check the address and your network"
        if isinstance(cause, ConnectionRefusedError) or "Connection refused" in text:
            return "the connection was refused: nothing listens at that address and port"
    return f"no connection could be made ({type(error).__name__})"


def check_request_timeout(request_timeout: Any) -> RequestTimeout:
    """``request_timeout`` if it is seconds > 0 or a ``(connect, read)`` pair."""
    parts = request_timeout if isinstance(request_timeout, tuple) else (request_timeout,)
    if not 0 < len(parts) <= 2 or not all(is_number(part) and part > 0 for part in parts):
        raise ValueError(f"request_timeout must be seconds > 0 or a (connect, read) pair, not {request_timeout!r}")
    return request_timeout  # type: ignore[no-any-return]
