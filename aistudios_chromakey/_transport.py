"""The HTTP transport shared by every call: one session, timeouts, retries.

Retries live here, in a urllib3 ``Retry`` mounted on the session, and not in
the call sites. The policy differs by method:

* ``GET`` (progress polls, downloads) is retried on connection errors, read
  errors, 429 and 5xx, with exponential backoff, jitter and ``Retry-After``.
* ``POST`` (the export request, a paid render) is resent only when the
  service certainly did not take it: the connection could not be opened, or
  the service answered 429 or 503. A timeout or a reset after the body was
  sent is never retried; the caller reports it instead.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any, Iterator, Optional, Tuple, Union

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


class _Retry(Retry):
    """urllib3's ``Retry`` with our POST rule, jitter and a cap on
    ``Retry-After``, written so that it works on urllib3 1.26 and 2.x alike."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if method.upper() == "POST":
            return bool(self.total) and status_code in _POST_RETRY_STATUSES
        return super().is_retry(method, status_code, has_retry_after)

    def get_backoff_time(self) -> float:
        backoff = float(super().get_backoff_time())
        if backoff <= 0:
            return 0.0
        return backoff * random.uniform(0.75, 1.25)

    def get_retry_after(self, response: Any) -> Optional[float]:
        seconds = super().get_retry_after(response)
        return None if seconds is None else min(float(seconds), _RETRY_AFTER_MAX)


def _default_retry() -> Retry:
    return _Retry(
        total=6,
        connect=4,
        read=4,
        status=5,
        other=0,
        backoff_factor=0.25,
        backoff_max=30,
        status_forcelist=_RETRY_STATUSES,
        allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False,
        respect_retry_after_header=True,
    )


def make_session() -> requests.Session:
    """A ``requests.Session`` with the library's retry policy mounted.

    It carries no credentials: the API key is added to each API request
    alone, so that no other host ever receives it.
    """
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=_default_retry())
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


@contextlib.contextmanager
def session_scope(session: Optional[requests.Session]) -> Iterator[requests.Session]:
    """Yield the caller's session untouched, or a new one closed afterwards."""
    if session is not None:
        yield session
        return
    own = make_session()
    try:
        yield own
    finally:
        own.close()


def certainly_not_sent(error: requests.RequestException) -> bool:
    """True when the request never reached the server (no connection)."""
    if isinstance(error, requests.ConnectTimeout):
        return True
    if not isinstance(error, requests.ConnectionError):
        return False
    reason: Any = error.args[0] if error.args else None
    if isinstance(reason, MaxRetryError):
        reason = reason.reason
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))
