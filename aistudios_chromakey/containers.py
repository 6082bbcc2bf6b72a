"""What a video file looks like from its bytes: the container checks that
keep an error page from being saved as a video."""

from __future__ import annotations

from typing import Optional

# How video containers begin: an ISO/QuickTime box type at offset 4, or a
# signature at offset 0 (Matroska/WebM, AVI, MPEG-PS, FLV).
_BOX_TYPES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")
_SIGNATURES = (b"\x1a\x45\xdf\xa3", b"\x00\x00\x01\xba", b"FLV\x01")
#: Bytes kept to tell (12 suffice) and to quote in an error.
SNIFF_BYTES = 64


def looks_like_video(head: bytes, total: Optional[int]) -> bool:
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
