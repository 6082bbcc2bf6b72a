"""The client's HTTP: sessions and their retries, a wall-clock bound on every request, and the download
of a finished video.

In one request to the API (``_Retry``), a connection that could not be opened is tried again; a read
error or an HTTP 5xx, for a ``GET`` (a poll, the catalogue); an HTTP 429 asking for at most
``IN_REQUEST_WAIT_MAX`` seconds, twice (it proves the request was not taken). A ``POST`` (a paid export;
minting a token) is otherwise never resent: an error after its body was sent may hide an accepted render.
The other retries, each bounded, are their callers': a refused token (``Client._exchange``), a long rate
limit (``Client.pause``), a failed render (``Watch.failed`` in ``_polling.py``), a download
(:func:`save_video`) and an expired video address (``_life.py``).

Measured against the simulator (``tests/test_api.py``): one poll makes at most 6 requests (an HTTP 503
every time: 6; a reset: 5; a 429: 3), 12 when its token is refused between them, plus the new token's;
one export at most 3 (429s), 6 with a refused token. One video takes at most 4 addresses of 5 attempts each.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import functools
import hashlib
import logging
import math
import os
import random
import re
import secrets
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Mapping, NamedTuple, Optional, Set, Tuple, Union
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.exceptions import InvalidHeader, InvalidSchema, InvalidURL, MissingSchema
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError, NewConnectionError, ResponseError
from urllib3.exceptions import HTTPError as Urllib3Error
from urllib3.util.retry import Retry

from ._jobs import is_number, place, truncate_utf8
from ._reports import DownloadError

logger = logging.getLogger("aistudios_chromakey")

#: ``(connect, read)`` seconds for every request unless the caller says otherwise.
DEFAULT_REQUEST_TIMEOUT: Tuple[float, float] = (10.0, 60.0)
RequestTimeout = Union[float, Tuple[float, float]]

_RETRY_AFTER_MAX = 120.0
#: Seconds before the first retry of a request; each next one waits twice as long (6 attempts at most).
BACKOFF_FACTOR = 0.25
#: HTTP 429s waited out inside one request, each asking for at most IN_REQUEST_WAIT_MAX seconds; a longer
#: one, or a third, is the caller's.
IN_REQUEST_429S = 2
IN_REQUEST_WAIT_MAX = 5.0


@dataclass(eq=False)
class Guard:
    """The wall-clock deadline of one request (see :func:`guarded`)."""

    deadline: float
    connection: Any = None
    fired: bool = False
    done: bool = False

    def reset(self, seconds: float) -> None:
        """Move the deadline to ``seconds`` from now, earlier or later (once a body flows: the stall bound)."""
        deadline = time.monotonic() + seconds
        earlier, self.deadline = deadline < self.deadline, deadline
        if earlier:
            _watchdog.watch(self)  # the watchdog may be asleep until the old deadline

    def cut(self) -> None:
        """End the request now: shut its connection's socket down, which ends any read."""
        self.fired = True
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """The one thread, ``aistudios-chromakey watchdog``, that cuts the requests whose time is up. It runs
    only while a guarded request does (the last guard to end stops it and waits for it)."""

    def __init__(self) -> None:
        self.start_over()

    def start_over(self) -> None:
        """No guard, no thread: also a forked child's state (the parent's thread did not come along)."""
        self.wake = threading.Condition()
        self.guards: Set[Guard] = set()
        self.thread: Optional[threading.Thread] = None
        self.by_thread: Dict[int, Guard] = {}  # the guard of each thread inside guarded()

    def watch(self, guard: Guard) -> None:
        with self.wake:
            self.guards.add(guard)
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name="aistudios-chromakey watchdog", daemon=True)
                self.thread.start()
            self.wake.notify()

    def forget(self, guard: Guard) -> None:
        with self.wake:
            self.guards.discard(guard)
            ending, self.thread = (None, self.thread) if self.guards else (self.thread, None)
            self.wake.notify()
        if ending is not None:
            ending.join()

    def run(self) -> None:
        me = threading.current_thread()
        with self.wake:
            while self.thread is me:
                now = time.monotonic()
                for guard in [guard for guard in self.guards if guard.deadline <= now]:
                    self.guards.discard(guard)
                    if not guard.done:  # ended, but not yet forgotten
                        guard.cut()
                # Until the next deadline: a guard that moves its own earlier wakes us (watch).
                self.wake.wait(min((guard.deadline - now for guard in self.guards), default=None))


_watchdog = _Watchdog()
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_watchdog.start_over)


@contextlib.contextmanager
def guarded(seconds: float) -> Iterator[Guard]:
    """Bound what happens inside (one request, its answer read) to ``seconds`` of wall-clock time, which
    requests does not (its timeouts bound each read: an answer that trickles in a byte a second never times
    out). The connection the request goes out on registers with its thread's guard, and past the deadline the
    watchdog shuts its socket down: the read in progress fails, and ``guard.fired`` tells why."""
    guard = _watchdog.by_thread[threading.get_ident()] = Guard(time.monotonic() + max(seconds, 0.0))
    _watchdog.watch(guard)
    try:
        yield guard
    finally:
        guard.done = True
        _watchdog.by_thread.pop(threading.get_ident(), None)
        _watchdog.forget(guard)


def time_left() -> float:
    """Seconds left to the guarded request this thread is making (infinite outside one; 0 once cut)."""
    guard = _watchdog.by_thread.get(threading.get_ident())
    return math.inf if guard is None else 0.0 if guard.fired else max(0.0, guard.deadline - time.monotonic())


def cut_now(thread: int) -> None:
    """End at once the guarded request ``thread`` is making, if any (a batch that stops waits for no read)."""
    guard = _watchdog.by_thread.get(thread)
    if guard is not None and not guard.done:
        guard.cut()


class _Registers:
    """A connection that tells its thread's guard it carries the request."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        guard = _watchdog.by_thread.get(threading.get_ident())
        if guard is not None:
            if guard.fired:  # a retry after the deadline: no more time for it
                raise ConnectionAbortedError("the request's time is up")
            guard.connection = self
        return super().request(*args, **kwargs)  # type: ignore[misc]


def _guarded_pool(pool: type, connection: type) -> type:  # its connections register with their guard
    return type(pool.__name__, (pool,), {"ConnectionCls": type(connection.__name__, (_Registers, connection), {})})


_GUARDED_POOLS = {
    "http": _guarded_pool(HTTPConnectionPool, HTTPConnection),
    "https": _guarded_pool(HTTPSConnectionPool, HTTPSConnection),
}


class _GuardedAdapter(HTTPAdapter):
    """requests' adapter, with connections a guard can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _GUARDED_POOLS

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(*args, **kwargs)
        manager.pool_classes_by_scheme = _GUARDED_POOLS
        return manager


class _Retry(Retry):
    """urllib3's ``Retry`` (1.26 or 2.x): our rules for POST and HTTP 429, jitter, nothing past the bound."""

    def is_retry(self, method: str, status_code: int, has_retry_after: bool = False) -> bool:
        if status_code == 429:
            return True  # proof that the request was not taken: even an export is asked again
        if method.upper() == "POST":
            return False  # an answer came: the body was sent, and may have been taken
        return super().is_retry(method, status_code, has_retry_after)

    def get_retry_after(self, response: Any) -> Optional[float]:
        if response.status != 429:
            return None  # a 5xx's Retry-After is not waited for: the backoff is
        return min(_asked_wait(response), time_left())

    def get_backoff_time(self) -> float:
        return min(float(super().get_backoff_time()) * random.uniform(0.75, 1.25), time_left())  # jittered

    def increment(  # type: ignore[override]  # urllib3 1.26 and 2.x spell the types differently
        self, method: Any = None, url: Any = None, *, _pool: Any = None, **kwargs: Any
    ) -> Retry:
        if time_left() <= 0:  # the request's wall-clock bound has passed: no more attempts
            raise MaxRetryError(_pool, url, kwargs.get("error") or ConnectionAbortedError("the request's time is up"))
        response = kwargs.get("response")
        if response is not None and response.status == 429:
            waited = sum(1 for earlier in self.history if earlier.status == 429)
            if waited >= IN_REQUEST_429S or _asked_wait(response) > min(IN_REQUEST_WAIT_MAX, time_left()):
                raise MaxRetryError(_pool, url, ResponseError("rate limited"))  # the 429 goes to the caller
        return super().increment(method, url, _pool=_pool, **kwargs)


def _asked_wait(response: Any) -> float:
    """Seconds an HTTP 429 asks for (1 when it does not say)."""
    asked = retry_after_seconds(response.headers.get("Retry-After"))
    return 1.0 if asked is None else asked


def retry_after_seconds(value: Optional[str]) -> Optional[float]:
    """Seconds a ``Retry-After`` asks for (a number or an HTTP date), capped; ``None``: absent or unreadable."""
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


def check_request_timeout(request_timeout: Any) -> RequestTimeout:
    """``request_timeout`` if it is seconds > 0 or a ``(connect, read)`` pair."""
    parts = request_timeout if isinstance(request_timeout, tuple) else (request_timeout,)
    if not 0 < len(parts) <= 2 or not all(is_number(part) and part > 0 for part in parts):
        raise ValueError(f"request_timeout must be seconds > 0 or a (connect, read) pair, not {request_timeout!r}")
    return request_timeout  # type: ignore[no-any-return]


class _Session(requests.Session):
    """A session with the settings of ``settings_from`` (see :func:`api_session`), on which a CA bundle
    (or ``verify=False``) lent wins over ``$REQUESTS_CA_BUNDLE``, as requests would not."""

    def __init__(self, settings_from: Optional[requests.Session], max_retries: Union[int, Retry]):
        super().__init__()
        if settings_from is not None:
            self.headers.update(settings_from.headers)
            self.headers.pop("Authorization", None)
            self.cookies, self.proxies = settings_from.cookies, dict(settings_from.proxies)
            self.verify, self.cert, self.trust_env = settings_from.verify, settings_from.cert, settings_from.trust_env
        adapter = _GuardedAdapter(max_retries=max_retries)
        self.mount("http://", adapter)
        self.mount("https://", adapter)

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        if verify in (True, None) and self.verify is not True:
            verify = self.verify
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


def api_session(settings_from: Optional[requests.Session] = None) -> requests.Session:
    """A session for the API host, with the retry policy above. A caller's session (``settings_from``)
    lends its proxies, TLS settings, client certificate, cookies and extra headers; never its adapters
    (which could resend a paid export), its ``auth`` or an ``Authorization`` header (the credential goes
    on each API request alone, to no other host)."""
    retry = _Retry(
        total=6, connect=4, read=4, status=5, other=0, redirect=0, backoff_factor=BACKOFF_FACTOR,
        status_forcelist=frozenset({500, 502, 503, 504}), allowed_methods=frozenset({"GET", "HEAD"}),
        raise_on_status=False, respect_retry_after_header=True,  # for HTTP 429 alone (get_retry_after)
    )  # fmt: skip
    return _Session(settings_from, retry)


def storage_session(settings_from: Optional[requests.Session] = None) -> requests.Session:
    """A session for the storage host: the caller's settings as above, no credential, no retries of its own."""
    return _Session(settings_from, 0)


def no_credentials(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """As ``auth``: keep requests from adding a ``.netrc`` login or a session's credentials to ours."""
    return request


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
    """What went wrong on the network, in words, without the request (whose headers hold the credential:
    a ``requests`` exception must not travel on as its context). ``not_sent``: nothing was sent."""

    def __init__(self, reason: str, not_sent: bool):
        super().__init__(reason)
        self.not_sent = not_sent

    @classmethod
    def of(cls, error: requests.RequestException, cut_after: Optional[float] = None) -> NetworkProblem:
        """Describe ``error``; ``cut_after``: the guard cut the request after so many seconds."""
        if cut_after is not None:
            return cls(f"no complete answer within {cut_after:g} s", not_sent=False)
        # Not sent, only when it provably never left: it could not be built, no connection to the first hop
        # (the service, or a proxy) was made, a proxy refused the tunnel, or the certificate failed verification.
        # An export is resent only on its word: any other ProxyError or SSLError can come after it was delivered.
        never_opened = (NewConnectionError, ConnectTimeoutError, socket.gaierror, ssl.SSLCertVerificationError)
        if isinstance(error, (InvalidHeader, InvalidURL, InvalidSchema, MissingSchema)) or any(
            isinstance(cause, never_opened)
            # http.client's CONNECT to a proxy that refused (urllib3 raises it from connect()).
            or (isinstance(cause, OSError) and str(cause).startswith("Tunnel connection failed"))
            for cause in _causes(error)
        ):
            return cls(unreachable_reason(error), not_sent=True)
        return cls(type(error).__name__, not_sent=False)


def unreachable_reason(error: requests.RequestException) -> str:
    """Why no connection could be made, in words a user can act on (DNS, refused, a proxy...)."""
    if isinstance(error, requests.exceptions.ProxyError):
        return "the proxy refused the connection (check HTTPS_PROXY and NO_PROXY)"
    for cause in _causes(error):
        if isinstance(cause, socket.gaierror):
            return "its name could not be resolved (DNS): check the address and your network"
        if isinstance(cause, ConnectionRefusedError):
            return "the connection was refused: nothing listens at that address and port"
    return f"no connection could be made ({type(error).__name__})"


# Reads start small enough for a slow but living transfer (a chunk per STALL_SECONDS), then grow with the
# speed to what arrives in a tenth of a second.
_FIRST_READ, _READ, _READ_SECONDS = 64 * 1024, 1024 * 1024, 0.1
_CONTENT_RANGE = re.compile(r"\s*bytes\s+([0-9]+)-([0-9]+)/([0-9]+|\*)\s*", re.ASCII)  # start-end/total
_REPORT_EVERY = 0.25  # seconds between calls of a progress callback
Progress = Callable[[int, Optional[int]], None]
#: Seconds an attempt may go without a chunk arriving before it is cut.
STALL_SECONDS = 30.0
#: Attempts per download, each resuming where the last one stopped.
ATTEMPTS = 5
#: The largest video accepted unless the caller says otherwise (20 GiB).
MAX_VIDEO_BYTES = 20 * 1024**3
#: Seconds before the second attempt; each next one waits twice as long (4 s at most).
RETRY_PAUSE = 0.125
# Errors after which a transfer resumes (the body is read from urllib3, whose errors are not requests').
_TRANSIENT = (requests.ConnectionError, requests.Timeout, Urllib3Error)
# How video containers begin: an ISO/QuickTime box type at offset 4, or a signature at offset 0
# (Matroska/WebM, MPEG-PS, FLV; AVI is RIFF's "AVI ").
_BOX_TYPES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
_SIGNATURES = (b"\x1a\x45\xdf\xa3", b"\x00\x00\x01\xba", b"FLV\x01")
#: Bytes kept to tell (12 suffice) and to quote in an error.
SNIFF_BYTES = 64


@dataclass(frozen=True)
class SavedVideo:
    """A downloaded video: where it is, its size, its SHA-256 (hex) and how it was verified."""

    path: Path
    size: int
    sha256: str
    #: The check that passed ("md5 (ETag)", "Content-MD5", "sha256 (x-amz-checksum-sha256)"); None: none offered.
    verified: Optional[str] = None


def save_video(
    session: requests.Session,
    url: str,
    folder: Path,
    name: str,
    request_timeout: RequestTimeout,
    *,
    progress: Optional[Progress] = None,
    max_bytes: int = MAX_VIDEO_BYTES,
) -> SavedVideo:
    """Download ``url`` into ``folder`` under ``name`` (or ``name-2``...): streamed into a temporary file
    (resumed with a ``Range`` request after a cut-off, restarted where the host will not resume or the video
    changed), checked (a video container, not an error page; whole, as its length and MP4 boxes tell; the
    host's checksum), then linked under its name, never replacing a file. The storage host never receives a
    credential. ``progress`` gets the bytes received and the total (or None) at most four times a second and
    at the end; a body past ``max_bytes`` is refused."""
    temporary = folder / f".{truncate_utf8(name, 60)}.{secrets.token_hex(4)}.part"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        # No fsync: the file takes its name only once complete (what a killed process needs); after a power
        # cut, the journal's recorded size tells a file the disk did not keep, and it is fetched again.
        with open(temporary, "xb") as out:
            transfer = _Transfer(session, url, out, request_timeout, max_bytes, progress)
            size, sha256 = transfer.run()
        path = place(temporary, folder, name, same=lambda path: _holds(path, size, sha256))
    except BaseException as error:
        with contextlib.suppress(OSError):  # the folder itself may be what failed (a file in its place)
            temporary.unlink()
        if isinstance(error, OSError):  # a full disk, a name the file system refuses, a folder not allowed...
            raise DownloadError(f"cannot save the video into {folder}: {error.strerror or error}") from None
        raise
    logger.info("saved %s (%d bytes, sha256 %s; %s)", path, size, sha256, transfer.verified or "no checksum offered")
    return SavedVideo(path, size, sha256, transfer.verified)


class _Transfer:
    """One video's bytes, streamed into ``out`` over up to :data:`ATTEMPTS` requests."""

    def __init__(
        self,
        session: requests.Session,
        url: str,
        out: IO[bytes],
        request_timeout: RequestTimeout,
        max_bytes: int,
        progress: Optional[Progress],
    ):
        self.get = functools.partial(session.get, url, stream=True, timeout=request_timeout, auth=no_credentials)
        self.out, self.max_bytes, self.next_report = out, max_bytes, 0.0
        self.where = urlsplit(url)._replace(query="", fragment="").geturl()  # no query: it may hold a signature
        self.seconds = request_seconds(request_timeout)  # an attempt's first bound: to connect and answer
        self.progress: Progress = progress if progress is not None else (lambda received, total: None)
        self.validator: Optional[str] = None  # the ETag or Last-Modified a resume must match
        self.problem = self.content_type = ""  # problem: why the last attempt stopped short
        self.verified: Optional[str] = None
        self.checked_again = False  # a mismatch is fetched again once
        self.restart()

    def restart(self) -> None:
        """Forget every byte received: the next request starts from byte 0."""
        self.out.seek(0)
        self.out.truncate()
        self.received, self.head, self.walk = 0, b"", BoxWalk()  # head: the first bytes, to tell a video
        self.total: Optional[int] = None
        self.end: Optional[int] = None  # where the answer being read ends, when announced
        self.digests = {"sha256": hashlib.sha256()}  # and the host's algorithm, where it offers a checksum
        self.expected: Optional[Expected] = None

    def run(self) -> Tuple[int, str]:
        """Returns the number of bytes written and their SHA-256."""
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if self.attempt():
                    self.progress(self.received, self.total)
                    return self.received, self.digests["sha256"].hexdigest()
            except _TRANSIENT as error:
                self.problem = type(error).__name__
            except requests.RequestException as error:  # a redirect loop, a bad scheme...
                raise DownloadError(f"{self.where}: the download failed ({type(error).__name__}: {error})") from None
            if self.guard.fired:
                self.problem = f"no progress for {STALL_SECONDS:g} s"
            logger.warning(
                "download of %s interrupted (%s) at %d of %s bytes; attempt %d of %d",
                self.where, self.problem, self.received, "?" if self.total is None else self.total, attempt, ATTEMPTS,
            )  # fmt: skip
            self.progress(self.received, self.total)  # where a caller that stops the download learns it
            # The pause tells the caller every tenth of a second: a batch that stops meanwhile ends it at once.
            end = time.monotonic() + (min(RETRY_PAUSE * 2**attempt, 4.0) if attempt < ATTEMPTS else 0.0)
            while (left := end - time.monotonic()) > 0:
                time.sleep(min(left, 0.1))
                self.progress(self.received, self.total)
        total = self.total if self.total is not None else "an unknown number of"
        raise DownloadError(
            f"{self.where}: only {self.received} of {total} bytes arrived after {ATTEMPTS} attempts ({self.problem})"
        )

    def attempt(self) -> bool:
        """One request; True when the whole body has arrived."""
        # None removes a header: an Authorization a caller's session carries, an If-Range without a validator.
        headers = {"Authorization": None, "Accept-Encoding": "identity"}
        if self.received:
            headers.update({"Range": f"bytes={self.received}-", "If-Range": self.validator})
        # The guard starts with the time to connect and answer; each chunk received buys STALL_SECONDS more.
        with guarded(self.seconds) as self.guard, self.get(headers=headers) as response:
            if not self.begin(response):
                return False
            self.stream(response.raw)
        if self.guard.fired or (self.total is not None and self.received < self.total):
            self.problem = "the connection closed early"
            return False
        if len(self.head) < SNIFF_BYTES:  # a body too short to have been checked as it arrived
            self.check_video()
        return self.complete()

    def begin(self, response: requests.Response) -> bool:
        """The answer's status: a resumed part, or the whole; False for a part of another version."""
        status, headers = response.status_code, response.headers
        self.content_type = headers.get("Content-Type", "")
        if status == 206 and self.received:
            match = _CONTENT_RANGE.fullmatch(headers.get("Content-Range", ""))
            whole = None if match is None or match[3] == "*" else int(match[3])
            now = validator(response)
            # A host that ignores If-Range answers 206 with new bytes: spliced onto the old, neither video.
            if (
                match is None
                or int(match[1]) != self.received
                or (self.validator and now and now != self.validator)
                or (self.total is not None and whole is not None and whole != self.total)
            ):
                self.restart()
                self.problem = "the part sent does not continue the bytes received (the video changed?)"
                logger.info("download of %s: %s; restarting", self.where, self.problem)
                return False
            self.total, self.end = self.total if whole is None else whole, int(match[2]) + 1
        elif status == 200:
            self.restart()  # where the host ignored the range: from byte 0 again
            length = headers.get("Content-Length")
            self.total = self.end = int(length) if length and length.isascii() and length.isdigit() else None
            self.validator = validator(response)
            # Only a whole-object answer's checksums cover the whole object; nothing was hashed yet.
            self.expected = expected_digest(headers)
            if self.expected is not None:
                self.digests[self.expected.algorithm] = hashlib.new(self.expected.algorithm)
        else:
            raise DownloadError(f"the download host answered HTTP {status} for {self.where}", status=status)
        # A compressed body is not the video, and inflating it could fill the disk (a gzip bomb).
        encoding = headers.get("Content-Encoding", "").strip().lower()
        if encoding not in ("", "identity"):
            raise DownloadError(f"{self.where}: the host compressed the video although asked not to ({encoding})")
        if self.total is not None and self.total > self.max_bytes:
            raise DownloadError(
                f"{self.where} announces {self.total} bytes, more than the {self.max_bytes} bytes allowed (max_bytes)"
            )
        return True

    def stream(self, raw: Any) -> None:
        """The raw body (never decoded) into the file, at most to its announced end, or to ``max_bytes``."""
        limit = self.end if self.end is not None else self.max_bytes
        size, started, first = _FIRST_READ, time.monotonic(), self.received
        while chunk := raw.read(size, decode_content=False):
            now = time.monotonic()
            self.guard.reset(STALL_SECONDS)  # from the first chunk on, only the stall bound counts
            speed = (self.received + len(chunk) - first) / max(now - started, 1e-3)
            size = int(min(_READ, max(_FIRST_READ, speed * _READ_SECONDS)))
            if self.received + len(chunk) > limit:
                raise DownloadError(
                    f"{self.where}: the host sent more bytes than announced ({limit})"
                    if self.end is not None
                    else f"{self.where}: the body runs on, more than the {limit} bytes allowed (max_bytes)"
                )
            self.head += chunk[: SNIFF_BYTES - len(self.head)]
            if self.received < SNIFF_BYTES <= len(self.head):
                self.check_video()  # an error page is refused at its first bytes, not after all of them
            self.out.write(chunk)
            for digest in self.digests.values():
                digest.update(chunk)
            self.walk.feed(chunk)
            self.received += len(chunk)
            if now >= self.next_report:
                self.next_report = now + _REPORT_EVERY
                self.progress(self.received, self.total)

    def complete(self) -> bool:
        """Whether the bytes received are the whole video: an MP4 ends where its last top-level box does. A
        mismatch with the host's checksum is fetched again once (a transfer's accident), then refused."""
        verdict = self.walk.verdict(announced=self.total is not None) if is_iso_media(self.head) else None
        if verdict is not None and self.total is None:
            self.problem = verdict
            return False
        if verdict is not None:
            raise DownloadError(f"{self.where}: all {self.total} bytes announced arrived, but {verdict}")
        expected = self.expected
        if expected is None or self.digests[expected.algorithm].digest() == expected.digest:
            self.verified = None if expected is None else expected.label
            return True
        self.problem = f"the bytes received do not match their {expected.label}"
        if self.checked_again:
            raise DownloadError(f"{self.where}: {self.problem}, twice")
        self.checked_again = True
        self.restart()
        return False

    def check_video(self) -> None:
        """Refuse an error page delivered as if it were the video."""
        if not looks_like_video(self.head, self.total):
            kind = self.content_type.split(";")[0].strip() or "no content type"
            raise DownloadError(
                f"{self.where} did not send a video ({kind}, starting {self.head.decode(errors='replace')!r}); "
                "it is often an error page from the storage host, so nothing was saved"
            )


def _holds(path: Path, size: int, sha256: str) -> bool:
    """Whether the file at ``path`` has exactly ``size`` bytes with this SHA-256."""
    with contextlib.suppress(OSError):
        if path.is_file() and path.stat().st_size == size:
            digest = hashlib.sha256()
            with open(path, "rb") as existing:
                for block in iter(lambda: existing.read(1024 * 1024), b""):
                    digest.update(block)
            return digest.hexdigest() == sha256
    return False


def validator(response: requests.Response) -> Optional[str]:
    """What tells this version of the video from another: a strong ETag, else Last-Modified."""
    etag = response.headers.get("ETag")
    return etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified")


def looks_like_video(head: bytes, total: Optional[int]) -> bool:
    """Whether a file's first bytes are those of a video container."""
    if is_iso_media(head):
        # Text can have these letters there too ("The free trial..."): unless ftyp, the size must be plausible.
        size = int.from_bytes(head[:4], "big")
        return head[4:8] == b"ftyp" or size == 1 or (size >= 8 and (size <= total if total else head[0] == 0))
    return head.startswith(_SIGNATURES) or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")


def is_iso_media(head: bytes) -> bool:
    """Whether a video's first bytes are an ISO/QuickTime box (MP4, MOV, M4V): see :class:`BoxWalk`."""
    return head[4:8] in _BOX_TYPES


@dataclass
class BoxWalk:
    """An MP4's top-level boxes followed as its bytes stream by, to tell a whole file from a cut one when no
    length was announced: they add up exactly to a whole file's length. Each box begins with a 4-byte
    big-endian size (1: a 64-bit size follows; 0: the box runs to the end of the file) and a 4-byte type.
    Only box boundaries cost anything: a chunk in the middle of a large ``mdat`` box is only counted."""

    position: int = 0  # bytes fed so far
    boundary: int = 0  # where the next box begins
    header: bytearray = field(default_factory=bytearray)  # the next box's header, when split across chunks
    kind: bytes = b""  # the type of the box being fed
    kinds: Set[bytes] = field(default_factory=set)
    open_ended: bool = False  # a size-0 box: it ends where the file does
    problem: Optional[str] = None

    def feed(self, chunk: bytes) -> None:
        start = self.position
        self.position += len(chunk)
        while self.problem is None and not self.open_ended and self.boundary < self.position:
            at = max(self.boundary - start, 0)
            self.header += chunk[at : at + 16 - len(self.header)]
            if len(self.header) < 8 or (self.header[:4] == b"\0\0\0\1" and len(self.header) < 16):
                return  # the rest of the header comes with the next chunk
            size, self.kind = int.from_bytes(self.header[:4], "big"), bytes(self.header[4:8])
            self.kinds.add(self.kind)
            size, header_size = (int.from_bytes(self.header[8:16], "big"), 16) if size == 1 else (size, 8)
            self.header = bytearray()
            if size == 0:
                self.open_ended = True
            elif size < header_size:
                self.problem = f"a box at byte {self.boundary} has an impossible size ({size})"
            else:
                self.boundary += size

    def verdict(self, announced: bool = False) -> Optional[str]:
        """``None`` when the bytes fed so far are a whole file; else what is wrong. ``announced``: their
        length was announced and all of it came."""
        if self.problem is not None:
            return self.problem
        # A cut exactly between boxes adds up too: a video has its index (moov) and its media (mdat).
        missing = " and ".join(kind.decode() for kind in (b"moov", b"mdat") if kind not in self.kinds)
        name = self.kind.decode("latin-1")
        if self.open_ended and not (missing or announced):  # nothing tells its end from a cut
            return f"its last MP4 box ({name!r}) runs to the end of the file: without an announced length, maybe cut"
        if self.open_ended:  # a size-0 box ends the walk, but the file must still be a video
            return f"the file has no MP4 {missing} box before the one that runs to its end" if missing else None
        if self.boundary > self.position:
            return f"the file ends inside its MP4 box {name!r}, {self.boundary - self.position} bytes short"
        if self.header:
            return f"the file ends inside an MP4 box header at byte {self.boundary}"
        return f"the file ends before its MP4 {missing} box" if missing else None


class Expected(NamedTuple):
    """A checksum of the whole video, as the host gave it."""

    label: str  # how SavedVideo.verified names the check
    algorithm: str  # "sha256" or "md5"
    digest: bytes


def expected_digest(headers: Mapping[str, str]) -> Optional[Expected]:
    """The whole-object checksum a 200 answer offers, strongest first."""
    for header, label, algorithm, size in (
        ("x-amz-checksum-sha256", "sha256 (x-amz-checksum-sha256)", "sha256", 32),
        ("Content-MD5", "Content-MD5", "md5", 16),
    ):
        try:
            digest = base64.b64decode(headers.get(header) or "", validate=True)
        except ValueError:  # not base64 (binascii.Error), or not ASCII
            continue
        if len(digest) == size:
            return Expected(label, algorithm, digest)
    # A plain quoted MD5 is S3's ETag of a single-part upload; a multipart ETag ("...-N") or a weak one
    # says nothing of the bytes, and neither does the ETag of an object S3 encrypts with KMS or a customer key.
    etag = re.fullmatch(r'"([0-9a-fA-F]{32})"', headers.get("ETag", ""))
    encrypted = headers.get("x-amz-server-side-encryption", "").startswith("aws:kms") or (
        "x-amz-server-side-encryption-customer-algorithm" in headers
    )
    return Expected("md5 (ETag)", "md5", bytes.fromhex(etag.group(1))) if etag and not encrypted else None
