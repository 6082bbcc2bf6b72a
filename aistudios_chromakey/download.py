"""Downloading a finished video: streamed, verified, atomic, resumable.

The body is streamed in chunks into a temporary file beside the target, its
length is checked against ``Content-Length``, and only then is it linked into
place under its final name, which never replaces an existing file. A transfer
cut off half-way is resumed with a ``Range`` request where the server allows
it and restarted where it does not. The download host (a storage bucket on
another domain) never receives the API key.
"""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import re
import secrets
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Optional, Tuple, Union
from urllib.parse import unquote, urlsplit

import requests

from ._transport import DEFAULT_REQUEST_TIMEOUT, RequestTimeout, session_scope
from .errors import DownloadError

logger = logging.getLogger("aistudios_chromakey")

_CHUNK = 1024 * 1024
_ATTEMPTS = 5
_MAX_NAME_BYTES = 150
_DEFAULT_EXTENSION = ".mp4"
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"COM{i}" for i in range(1, 10)] + [f"LPT{i}" for i in range(1, 10)]
)
_NO_HARD_LINKS = frozenset(
    code for code in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS) if code
)
_UNSAFE = re.compile(r'[<>:"/\\|?*]')

# Errors after which a transfer is tried again from where it stopped.
_TRANSIENT = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


def _truncate_utf8(text: str, limit: int) -> str:
    encoded = text.encode("utf-8")[:limit]
    return encoded.decode("utf-8", errors="ignore")


def safe_filename(url: str, fallback: Optional[str] = None) -> str:
    """The file name the tutorial would use for ``url`` (the basename of its
    path), made safe to create in any folder.

    Percent-escapes are decoded, anything up to the last ``/`` or ``\\`` is
    dropped, control and reserved characters are replaced, leading dots and
    Windows device names are defused, the length is bounded (the extension
    kept), and an empty result falls back to ``fallback`` (a project key) or
    ``video``. A name without an extension gets ``.mp4``.
    """
    name = _clean(unquote(urlsplit(url).path.rsplit("/", 1)[-1]))
    if not name and fallback:
        name = _clean(fallback)
    if not name:
        name = "video"
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or not 1 <= len(extension) <= 8 or not extension.isalnum():
        stem, extension = name, _DEFAULT_EXTENSION[1:]
    # One byte is kept for the "_" that defuses a device name.
    stem = _truncate_utf8(stem, _MAX_NAME_BYTES - len(extension.encode("utf-8")) - 2).rstrip(". ") or "video"
    if stem.split(".")[0].rstrip(" ").upper() in _WINDOWS_RESERVED:
        stem = "_" + stem
    return f"{stem}.{extension}"


def _clean(raw: str) -> str:
    name = re.split(r"[/\\]", raw)[-1]
    name = "".join("_" if unicodedata.category(ch).startswith("C") else ch for ch in name)
    name = _UNSAFE.sub("_", name)
    return name.strip().lstrip(".").rstrip(". ")


def _check_filename(filename: str) -> str:
    if (
        not isinstance(filename, str)
        or not filename.strip()
        or filename in (".", "..")
        or re.search(r"[/\\\x00]", filename)
    ):
        raise ValueError(f"filename must be a plain file name without folders, not {filename!r}")
    if len(filename.encode("utf-8")) > _MAX_NAME_BYTES:
        raise ValueError(f"filename must be at most {_MAX_NAME_BYTES} bytes long, not {filename[:40]!r}...")
    return filename


def _content_range_start(value: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
    """``(start, total)`` of a ``Content-Range: bytes start-end/total`` header."""
    match = re.fullmatch(r"\s*bytes\s+(\d+)-\d+/(\d+|\*)\s*", value or "")
    if not match:
        return None, None
    total = None if match.group(2) == "*" else int(match.group(2))
    return int(match.group(1)), total


# How video containers begin: an ISO/QuickTime box type at offset 4, or a
# signature at offset 0 (Matroska/WebM, AVI, MPEG-PS, FLV).
_BOX_TYPES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
_SIGNATURES = (b"\x1a\x45\xdf\xa3", b"\x00\x00\x01\xba", b"FLV\x01")
_SNIFF = 64  # bytes kept to tell (12 suffice) and to quote in the error


def _looks_like_video(head: bytes, total: Optional[int]) -> bool:
    """Whether a file's first bytes are those of a video container."""
    if head[4:8] == b"ftyp":
        return True
    if head[4:8] in _BOX_TYPES:
        # Text can have these four letters there too ("The free trial..."):
        # the box's size must also be plausible.
        size = int.from_bytes(head[:4], "big")
        return size == 1 or (size >= 8 and (size <= total if total else head[0] == 0))
    if head.startswith(b"RIFF"):
        return head[8:12] == b"AVI "
    return any(head.startswith(signature) for signature in _SIGNATURES)


def _check_video(head: bytes, content_type: str, url: str, total: Optional[int]) -> None:
    """Refuse an error page delivered as if it were the video."""
    if _looks_like_video(head, total):
        return
    kind = content_type.split(";")[0].strip() or "no content type"
    preview = head[:_SNIFF].decode("utf-8", errors="replace")
    raise DownloadError(
        f"{_where(url)} did not send a video ({kind}, starting {preview!r}); "
        "it is often an error page from the storage host, so nothing was saved"
    )


def _transfer(session: requests.Session, url: str, out: IO[bytes], request_timeout: RequestTimeout) -> Tuple[int, str]:
    """Stream ``url`` into ``out``; resume or restart after a cut-off.
    Returns the number of bytes written and their SHA-256."""
    received = 0
    total: Optional[int] = None
    validator: Optional[str] = None
    digest = hashlib.sha256()
    head = b""  # the file's first bytes, until they are checked
    last_problem = "no answer"
    for attempt in range(1, _ATTEMPTS + 1):
        # Authorization: None removes any such header a caller's session carries.
        headers = {"Authorization": None, "Accept-Encoding": "identity"}
        content_type = ""
        if received:
            headers["Range"] = f"bytes={received}-"
            if validator:
                headers["If-Range"] = validator
        try:
            with session.get(
                url, stream=True, headers=headers, timeout=request_timeout, auth=_no_credentials
            ) as response:
                status = response.status_code
                if status == 206 and received:
                    start, whole = _content_range_start(response.headers.get("Content-Range"))
                    if start != received:
                        raise DownloadError(f"the server resumed at byte {start}, not at {received}")
                    total = whole if whole is not None else total
                elif status == 200:
                    if received:
                        logger.info("download of %s: the server ignored the range; restarting", _where(url))
                        out.seek(0)
                        out.truncate()
                        received = 0
                        digest = hashlib.sha256()
                        head = b""
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    etag = response.headers.get("ETag")
                    validator = etag if etag and not etag.startswith("W/") else response.headers.get("Last-Modified")
                else:
                    raise DownloadError(f"the download host answered HTTP {status} for {_where(url)}", status=status)
                content_type = response.headers.get("Content-Type", "")
                for chunk in response.iter_content(chunk_size=_CHUNK):
                    if len(head) < _SNIFF:
                        head += chunk[: _SNIFF - len(head)]
                        if len(head) == _SNIFF:
                            _check_video(head, content_type, url, total)
                    out.write(chunk)
                    digest.update(chunk)
                    received += len(chunk)
        except _TRANSIENT as error:
            last_problem = type(error).__name__
        except requests.RequestException as error:  # a redirect loop, a bad scheme, a broken encoding...
            raise DownloadError(f"{_where(url)}: the download failed ({type(error).__name__}: {error})") from None
        else:
            if total is None or received == total:
                if len(head) < _SNIFF:
                    _check_video(head, content_type, url, total)
                return received, digest.hexdigest()
            if received > total:
                raise DownloadError(f"{_where(url)}: received {received} bytes, more than the announced {total}")
            last_problem = "the connection closed early"
        logger.warning(
            "download of %s interrupted (%s) at %d of %s bytes; attempt %d of %d",
            _where(url),
            last_problem,
            received,
            total if total is not None else "?",
            attempt,
            _ATTEMPTS,
        )
        if attempt < _ATTEMPTS:
            time.sleep(min(0.25 * 2**attempt, 4.0))
    raise DownloadError(
        f"{_where(url)}: only {received} of {total if total is not None else 'an unknown number of'} bytes "
        f"arrived after {_ATTEMPTS} attempts ({last_problem}); nothing was saved"
    )


def _no_credentials(request: requests.PreparedRequest) -> requests.PreparedRequest:
    """As ``auth``: add nothing, and keep requests from adding netrc or
    session credentials for the download host."""
    return request


def _where(url: str) -> str:
    """The address without its query, which may hold a signature."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _place(temporary: Path, folder: Path, name: str) -> Path:
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


def download_video(
    url: str,
    out_dir: Union[str, os.PathLike[str]] = "videos",
    *,
    filename: Optional[str] = None,
    project_key: Optional[str] = None,
    session: Optional[requests.Session] = None,
    request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT,
) -> Path:
    """Download a finished video into ``out_dir`` (tutorial step 4).

    The file is named after the address, as in the tutorial (the basename of
    its path, made safe), unless ``filename`` is given. An existing file is
    never replaced: the new one gets a numbered suffix (``clip-2.mp4``).
    Nothing appears under the final name until the whole body has arrived.

    :param url: the video's address, from :func:`wait_for_video`.
    :param out_dir: the output folder; created if missing.
    :param filename: the file name to use instead of the address's basename.
    :param project_key: used to name the file when the address has no name.
    :param session: a ``requests.Session`` to reuse. The API key is never
        sent to the download host, even if this session carries one.
    :param request_timeout: seconds to connect and to wait for data.
    :return: the path of the downloaded file.
    :rtype: pathlib.Path
    :raises DownloadError: the download failed, or what arrived is not a
        video (an error page sent with status 200); nothing was saved.

    Usage::

        >>> path = download_video(url, out_dir="videos")
    """
    if not isinstance(url, str) or urlsplit(url).scheme not in ("http", "https"):
        raise ValueError(f"url must be an http(s) address, not {url!r}")
    name = _check_filename(filename) if filename is not None else safe_filename(url, project_key)
    folder = Path(out_dir)
    with session_scope(session) as active:
        return _download(active, url, folder, name, request_timeout).path


@dataclass(frozen=True)
class _Saved:
    path: Path
    size: int
    sha256: str


def _download(session: requests.Session, url: str, folder: Path, name: str, request_timeout: RequestTimeout) -> _Saved:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DownloadError(f"cannot create the output folder {folder}: {error.strerror}") from None
    temporary = folder / f".{_truncate_utf8(name, 60)}.{secrets.token_hex(4)}.part"
    logger.info("downloading %s into %s", _where(url), folder)
    try:
        # No fsync: the file takes its name only once complete, which is what
        # a killed process needs; after a power cut the journal's recorded
        # size tells a file the disk did not keep, and it is fetched again.
        with open(temporary, "xb") as out:
            size, sha256 = _transfer(session, url, out, request_timeout)
        path = _place(temporary, folder, name)
    except OSError as error:  # a full disk, a name the file system refuses...
        temporary.unlink(missing_ok=True)
        raise DownloadError(f"cannot save the video into {folder}: {error.strerror or error}") from None
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    logger.info("saved %s (%d bytes, sha256 %s)", path, size, sha256)
    return _Saved(path, size, sha256)
