"""Downloading a finished video: streamed, verified, atomic, resumable.

:func:`save_video` streams the body into a temporary file beside the target
(resuming with a ``Range`` request after a cut-off, restarting where the host
will not resume or the video changed), checks its length, its container (an
MP4's boxes) and any checksum the host offers, then links it under its final
name, never replacing an existing file. The storage host (a bucket on another
domain) never receives a credential.
"""

from __future__ import annotations

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
from ._errors import DownloadError
from ._names import place, truncate_utf8
from ._transport import RequestTimeout, no_credentials, request_seconds

logger = logging.getLogger("aistudios_chromakey")

# Only a chunk's arrival pushes an attempt's deadline on: reads start small enough for a slow but living
# transfer (a chunk per STALL_SECONDS), and grow with the speed (large reads cost less per byte) to what
# arrives in a tenth of a second, so that progress is told that often.
_FIRST_READ = 64 * 1024
_READ = 1024 * 1024
_READ_SECONDS = 0.1
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
# Errors after which a transfer resumes; the body is read from urllib3, whose errors are not requests' own.
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
        # No fsync: the file takes its name only once complete, which is what
        # a killed process needs; after a power cut the journal's recorded
        # size tells a file the disk did not keep, and it is fetched again.
        with open(temporary, "xb") as out:
            transfer = _Transfer(session, url, out, request_timeout, max_bytes, progress)
            size, sha256 = transfer.run()
        path = place(temporary, folder, name, same=lambda path: _holds(path, size, sha256))
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        if isinstance(error, OSError):  # a full disk, a name the file system refuses...
            raise DownloadError(f"cannot save the video into {folder}: {error.strerror or error}") from None
        raise
    checked = transfer.verified or "no checksum offered"
    logger.info("saved %s (%d bytes, sha256 %s; %s)", path, size, sha256, checked)
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
        self.session, self.url, self.out, self.request_timeout = session, url, out, request_timeout
        self.where, self.max_bytes, self.progress, self.next_report = where(url), max_bytes, progress, 0.0
        self.validator: Optional[str] = None  # the ETag or Last-Modified a resume must match
        self.problem = ""  # why the last attempt stopped short
        self.verified: Optional[str] = None
        self.checked_again = False  # a mismatch is fetched again once
        self.restart()

    def restart(self) -> None:
        """Forget every byte received: the next request starts from byte 0."""
        self.out.seek(0)
        self.out.truncate()
        self.received = 0
        self.total: Optional[int] = None
        self.end: Optional[int] = None  # where the answer being read ends, when announced
        self.sha256 = hashlib.sha256()
        self.md5: Optional[Any] = None  # only where the host offers an MD5
        self.expected: Optional[Expected] = None
        self.head = b""  # the file's first bytes, until they are checked
        self.walk = BoxWalk()

    def report(self) -> None:
        if self.progress is not None:
            self.progress(self.received, self.total)

    def run(self) -> Tuple[int, str]:
        """Returns the number of bytes written and their SHA-256."""
        for attempt in range(1, ATTEMPTS + 1):
            self.problem = "no answer"
            try:
                if self.attempt():
                    self.report()
                    return self.received, self.sha256.hexdigest()
            except _TRANSIENT as error:
                self.problem = self.problem if self.problem.startswith("no progress") else type(error).__name__
            except requests.RequestException as error:  # a redirect loop, a bad scheme...
                raise DownloadError(f"{self.where}: the download failed ({type(error).__name__}: {error})") from None
            logger.warning(
                "download of %s interrupted (%s) at %d of %s bytes; attempt %d of %d",
                self.where, self.problem, self.received, "?" if self.total is None else self.total, attempt, ATTEMPTS,
            )  # fmt: skip
            self.report()  # where a caller that stops the download learns it
            # The pause tells the caller every tenth of a second: a batch that stops meanwhile ends it at once.
            end = time.monotonic() + (min(RETRY_PAUSE * 2**attempt, 4.0) if attempt < ATTEMPTS else 0.0)
            while (left := end - time.monotonic()) > 0:
                time.sleep(min(left, 0.1))
                self.report()
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
        # A read timeout bounds each read, not the transfer: a trickle never
        # times out. The guard starts with the time to connect and answer,
        # and each chunk received buys STALL_SECONDS more.
        with guarded(request_seconds(self.request_timeout)) as guard, self.get(headers) as response:
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
        return self.whole_by_its_boxes() and self.intact()

    def get(self, headers: Dict[str, Optional[str]]) -> requests.Response:
        return self.session.get(
            self.url, stream=True, headers=headers, timeout=self.request_timeout, auth=no_credentials
        )

    def begin(self, response: requests.Response) -> bool:
        """Make sense of the answer's status: a resumed part, or the whole;
        False for a part of another version of the video."""
        status = response.status_code
        if status == 206 and self.received:
            start, end, whole = content_range(response.headers.get("Content-Range"))
            if start != self.received:
                raise DownloadError(f"the server resumed at byte {start}, not at {self.received}")
            # A host that ignores If-Range answers 206 for new bytes: spliced
            # onto the old ones they would make neither video.
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
            self.total = whole if whole is not None else self.total
            self.end = end
        elif status == 200:
            if self.received:
                logger.info("download of %s: the server ignored the range; restarting", self.where)
                self.restart()
            length = response.headers.get("Content-Length")
            self.total = self.end = int(length) if length and length.isascii() and length.isdigit() else None
            self.validator = validator(response)
            # Only a whole-object answer's checksums cover the whole object.
            self.expected = expected_digest(response.headers)
            if self.expected is not None and self.expected.algorithm == "md5":
                self.md5 = hashlib.md5()  # nothing was hashed yet: only now is MD5 known to be needed
        else:
            raise DownloadError(f"the download host answered HTTP {status} for {self.where}", status=status)
        # Asked for the bytes as stored: a compressed body is not the video,
        # and inflating it could fill the disk (a gzip bomb).
        encoding = response.headers.get("Content-Encoding", "").strip().lower()
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
        """Read the raw body (never decoded) into the file, at most to where
        it was announced to end, or to ``max_bytes``."""
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
            # Hashed on the thread that reads: it costs a few per cent of a
            # download (benchmarks/RESULTS.md), too little to pay a thread for.
            self.sha256.update(chunk)
            if self.md5 is not None:
                self.md5.update(chunk)
            self.walk.feed(chunk)
            self.received += len(chunk)
            if now >= self.next_report:
                self.next_report = now + _REPORT_EVERY
                self.report()

    def whole_by_its_boxes(self) -> bool:
        """An MP4 ends where its last top-level box does: without an announced
        length, that alone tells a clean cut-off from the end of the video."""
        verdict = self.walk.verdict(announced=self.total is not None) if is_iso_media(self.head) else None
        if verdict is None:
            return True
        if self.total is None:
            self.problem = verdict
            return False
        raise DownloadError(
            f"{self.where}: all {self.total} bytes announced arrived, but {verdict}: the stored video "
            "is incomplete; nothing was saved"
        )

    def intact(self) -> bool:
        """The bytes against the checksum the host gave, if any; a mismatch
        is fetched again once (a transfer's accident), then refused."""
        expected = self.expected
        if expected is None:
            return True
        actual = self.sha256 if expected.algorithm == "sha256" else self.md5
        if actual is not None and actual.digest() == expected.digest:
            self.verified = expected.label
            return True
        self.problem = f"the bytes received do not match their {expected.label}"
        if self.checked_again:
            raise DownloadError(f"{self.where}: {self.problem}, twice; nothing was saved")
        self.checked_again = True
        self.restart()
        return False

    def check_video(self, content_type: str) -> None:
        """Refuse an error page delivered as if it were the video."""
        if looks_like_video(self.head, self.total):
            return
        kind = content_type.split(";")[0].strip() or "no content type"
        preview = self.head[:SNIFF_BYTES].decode("utf-8", errors="replace")
        raise DownloadError(
            f"{self.where} did not send a video ({kind}, starting {preview!r}); "
            "it is often an error page from the storage host, so nothing was saved"
        )


def content_range(value: Optional[str]) -> Tuple[Optional[int], Optional[int], Optional[int]]:
    """``(start, end + 1, total)`` of a ``Content-Range: bytes start-end/total`` header."""
    match = re.fullmatch(r"\s*bytes\s+([0-9]+)-([0-9]+)/([0-9]+|\*)\s*", value or "", re.ASCII)
    if not match:
        return None, None, None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), int(match.group(2)) + 1, total


def _holds(path: Path, size: int, sha256: str) -> bool:
    """Whether the file at ``path`` has exactly ``size`` bytes with this SHA-256."""
    try:
        if not path.is_file() or path.stat().st_size != size:
            return False
        digest = hashlib.sha256()
        with open(path, "rb") as existing:
            for block in iter(lambda: existing.read(1024 * 1024), b""):
                digest.update(block)
    except OSError:
        return False
    return digest.hexdigest() == sha256


def validator(response: requests.Response) -> Optional[str]:
    """What tells this version of the video from another: a strong ETag, else Last-Modified."""
    etag = response.headers.get("ETag")
    return etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified")
