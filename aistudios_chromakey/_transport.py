"""The HTTP sessions behind a client, and their retries (the wall-clock
bound of every request is in _deadlines.py).

Each kind of failure is tried again in one place, with a bound:

* **In one request to the API** (``_Retry`` below, urllib3's): a connection
  that could not be opened, for any request; a read error or an HTTP 5xx,
  for a ``GET`` (a poll, the catalogue); an HTTP 429 asking for at most
  ``IN_REQUEST_WAIT_MAX`` seconds, twice, for any request (a 429 proves the
  request was not taken, so even an export is sent again). A ``POST`` (an
  export, a paid render; minting a token) is otherwise never resent: a
  timeout, a reset or a 5xx after the body was sent may hide an accepted
  render. Never past the request's wall-clock bound, backoff included.
* **A refused access token** (V3, minted from an AppId and a UserKey):
  minted again once, and the request sent again (``Client._exchange``).
* **A longer rate limit**: the client's shared pause (``Client.pause``),
  then the poll or the export again; an export waits out at most 5.
* **A render that says it failed** (``polling.FailureWatch``): asked again
  until the failure has lasted three answers over ten seconds.
* **Downloads** (``_download.py``): at most 5 attempts, each resuming where
  the last one stopped; **an expired video address** (``_life.py``): a
  fresh one asked for at most 3 times.

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
from typing import Any, Dict, List, Optional, Tuple, Union

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError, ResponseError
from urllib3.util.retry import Retry

from ._deadlines import GuardedAdapter, time_left

#: ``(connect, read)`` seconds for every request unless the caller says otherwise.
DEFAULT_REQUEST_TIMEOUT: Tuple[float, float] = (10.0, 60.0)

RequestTimeout = Union[float, Tuple[float, float]]

_RETRY_STATUSES = frozenset({500, 502, 503, 504})
_RETRY_AFTER_MAX = 120.0
#: Seconds before the first retry of a request; each next one waits twice as long.
BACKOFF_FACTOR = 0.25
_BACKOFF_MAX = 30


#: HTTP 429s waited out inside one request, each asking for at most
#: IN_REQUEST_WAIT_MAX seconds; a longer one, or a third, is the caller's.
IN_REQUEST_429S = 2
IN_REQUEST_WAIT_MAX = 5.0


class _Retry(Retry):
    """urllib3's ``Retry`` with our rules for POST and HTTP 429, jitter, and
    nothing past the request's wall-clock bound, written so that it works on
    urllib3 1.26 and 2.x alike."""

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
        backoff = float(super().get_backoff_time())
        if backoff <= 0:
            return 0.0
        return min(backoff * random.uniform(0.75, 1.25), time_left())  # never past the request's bound

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

    # urllib3 1.26 reads this class attribute; 2.x takes backoff_max below.
    DEFAULT_BACKOFF_MAX = _BACKOFF_MAX


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
    if "backoff_max" in Retry.__init__.__code__.co_varnames:  # urllib3 2
        options["backoff_max"] = _BACKOFF_MAX
    return _Retry(
        total=6,
        connect=4,
        read=4,
        status=5,
        other=0,
        backoff_factor=BACKOFF_FACTOR,
        status_forcelist=_RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,
        respect_retry_after_header=True,  # for HTTP 429 alone (get_retry_after)
        redirect=0,
        **options,
    )


def request_seconds(request_timeout: RequestTimeout) -> float:
    """The wall-clock bound of one API request: the time to connect plus the
    time to wait for the answer."""
    parts = request_timeout if isinstance(request_timeout, tuple) else (request_timeout, request_timeout)
    return float(sum(parts))


class _Session(requests.Session):
    """A session on which a CA bundle (or ``verify=False``) lent by the
    caller's session wins over ``$REQUESTS_CA_BUNDLE``, which requests
    would let replace it."""

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        if verify in (True, None) and self.verify is not True:
            verify = self.verify
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


def no_credentials(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """As ``auth``: add nothing, and keep requests from adding a ``.netrc``
    login or a session's credentials (which would replace ours, or reach the
    storage host)."""
    return request


def _session(settings_from: Optional[requests.Session], adapter: HTTPAdapter) -> requests.Session:
    session = _Session()
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
    return _session(settings_from, GuardedAdapter(max_retries=_api_retry()))


def storage_session(settings_from: Optional[requests.Session] = None) -> requests.Session:
    """A session for the storage host: the caller's settings as above, no
    credential ever, and no retries of its own (the download's loop has them)."""
    return _session(settings_from, GuardedAdapter(max_retries=0))


def certainly_not_sent(error: requests.RequestException) -> bool:
    """True only when the request provably never left: it could not be
    built, no connection to the first hop (the service, or the proxy) could
    be made, a proxy refused to open the tunnel, or the service's
    certificate failed verification (all before a byte of the request is
    written). This is the one place that decides it, and an export is
    resent only on its word.

    Everything else may have reached the service: a ``ProxyError`` or an
    ``SSLError`` of any other kind can come after the request was delivered
    (a proxy that resets once the service answered; a load balancer writing
    a plaintext 502 into the TLS stream).
    """
    if isinstance(
        error,
        (
            requests.exceptions.InvalidHeader,
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema,
        ),
    ):
        return True
    return any(_before_sending(cause) for cause in _causes(error))


def _causes(error: BaseException) -> List[BaseException]:
    """``error`` and what it wraps (``reason``, ``args``, context), breadth first, bounded."""
    seen: List[BaseException] = []
    queue: List[BaseException] = [error]
    while queue and len(seen) < 16:
        cause = queue.pop(0)
        if any(cause is other for other in seen):
            continue
        seen.append(cause)
        reason = getattr(cause, "reason", None)
        wrapped = [reason, *cause.args[:1], cause.__cause__, cause.__context__]
        queue.extend(item for item in wrapped if isinstance(item, BaseException))
    return seen


def _before_sending(cause: BaseException) -> bool:
    if isinstance(cause, (NewConnectionError, ConnectTimeoutError, socket.gaierror)):
        return True  # the socket to the first hop never opened
    if isinstance(cause, ssl.SSLCertVerificationError):
        return True  # verification is part of the handshake, which precedes the request
    # http.client's CONNECT to a proxy that refused (urllib3 raises it from connect()).
    return isinstance(cause, OSError) and str(cause).startswith("Tunnel connection failed")


class NetworkProblem(Exception):
    """What went wrong on the network, in words, without the request: a
    ``requests`` exception holds the request, whose headers hold the
    credential, and must not travel on as an exception's context.

    :ivar not_sent: the connection was never made, so nothing was sent.
    """

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
