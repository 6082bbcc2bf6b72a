"""What a video's bytes must be: a video container (not an error page),
whole (an MP4's boxes add up), and matching the checksum the host gave."""

from __future__ import annotations

import base64
import re
from typing import Mapping, NamedTuple, Optional, Set

# How video containers begin: an ISO/QuickTime box type at offset 4, or a
# signature at offset 0 (Matroska/WebM, MPEG-PS, FLV; AVI is RIFF's "AVI ").
_BOX_TYPES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
_SIGNATURES = (b"\x1a\x45\xdf\xa3", b"\x00\x00\x01\xba", b"FLV\x01")
#: Bytes kept to tell (12 suffice) and to quote in an error.
SNIFF_BYTES = 64


def looks_like_video(head: bytes, total: Optional[int]) -> bool:
    """Whether a file's first bytes are those of a video container."""
    if is_iso_media(head):
        # Text can have these four letters there too ("The free trial..."):
        # unless it is ftyp, the box's size must also be plausible.
        size = int.from_bytes(head[:4], "big")
        return head[4:8] == b"ftyp" or size == 1 or (size >= 8 and (size <= total if total else head[0] == 0))
    return head.startswith(_SIGNATURES) or (head.startswith(b"RIFF") and head[8:12] == b"AVI ")


def is_iso_media(head: bytes) -> bool:
    """Whether a video's first bytes are an ISO/QuickTime box (MP4, MOV, M4V),
    whose top-level boxes tell the file's length (see :class:`BoxWalk`)."""
    return head[4:8] in _BOX_TYPES


class BoxWalk:
    """An MP4's top-level boxes followed as its bytes stream by, to tell a
    whole file from a cut one when no length was announced: they add up
    exactly to a whole file's length. Each box begins with a 4-byte
    big-endian size (1: a 64-bit size follows; 0: the box runs to the end of
    the file) and a 4-byte type. Only box boundaries cost anything: a chunk
    in the middle of a large ``mdat`` box is only counted."""

    def __init__(self) -> None:
        self.position = 0  # bytes fed so far
        self.boundary = 0  # where the next box begins
        self.header = bytearray()  # the next box's header, when split across chunks
        self.kind = b""  # the type of the box being fed
        self.kinds: Set[bytes] = set()
        self.open_ended = False  # a size-0 box: it ends where the file does
        self.problem: Optional[str] = None

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
        """``None`` when the bytes fed so far are a whole file; else what is
        wrong. ``announced``: their length was announced and all of it came."""
        if self.problem is not None:
            return self.problem
        # A cut exactly between boxes adds up too: a video has its index
        # (moov) and its media (mdat), whichever comes first.
        missing = " and ".join(kind.decode() for kind in (b"moov", b"mdat") if kind not in self.kinds)
        name = self.kind.decode("latin-1")
        if self.open_ended and not (missing or announced):  # nothing tells its end from a cut
            return (
                f"its last MP4 box ({name!r}) runs to the end of the file and no length was announced, "
                "so a cut cannot be told from the end"
            )
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
    # A plain quoted MD5 is S3's ETag of a single-part upload; a multipart
    # ETag ("...-N") or a weak one says nothing of the bytes, and neither
    # does the ETag of an object S3 encrypts with KMS or a customer key.
    etag = re.fullmatch(r'"([0-9a-fA-F]{32})"', headers.get("ETag", ""))
    encrypted = headers.get("x-amz-server-side-encryption", "").startswith("aws:kms") or (
        "x-amz-server-side-encryption-customer-algorithm" in headers
    )
    return Expected("md5 (ETag)", "md5", bytes.fromhex(etag.group(1))) if etag and not encrypted else None
