"""The download host: a storage bucket serving each project's video.

Videos are generated on demand from the shipped clip, so a 1 GiB video or
fifty 40 MB ones cost no memory. The host answers ``Range`` and
``If-Range``, signs its addresses when a plan asks for expiring links, sends
validators and checksums as ``Settings.integrity`` says, and paces each
connection at ``Settings.download_rate``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import posixpath
import re
import secrets
import struct
import threading
import time
from typing import Dict, Iterator, Optional, Set, Tuple
from urllib.parse import parse_qsl, urlsplit

from .answer import Answer, empty_answer, raw_answer
from .settings import Settings

_CHUNK = 64 * 1024
_RANGE = re.compile(r"bytes=(\d+)-(\d*)")


class Video:
    """A project's video: the shipped clip followed by an MP4 ``free`` box
    that carries the project key (and version, once replaced), padded to the
    planned size. Players skip ``free`` boxes, so every file plays; each is
    distinct by its key. Ranges are generated on demand."""

    def __init__(self, clip: bytes, key: str, size: Optional[int], version: int = 0) -> None:
        self.version = version
        note = f"aistudios-chromakey simulator: project {key}\n"
        if version:
            note += f"version {version}\n"
        box_size = max(8 + len(note), (size or 0) - len(clip))
        self.head = clip + struct.pack(">I", box_size) + b"free" + note.encode()  # then filler to the size
        self.size = len(clip) + box_size
        self.seed = hashlib.sha256(key.encode() if not version else f"{key}:{version}".encode()).digest()
        self.etag = '"' + hashlib.sha256(self.head).hexdigest()[:16] + f"-{self.size}" + '"'
        self._digests: Optional[Tuple[bytes, bytes]] = None
        self._lock = threading.Lock()

    def chunks(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` (exclusive), in chunks of at most 64 KiB."""
        filler = self.seed * (_CHUNK // len(self.seed))
        position = start
        while position < end:
            if position < len(self.head):
                chunk = self.head[position : min(end, len(self.head))]
            else:
                offset = (position - len(self.head)) % len(self.seed)
                chunk = filler[offset : offset + min(end - position, len(filler) - offset)]
            yield chunk
            position += len(chunk)

    def read(self) -> bytes:
        return b"".join(self.chunks(0, self.size))

    def digests(self) -> Tuple[bytes, bytes]:
        """MD5 and SHA-256 of the whole video, computed once, in one pass."""
        with self._lock:
            if self._digests is None:
                md5, sha256 = hashlib.md5(), hashlib.sha256()
                for chunk in self.chunks(0, self.size):
                    md5.update(chunk)
                    sha256.update(chunk)
                self._digests = md5.digest(), sha256.digest()
            return self._digests


class Storage:
    """The storage host's objects and how it answers for them."""

    def __init__(self, settings: Settings, clip: bytes) -> None:
        self.settings = settings
        self.clip = clip
        #: The host's own address and its mirror's (set once the servers listen).
        self.url = ""
        self.mirror_url = ""
        self._signing_key = secrets.token_bytes(16)
        self._lock = threading.Lock()
        self._videos: Dict[str, Video] = {}
        self._signed: Set[str] = set()  # the keys whose addresses are signed

    def store(self, key: str, size: Optional[int], signed: bool) -> None:
        with self._lock:
            self._videos[key] = Video(self.clip, key, size)
            if signed:
                self._signed.add(key)

    def video(self, key: str) -> Video:
        with self._lock:
            return self._videos[key]

    def replace_video(self, key: str, size: Optional[int]) -> None:
        """Put other bytes (another ETag; ``size`` bytes, default the same
        size) under a project's address, as a re-upload would."""
        with self._lock:
            old = self._videos[key]
            self._videos[key] = Video(self.clip, key, size or old.size, old.version + 1)

    def address(self, key: str, filename: str, link_ttl: Optional[float]) -> str:
        address = f"{self.url}/v/{key}/{filename}"
        if link_ttl is None:
            return address
        expires = f"{time.time() + link_ttl:.3f}"
        return f"{address}?expires={expires}&signature={self._sign(key, expires)}"

    def _sign(self, key: str, expires: str) -> str:
        return hmac.new(self._signing_key, f"{key}:{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def link_refused(self, key: str, query: str) -> Optional[str]:
        """Why a signed address is refused; None when it is good (or unsigned)."""
        if key not in self._signed:
            return None
        fields = dict(parse_qsl(query))
        expires, signature = fields.get("expires", ""), fields.get("signature", "")
        if not hmac.compare_digest(signature.encode(), self._sign(key, expires).encode()):
            return "SignatureDoesNotMatch"
        if float(expires) < time.time():
            return "Request has expired"
        return None

    def key_of(self, target: str) -> Optional[str]:
        """The project key of a ``/v/<key>/<name>`` address, if it exists."""
        parts = posixpath.normpath(urlsplit(target).path).split("/")
        with self._lock:
            known = len(parts) >= 3 and parts[1] == "v" and parts[2] in self._videos
        return parts[2] if known else None

    def redirect(self, target: str, other_host: bool) -> Answer:
        """A 302 to the same object by a roundabout path (or on the mirror)."""
        key = self.key_of(target) or ""
        base = self.mirror_url if other_host else ""
        location = f"{base}/v/{key}/../{key}/{posixpath.basename(urlsplit(target).path)}"
        return empty_answer(302, {"Location": location})

    def answer(self, target: str, range_header: str, if_range: Optional[str]) -> Answer:
        """The answer to ``GET target``."""
        key = self.key_of(target)
        if key is None:
            return raw_answer(404, b"<Error><Code>NoSuchKey</Code></Error>", "application/xml")
        refused = self.link_refused(key, urlsplit(target).query)
        if refused:
            body = f"<Error><Code>AccessDenied</Code><Message>{refused}</Message></Error>".encode()
            return raw_answer(403, body, "application/xml")
        video = self.video(key)
        etag = self._etag(video)
        start, end = 0, video.size
        wanted = _RANGE.fullmatch(range_header.strip())
        honoured = if_range is None or if_range == etag or not self.settings.if_range
        partial = bool(wanted and self.settings.ranges and honoured)
        if wanted and partial:
            start = int(wanted.group(1))
            end = min(video.size, int(wanted.group(2)) + 1) if wanted.group(2) else video.size
            if start >= video.size:
                return empty_answer(416, {"Content-Range": f"bytes */{video.size}"})
        headers = {"Accept-Ranges": "bytes" if self.settings.ranges else "none", "ETag": etag}
        # Checksums of the whole object come with whole-object answers only.
        if partial:
            headers["Content-Range"] = f"bytes {start}-{end - 1}/{video.size}"
        elif self.settings.integrity == "content-md5":
            headers["Content-MD5"] = base64.b64encode(video.digests()[0]).decode()
        elif self.settings.integrity == "sha256":
            headers["x-amz-checksum-sha256"] = base64.b64encode(video.digests()[1]).decode()
        return Answer(
            206 if partial else 200,
            "video/mp4",
            video.chunks(start, end),
            end - start,
            close_delimited=not self.settings.content_length,
            headers=headers,
            rate=self.settings.download_rate,
        )

    def _etag(self, video: Video) -> str:
        if self.settings.integrity == "etag-md5":
            return '"' + video.digests()[0].hex() + '"'
        if self.settings.integrity == "multipart-etag":
            # As S3 multipart uploads: an MD5 of the parts' MD5s, and the part count.
            return '"' + hashlib.md5(video.digests()[0] * 3).hexdigest() + '-3"'
        return video.etag
