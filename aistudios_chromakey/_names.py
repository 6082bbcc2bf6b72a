"""File names for downloaded videos: the tutorial's (the basename of the
video's address), or the caller's, made safe to create in any folder."""

from __future__ import annotations

import errno
import os
import re
import string
import textwrap
import threading
import unicodedata
from pathlib import Path
from typing import Any, Callable, Mapping, Optional
from urllib.parse import unquote, urlsplit

MAX_NAME_BYTES = 150
DEFAULT_EXTENSION = "mp4"
# Windows counts the superscript digits ¹ ² ³ in device names; CONIN$/CONOUT$ are the console's.
_WINDOWS_RESERVED = frozenset(
    ["CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"] + [port + d for port in ("COM", "LPT") for d in "123456789¹²³"]
)
#: The extensions a saved video keeps; any other is replaced by ``.mp4``.
VIDEO_EXTENSIONS = frozenset({"mp4", "mov", "m4v", "webm", "mkv", "avi"})
_NO_HARD_LINKS = frozenset({errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS})
_UNSAFE = re.compile(r'[<>:"/\\|?*]')


def truncate_utf8(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` bytes of UTF-8, never inside a character."""
    return text.encode("utf-8")[:limit].decode("utf-8", errors="ignore")


def safe_filename(url: str, fallback: Optional[str] = None) -> str:
    """The tutorial's file name for ``url`` (the basename of its path), made
    safe (:func:`safe_name`); ``fallback`` (a project key) for an address without one."""
    basename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return safe_name(re.split(r"[/\\]", basename)[-1], fallback)


def safe_name(raw: str, fallback: Optional[str] = None) -> str:
    """``raw`` made safe to create in any folder: separators, control and reserved characters replaced,
    leading dots and Windows device names defused, the length bounded, ``.mp4`` in place of an
    extension that is not a video's; empty, it falls back to ``fallback`` or ``video``."""
    name = _clean(raw) or _clean(fallback or "") or "video"
    stem, dot, extension = name.rpartition(".")
    if not dot or not stem or not 1 <= len(extension) <= 8 or not extension.isalnum():
        stem, extension = name, DEFAULT_EXTENSION  # no extension: one is added
    elif extension.lower() not in VIDEO_EXTENSIONS:
        # A video must not open as a program or a page (.exe, .html) when double-clicked: it keeps
        # a video extension of its own (clip.mp4 of clip.mp4.exe), else gets .mp4.
        inner_stem, inner_dot, inner = stem.rpartition(".")
        if inner_dot and inner_stem and inner.lower() in VIDEO_EXTENSIONS:
            stem, extension = inner_stem, inner
        else:
            extension = DEFAULT_EXTENSION
    # One byte is kept for the "_" that defuses a device name.
    stem = truncate_utf8(stem, MAX_NAME_BYTES - len(extension.encode("utf-8")) - 2).rstrip(". ") or "video"
    if stem.split(".")[0].rstrip(" ").upper() in _WINDOWS_RESERVED:
        stem = "_" + stem
    return f"{stem}.{extension}"


def _clean(raw: str) -> str:
    name = "".join("_" if unicodedata.category(ch).startswith("C") else ch for ch in raw)
    return _UNSAFE.sub("_", name).strip().lstrip(".").rstrip(". ")


#: The fields a batch's ``filename_template`` may use.
TEMPLATE_FIELDS = ("position", "text", "language", "model", "clothes", "key", "name")
_WORDS = 30  # characters of the text that {text} keeps, cut between words


def check_template(template: Any) -> None:
    """A ``ValueError`` naming what is wrong with a batch's file name template, before anything is sent."""
    if not isinstance(template, str) or not template.strip():
        raise ValueError(f"filename_template must be a non-empty string, not {template!r}")
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
        # A bare name only: an index or an attribute ({text[3]}, {position.real})
        # could fail on one job's values, after its render was paid for.
        unknown = [field for field in fields if field not in TEMPLATE_FIELDS]
        if not unknown:
            template.format(**{**dict.fromkeys(TEMPLATE_FIELDS, "x"), "position": 1})
    except (KeyError, ValueError, IndexError, TypeError) as error:
        raise ValueError(f"filename_template {template!r} cannot be used: {error}") from None
    if unknown:
        known = ", ".join("{" + f + "}" for f in TEMPLATE_FIELDS)
        raise ValueError(f"filename_template uses {{{unknown[0]}}}, which is not one of {known}")


def video_name(filename: Optional[str], template: Optional[str], position: int, body: Mapping[str, Any], key: str,
               url: str) -> str:  # fmt: skip
    """A job's file name: its own ``filename``, else the batch's template, else the tutorial's."""
    if filename:
        return filename
    if not template:
        return safe_filename(url, key)
    values = {field: str(body.get(field, "")) for field in ("language", "model", "clothes")}
    values["text"] = first_words(str(body.get("text", "")), _WORDS)
    values["name"] = safe_filename(url, key).rpartition(".")[0]
    return safe_name(template.format(position=position, key=key, **values), key)  # a "/" in it becomes "_"


def first_words(text: str, limit: int) -> str:
    """The words that begin ``text``, within ``limit`` characters (the first cut if it alone is longer)."""
    words = text.split()
    kept = textwrap.shorten(" ".join(words), limit, placeholder="", break_on_hyphens=False, break_long_words=False)
    return kept or (words[0][:limit] if words else "")


def check_filename(filename: Any) -> str:
    """A job's ``filename``, a plain name (else a ``ValueError``), made safe (:func:`safe_name`)."""
    plain = isinstance(filename, str) and filename.strip() and filename not in (".", "..")
    if not plain or re.search(r"[/\\\x00]", filename):
        raise ValueError(f"filename must be a plain file name without folders, not {filename!r}")
    if len(filename.encode("utf-8")) > MAX_NAME_BYTES:
        raise ValueError(f"filename must be at most {MAX_NAME_BYTES} bytes long, not {filename[:40]!r}...")
    return safe_name(filename)


_PLACING = threading.Lock()


def place(temporary: Path, folder: Path, name: str, same: Callable[[Path], bool]) -> Path:
    """Give ``temporary`` its final name without replacing any file: ``name``, else ``stem-2.ext``...
    A file there that ``same`` says holds these very bytes (a run killed after saving this video,
    before its journal said so) is taken as it is, rather than copied beside itself."""
    stem, dot, extension = name.rpartition(".") if "." in name else (name, "", "")
    for n in range(1, 10_000):
        candidate = folder / (name if n == 1 else f"{stem}-{n}{dot}{extension}")
        try:
            os.link(temporary, candidate)
        except OSError as error:
            if not isinstance(error, FileExistsError):
                if error.errno not in _NO_HARD_LINKS:
                    raise
                # No hard links here (FAT, exFAT, some shares): a check and a rename, one download at a time,
                # or two finishing together would both find the name free. (The folder lock keeps other runs out.)
                with _PLACING:
                    if not candidate.exists():
                        os.replace(temporary, candidate)
                        return candidate
            if not same(candidate):  # taken, and not by these very bytes
                continue
        os.unlink(temporary)
        return candidate
    raise FileExistsError(errno.EEXIST, f"too many files named like {name!r}", str(folder))
