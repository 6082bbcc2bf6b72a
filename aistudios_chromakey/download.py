"""Downloading a finished video: streamed, verified, atomic, resumable.

Named steps, in order: :func:`save_video` makes a temporary file beside the
target, :class:`_Transfer` streams the body into it (resuming with a
``Range`` request after a cut-off, restarting where the server will not
resume), the length and the container are checked, and :func:`place` links
the file under its final name, which never replaces an existing file. The
storage host (a bucket on another domain) never receives a credential.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Dict, Optional, Tuple
from urllib.parse import urlsplit

import requests

from ._transport import RequestTimeout, guarded, request_seconds
from .containers import SNIFF_BYTES, looks_like_video
from .errors import DownloadError
from .names import truncate_utf8

logger = logging.getLogger("aistudios_chromakey")

# Reads small enough that a slow but living transfer (a chunk per
# STALL_SECONDS) keeps pushing its deadline on.
_CHUNK = 64 * 1024
#: Seconds an attempt may go without a chunk arriving before it is cut.
STALL_SECONDS = 30.0
#: Attempts per download, each resuming where the last one stopped.
ATTEMPTS = 5
#: Seconds before the second attempt; each next one waits twice as long (4 s at most).
RETRY_PAUSE = 0.125
_NO_HARD_LINKS = frozenset(
    code for code in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS) if code
)
# Errors after which a transfer is tried again from where it stopped.
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


@dataclass(frozen=True)
class SavedVideo:
    """A downloaded video: where it is, its size and its SHA-256 (hex)."""

    path: Path
    size: int
    sha256: str


def where(url: str) -> str:
    """The address without its query, which may hold a signature."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def save_video(
    session: requests.Session, url: str, folder: Path, name: str, request_timeout: RequestTimeout
) -> SavedVideo:
    """Download ``url`` into ``folder`` under ``name`` (or ``name-2``...)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(f"cannot create the output folder {folder}: {error.strerror}") from None
    temporary = folder / f".{truncate_utf8(name, 60)}.{secrets.token_hex(4)}.part"
    logger.info("downloading %s into %s", where(url), folder)
    try:
        # No fsync: the file takes its name only once complete, which is what
        # a killed process needs; after a power cut the journal's recorded
        # size tells a file the disk did not keep, and it is fetched again.
        with open(temporary, "xb") as out:
            size, sha256 = _Transfer(session, url, out, request_timeout).run()
        path = place(temporary, folder, name)
    except OSError as error:  # a full disk, a name the file system refuses...
        temporary.unlink(missing_ok=True)
        raise DownloadError(f"cannot save the video into {folder}: {error.strerror or error}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    logger.info("saved %s (%d bytes, sha256 %s)", path, size, sha256)
    return SavedVideo(path, size, sha256)


class _Transfer:
    """One video's bytes, streamed into ``out`` over up to :data:`ATTEMPTS`
    requests."""

    def __init__(self, session: requests.Session, url: str, out: IO[bytes], request_timeout: RequestTimeout):
        self.session, self.url, self.out, self.request_timeout = session, url, out, request_timeout
        self.validator: Optional[str] = None  # the ETag or Last-Modified a resume must match
        self.stalled = ""  # why the last attempt was cut, when its guard cut it
        self.restart()

    def restart(self) -> None:
        """Forget every byte received: the next request starts from byte 0."""
        self.out.seek(0)
        self.out.truncate()
        self.received = 0
        self.total: Optional[int] = None
        self.digest = hashlib.sha256()
        self.head = b""  # the file's first bytes, until they are checked

    def run(self) -> Tuple[int, str]:
        """Returns the number of bytes written and their SHA-256."""
        problem = "no answer"
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if self.attempt():
                    return self.received, self.digest.hexdigest()
                problem = self.stalled or "the connection closed early"
            except _TRANSIENT as error:
                problem = self.stalled or type(error).__name__
            except requests.RequestException as error:  # a redirect loop, a bad scheme, a broken encoding...
                raise DownloadError(
                    f"{where(self.url)}: the download failed ({type(error).__name__}: {error})"
                ) from None
            total = self.total if self.total is not None else "?"
            logger.warning(
                "download of %s interrupted (%s) at %d of %s bytes; attempt %d of %d",
                where(self.url), problem, self.received, total, attempt, ATTEMPTS,
            )  # fmt: skip
            if attempt < ATTEMPTS:
                time.sleep(min(RETRY_PAUSE * 2**attempt, 4.0))
        total = self.total if self.total is not None else "an unknown number of"
        raise DownloadError(
            f"{where(self.url)}: only {self.received} of {total} bytes arrived after {ATTEMPTS} attempts "
            f"({problem}); nothing was saved"
        )

    def attempt(self) -> bool:
        """One request; True when the whole body has arrived."""
        # Authorization: None removes any such header a caller's session carries.
        headers: Dict[str, Optional[str]] = {"Authorization": None, "Accept-Encoding": "identity"}
        if self.received:
            headers["Range"] = f"bytes={self.received}-"
            if self.validator:
                headers["If-Range"] = self.validator
        # A read timeout bounds each read, not the transfer: a trickle never
        # times out. The guard starts with the time to connect and answer,
        # and each chunk received buys STALL_SECONDS more.
        self.stalled = ""
        with guarded(request_seconds(self.request_timeout)) as guard, self.get(headers) as response:
            self.begin(response)
            content_type = response.headers.get("Content-Type", "")
            for chunk in response.iter_content(chunk_size=_CHUNK):
                guard.extend(STALL_SECONDS)
                self.take(chunk, content_type)
        if guard.fired:
            self.stalled = f"no progress for {STALL_SECONDS:g} s"
            return False
        if self.total is not None and self.received < self.total:
            return False
        if self.total is not None and self.received > self.total:
            raise DownloadError(
                f"{where(self.url)}: received {self.received} bytes, more than the announced {self.total}"
            )
        if len(self.head) < SNIFF_BYTES:
            self.check_video(content_type)
        return True

    def get(self, headers: Dict[str, Optional[str]]) -> requests.Response:
        return self.session.get(
            self.url, stream=True, headers=headers, timeout=self.request_timeout, auth=_no_credentials
        )

    def begin(self, response: requests.Response) -> None:
        """Make sense of the answer's status: a resumed part, or the whole."""
        status = response.status_code
        if status == 206 and self.received:
            start, whole = content_range(response.headers.get("Content-Range"))
            if start != self.received:
                raise DownloadError(f"the server resumed at byte {start}, not at {self.received}")
            self.total = whole if whole is not None else self.total
        elif status == 200:
            if self.received:
                logger.info("download of %s: the server ignored the range; restarting", where(self.url))
                self.restart()
            length = response.headers.get("Content-Length")
            self.total = int(length) if length and length.isdigit() else None
            etag = response.headers.get("ETag")
            self.validator = etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified")
        else:
            raise DownloadError(f"the download host answered HTTP {status} for {where(self.url)}", status=status)

    def take(self, chunk: bytes, content_type: str) -> None:
        if len(self.head) < SNIFF_BYTES:
            self.head += chunk[: SNIFF_BYTES - len(self.head)]
            if len(self.head) == SNIFF_BYTES:
                self.check_video(content_type)
        self.out.write(chunk)
        self.digest.update(chunk)
        self.received += len(chunk)

    def check_video(self, content_type: str) -> None:
        """Refuse an error page delivered as if it were the video."""
        if looks_like_video(self.head, self.total):
            return
        kind = content_type.split(";")[0].strip() or "no content type"
        preview = self.head[:SNIFF_BYTES].decode("utf-8", errors="replace")
        raise DownloadError(
            f"{where(self.url)} did not send a video ({kind}, starting {preview!r}); "
            "it is often an error page from the storage host, so nothing was saved"
        )


def content_range(value: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
    """``(start, total)`` of a ``Content-Range: bytes start-end/total`` header."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    if not match:
        return None, None
    total = None if match.group(2) == "*" else int(match.group(2))
    return int(match.group(1)), total


def _no_credentials(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """As ``auth``: add nothing, and keep requests from adding netrc or
    session credentials for the download host."""
    return request


def place(temporary: Path, folder: Path, name: str) -> Path:
    """Give ``temporary`` its final name without replacing any file: ``name``,
    else ``stem-2.ext``, ``stem-3.ext``..."""
    stem, dot, extension = name.rpartition(".")
    if not dot:
        stem, extension = name, ""
    for n in range(1, 10_000):
        candidate = folder / (name if n == 1 else f"{stem}-{n}{dot}{extension}")
        try:
            os.link(temporary, candidate)
        except FileExistsError:
            continue
        except OSError as error:
            if error.errno not in _NO_HARD_LINKS:
                raise
            # No hard links on this file system: fall back to a check and a rename.
            if candidate.exists():
                continue
            os.replace(temporary, candidate)
            return candidate
        os.unlink(temporary)
        return candidate
    raise DownloadError(f"{folder}: too many files named like {name!r}")
