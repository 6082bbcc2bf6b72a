"""File names for downloaded videos: the tutorial's (the basename of the
video's address), or the caller's, made safe to create in any folder."""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Optional
from urllib.parse import unquote, urlsplit

MAX_NAME_BYTES = 150
DEFAULT_EXTENSION = ".mp4"
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL"] + [f"COM{i}" for i in range(1, 10)] + [f"LPT{i}" for i in range(1, 10)]
)
_UNSAFE = re.compile(r'[<>:"/\\|?*]')


def truncate_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


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
        stem, extension = name, DEFAULT_EXTENSION[1:]
    # One byte is kept for the "_" that defuses a device name.
    stem = truncate_utf8(stem, MAX_NAME_BYTES - len(extension.encode("utf-8")) - 2).rstrip(". ") or "video"
    if stem.split(".")[0].rstrip(" ").upper() in _WINDOWS_RESERVED:
        stem = "_" + stem
    return f"{stem}.{extension}"


def _clean(raw: str) -> str:
    name = re.split(r"[/\\]", raw)[-1]
    name = "".join("_" if unicodedata.category(ch).startswith("C") else ch for ch in name)
    name = _UNSAFE.sub("_", name)
    return name.strip().lstrip(".").rstrip(". ")


def check_filename(filename: Any) -> str:
    """A file name given by the caller: a plain name, no folders; a
    ``ValueError`` otherwise."""
    if (
        not isinstance(filename, str)
        or not filename.strip()
        or filename in (".", "..")
        or re.search(r"[/\\\x00]", filename)
    ):
        raise ValueError(f"filename must be a plain file name without folders, not {filename!r}")
    if len(filename.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError(f"filename must be at most {MAX_NAME_BYTES} bytes long, not {filename[:40]!r}...")
    return filename
