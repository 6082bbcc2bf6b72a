"""Downloading a finished video: streamed into a temporary file (resumed
with a ``Range`` request after a cut-off, restarted where the host will not
resume or the video changed), checked (length, MP4 boxes, the host's
checksum), then linked under its name, never replacing a file. The storage
host (a bucket on another domain) never receives a credential."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Callable, Dict, Optional, Tuple
from urllib.parse import urlsplit

import requests
from urllib3.exceptions import HTTPError as Urllib3Error

from ._containers import SNIFF_BYTES, BoxWalk, Expected, expected_digest, is_iso_media, looks_like_video
from ._deadlines import Guard, guarded
from ._jobs import place, truncate_utf8
from ._reports import DownloadError
from ._transport import RequestTimeout, no_credentials, request_seconds

logger = logging.getLogger("aistudios_chromakey")

# Only a chunk's arrival pushes an attempt's deadline on: reads start small enough for a slow but living
# transfer (a chunk per STALL_SECONDS), then grow with the speed to what arrives in a tenth of a second.
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
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError, Urllib3Error)


@dataclass(frozen=True)
class SavedVideo:
    """A downloaded video: where it is, its size, its SHA-256 (hex) and how it was verified."""

    path: Path
    size: int
    sha256: str
    #: The check that passed ("md5 (ETag)", "Content-MD5", "sha256 (x-amz-checksum-sha256)"); None: none offered.
    verified: Optional[str] = None


def where(url: str) -> str:
    """The address without its query, which may hold a signature."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


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
    """Download ``url`` into ``folder`` under ``name`` (or ``name-2``...).
    ``progress`` gets the bytes received and the total (or None) at most four
    times a second and at the end; a body past ``max_bytes`` is refused."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(f"cannot create the output folder {folder}: {error.strerror}") from None
    temporary = folder / f".{truncate_utf8(name, 60)}.{secrets.token_hex(4)}.part"
    logger.info("downloading %s into %s", where(url), folder)
    try:
        # No fsync: the file takes its name only once complete (what a killed process needs); after a power
        # cut, the journal's recorded size tells a file the disk did not keep, and it is fetched again.
        with open(temporary, "xb") as out:
            transfer = _Transfer(session, url, out, request_timeout, max_bytes, progress)
            size, sha256 = transfer.run()
        path = place(temporary, folder, name, same=lambda path: _holds(path, size, sha256))
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):  # a full disk, a name the file system refuses...
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
        self.out, self.where, self.max_bytes, self.next_report = out, where(url), max_bytes, 0.0
        self.seconds = request_seconds(request_timeout)  # an attempt's first bound: to connect and answer
        self.progress: Progress = progress if progress is not None else (lambda received, total: None)
        self.validator: Optional[str] = None  # the ETag or Last-Modified a resume must match
        self.problem = ""  # why the last attempt stopped short
        self.verified: Optional[str] = None
        self.checked_again = False  # a mismatch is fetched again once
        self.restart()

    def restart(self) -> None:
        """Forget every byte received: the next request starts from byte 0."""
        self.out.seek(0)
        self.out.truncate()
        self.received, self.head, self.walk = 0, b"", BoxWalk()  # head: the first bytes, until checked
        self.total: Optional[int] = None
        self.end: Optional[int] = None  # where the answer being read ends, when announced
        self.digests = {"sha256": hashlib.sha256()}  # and the host's algorithm, where it offers a checksum
        self.expected: Optional[Expected] = None

    def run(self) -> Tuple[int, str]:
        """Returns the number of bytes written and their SHA-256."""
        for attempt in range(1, ATTEMPTS + 1):
            self.problem = "no answer"
            try:
                if self.attempt():
                    self.progress(self.received, self.total)
                    return self.received, self.digests["sha256"].hexdigest()
            except _TRANSIENT as error:
                self.problem = self.problem if self.problem.startswith("no progress") else type(error).__name__
            except requests.RequestException as error:  # a redirect loop, a bad scheme...
                raise DownloadError(f"{self.where}: the download failed ({type(error).__name__}: {error})") from None
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
            f"{self.where}: only {self.received} of {total} bytes arrived after {ATTEMPTS} attempts "
            f"({self.problem}); nothing was saved"
        )

    def attempt(self) -> bool:
        """One request; True when the whole body has arrived."""
        # Authorization: None removes any such header a caller's session carries.
        headers: Dict[str, Optional[str]] = {"Authorization": None, "Accept-Encoding": "identity"}
        if self.received:
            headers["Range"] = f"bytes={self.received}-"
            if self.validator:
                headers["If-Range"] = self.validator
        # A read timeout bounds each read, not the transfer (a trickle never times out): the guard starts
        # with the time to connect and answer, and each chunk received buys STALL_SECONDS more.
        with guarded(self.seconds) as guard, self.get(headers=headers) as response:
            if not self.begin(response):
                return False
            content_type = response.headers.get("Content-Type", "")
            try:
                self.stream(response.raw, guard, content_type)
            finally:
                if guard.fired:
                    self.problem = f"no progress for {STALL_SECONDS:g} s"
        if guard.fired:
            return False
        if self.total is not None and self.received < self.total:
            self.problem = "the connection closed early"
            return False
        if len(self.head) < SNIFF_BYTES:
            self.check_video(content_type)
        return self.complete()

    def begin(self, response: requests.Response) -> bool:
        """The answer's status: a resumed part, or the whole; False for a part of another version."""
        status, headers = response.status_code, response.headers
        if status == 206 and self.received:
            match = _CONTENT_RANGE.fullmatch(headers.get("Content-Range", ""))
            start = int(match[1]) if match else None
            if match is None or start != self.received:
                raise DownloadError(f"the server resumed at byte {start}, not at {self.received}")
            whole = None if match[3] == "*" else int(match[3])
            # A host that ignores If-Range answers 206 with new bytes: spliced onto the old, neither video.
            now, changed = validator(response), ""
            if self.validator and now and now != self.validator:
                changed = f"{self.validator} to {now}"
            elif self.total is not None and whole is not None and whole != self.total:
                changed = f"{self.total} to {whole} bytes"
            if changed:
                self.restart()
                self.problem = f"the video changed on the host (from {changed})"
                logger.info("download of %s: %s; restarting", self.where, self.problem)
                return False
            self.total, self.end = self.total if whole is None else whole, int(match[2]) + 1
        elif status == 200:
            if self.received:
                logger.info("download of %s: the server ignored the range; restarting", self.where)
                self.restart()
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
            raise DownloadError(
                f"{self.where}: the host compressed the video although asked not to "
                f"(Content-Encoding: {encoding}); nothing was saved"
            )
        if self.total is not None and self.total > self.max_bytes:
            raise DownloadError(
                f"{self.where} announces {self.total} bytes, more than the {self.max_bytes} bytes allowed "
                "(max_bytes); nothing was saved"
            )
        return True

    def stream(self, raw: Any, guard: Guard, content_type: str) -> None:
        """The raw body (never decoded) into the file, at most to its announced end, or to ``max_bytes``."""
        limit = self.end if self.end is not None else self.max_bytes
        size, started, first = _FIRST_READ, time.monotonic(), self.received
        while chunk := raw.read(size, decode_content=False):
            now = time.monotonic()
            guard.reset(STALL_SECONDS)  # from the first chunk on, only the stall bound counts
            speed = (self.received + len(chunk) - first) / max(now - started, 1e-3)
            size = int(min(_READ, max(_FIRST_READ, speed * _READ_SECONDS)))
            if self.received + len(chunk) > limit:
                raise DownloadError(
                    f"{self.where}: the host sent more bytes than announced ({limit}); nothing was saved"
                    if self.end is not None
                    else f"{self.where}: the body runs on, more than the {limit} bytes allowed (max_bytes); "
                    "nothing was saved"
                )
            if len(self.head) < SNIFF_BYTES:
                self.head += chunk[: SNIFF_BYTES - len(self.head)]
                if len(self.head) == SNIFF_BYTES:
                    self.check_video(content_type)
            self.out.write(chunk)
            # Hashed on the reading thread: a few per cent of a download (benchmarks/RESULTS.md), not worth a thread.
            for digest in self.digests.values():
                digest.update(chunk)
            self.walk.feed(chunk)
            self.received += len(chunk)
            if now >= self.next_report:
                self.next_report = now + _REPORT_EVERY
                self.progress(self.received, self.total)

    def complete(self) -> bool:
        """Whether the bytes received are the whole video. An MP4 ends where its last top-level box does
        (without an announced length, that alone tells a cut from the end); a mismatch with the host's
        checksum is fetched again once (a transfer's accident), then refused."""
        verdict = self.walk.verdict(announced=self.total is not None) if is_iso_media(self.head) else None
        if verdict is not None and self.total is None:
            self.problem = verdict
            return False
        if verdict is not None:
            raise DownloadError(
                f"{self.where}: all {self.total} bytes announced arrived, but {verdict}: the stored video "
                "is incomplete; nothing was saved"
            )
        expected = self.expected
        if expected is None or self.digests[expected.algorithm].digest() == expected.digest:
            self.verified = None if expected is None else expected.label
            return True
        self.problem = f"the bytes received do not match their {expected.label}"
        if self.checked_again:
            raise DownloadError(f"{self.where}: {self.problem}, twice; nothing was saved")
        self.checked_again = True
        self.restart()
        return False

    def check_video(self, content_type: str) -> None:
        """Refuse an error page delivered as if it were the video."""
        if not looks_like_video(self.head, self.total):
            kind, preview = content_type.split(";")[0].strip() or "no content type", self.head.decode(errors="replace")
            raise DownloadError(
                f"{self.where} did not send a video ({kind}, starting {preview!r}); "
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
