"""Jobs: what one may contain, checked before anything is sent or paid for;
the files that hold them; and the names their videos are saved under.

A job is a dict, as in the tutorial: ``language``, ``text``, ``model`` and
``clothes``, plus any optional field the chosen flow documents, sent
unchanged; and ``filename``, the caller's name for its file, never sent. A
field the service has but this library does not know yet goes in ``extra``
(``{"extra": {"ttsType": "..."}}``, a table's column ``extra.ttsType``),
sent unchecked; any other unknown key is refused as a likely typo.

Jobs files: a JSON array of jobs, a CSV (or tab-separated) table in UTF-8,
cp949 or UTF-16 (as Excel saves them), or an ``.xlsx`` workbook (with openpyxl).

A table's first non-empty row is its header, matched without regard to case
or blanks: the required fields in any order, then optional fields,
``filename`` and ``extra.NAME``; unknown columns are kept for the validator
to name. An empty optional cell leaves the field out; cells but ``text`` are
trimmed. A workbook's number is text as Excel shows it, unless Excel may have
rounded it: that, like a date, is an error.

A video's file name is the tutorial's (the basename of its address) or the
caller's, made safe to create in any folder.
"""

from __future__ import annotations

import codecs
import collections
import csv
import datetime
import errno
import importlib
import io
import json
import math
import os
import re
import string
import textwrap
import threading
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Literal, Mapping, Optional, Sequence, Tuple, Union
from urllib.parse import unquote, urlsplit

from ._access import APIS, BOOLEAN, NUMBER, RESOLUTION, TEXT, URL, Api
from ._reports import InvalidJob

REQUIRED_FIELDS = ("language", "text", "model", "clothes")
FILENAME_KEY = "filename"
EXTRA_KEY = "extra"
#: The longest ``text`` unless the caller raises it (``Client(max_text_length=...)``,
#: ``--max-text-length``). The docs set none; this is about an hour of speech, far
#: past any script for one clip, and far short of a file pasted by mistake.
MAX_TEXT_LENGTH = 50_000
_RESOLUTIONS = ("4k", "1080", "720", "480")


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_http_url(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:  # for example an unclosed IPv6 bracket
        return False
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# Each kind of optional field (_access.py): how to check it, and what it must be.
_KINDS: Mapping[str, Tuple[Callable[[Any], bool], str]] = {
    TEXT: (lambda v: isinstance(v, str) and bool(v.strip()), "a non-empty string"),
    NUMBER: (is_number, "a number"),
    URL: (is_http_url, "an http(s) URL"),
    BOOLEAN: (lambda v: isinstance(v, bool), "true or false"),
    RESOLUTION: (lambda v: v in _RESOLUTIONS, "one of " + ", ".join(repr(r) for r in _RESOLUTIONS)),
}


@dataclass(frozen=True)
class Job:
    """A checked job: its 1-based place in the batch (``None`` for a job given
    alone), the export request's body, and the file name the caller chose."""

    position: Optional[int]
    body: Dict[str, Any]
    filename: Optional[str] = None


def check_job(job: Any, api: Api, position: Optional[int] = None, max_text: int = MAX_TEXT_LENGTH) -> Job:
    """The job, checked against ``api``; :class:`InvalidJob` names the field."""
    if not isinstance(job, Mapping):
        raise InvalidJob(
            f"must be a dict with {', '.join(REQUIRED_FIELDS)}, not {type(job).__name__}", position=position
        )
    for field in REQUIRED_FIELDS:
        if field not in job:
            raise InvalidJob("is missing (required)", position=position, field=field)
        if not isinstance(job[field], str):
            raise InvalidJob(f"must be a string, not {type(job[field]).__name__}", position=position, field=field)
        if not job[field].strip():
            raise InvalidJob("must not be empty", position=position, field=field)
    if len(job["text"]) > max_text:
        more = f"is {len(job['text']):,} characters long, more than the {max_text:,} allowed without being asked"
        hint = "; if it is meant, raise the bound: Client(max_text_length=N), or --max-text-length N"
        raise InvalidJob(more + hint, position=position, field="text")
    body = {}
    for field, value in job.items():
        if field == EXTRA_KEY:
            body.update(_extra(value, job, position))
        elif field != FILENAME_KEY:
            if field not in REQUIRED_FIELDS:
                _check_optional(field, value, api, position)
            body[field] = value
    try:
        filename = None if job.get(FILENAME_KEY) is None else check_filename(job[FILENAME_KEY])
    except ValueError as error:
        raise InvalidJob(str(error), position=position, field=FILENAME_KEY) from None
    return Job(position, body, filename)


def _check_optional(field: Any, value: Any, api: Api, position: Optional[int]) -> None:
    if not isinstance(field, str):
        raise InvalidJob(f"has a field name that is not a string: {field!r}", position=position)
    if field in api.optional:
        check, expected = _KINDS[api.optional[field]]
        if not check(value):
            raise InvalidJob(f"must be {expected}, not {value!r}", position=position, field=field)
        return
    other = [f for f in APIS.values() if f is not api and field in f.optional]
    if other:
        hint = f"it belongs to api={other[0].name!r}"
    else:
        known = [*REQUIRED_FIELDS, *api.optional, FILENAME_KEY]
        import difflib  # only for a mistake: not at every start-up

        close = difflib.get_close_matches(field, known, n=1)
        hint = f"did you mean {close[0]!r}?" if close else "known fields: " + ", ".join(known)
        hint += f"; a field the service has and this library does not know goes in {EXTRA_KEY!r}"
    raise InvalidJob(f"is not a field of the {api.name} export request ({hint})", position=position, field=field)


def _extra(value: Any, job: Mapping[str, Any], position: Optional[int]) -> Dict[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidJob(
            f"must map field names to values, such as {{\"ttsType\": \"...\"}}, not {value!r}",
            position=position, field=EXTRA_KEY,
        )  # fmt: skip
    for name in value:
        if not isinstance(name, str) or not name.strip():
            raise InvalidJob(f"has a field name that is not a string: {name!r}", position=position, field=EXTRA_KEY)
        if name in job or name in REQUIRED_FIELDS or name in (FILENAME_KEY, EXTRA_KEY):
            raise InvalidJob(f"names {name!r}, a field of the job itself: set it there", position=position,
                             field=EXTRA_KEY)  # fmt: skip
    return dict(value)


def check_jobs(jobs: Iterable[Any], api: Api, max_text: int = MAX_TEXT_LENGTH) -> List[Job]:
    """Every job of a batch, checked before the first is sent."""
    if isinstance(jobs, (Mapping, str, bytes)):
        raise InvalidJob("jobs must be a list of dicts; to export one job, pass [job]")
    return [check_job(job, api, position, max_text) for position, job in enumerate(jobs, start=1)]


_BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
# Column names in the spelling the service documents: required, optional (legacy, then V3), filename.
_OPTIONAL = [name for api in APIS.values() for name in api.optional]
_CANONICAL = {name.lower(): name for name in (*REQUIRED_FIELDS, *_OPTIONAL, FILENAME_KEY)}
_CP949 = "cp949 (Korean Excel 'CSV (쉼표로 분리)')"
_SAVE_AS_CSV = 'in Excel choose File > Save As > "CSV UTF-8 (쉼표로 분리)"'
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"  # .xls, the Excel 97-2003 format
_ZIP_MAGIC = b"PK\x03\x04"  # .xlsx
_EXCEL_DIGITS = 10**15  # Excel keeps 15 significant digits of a number
_DATA_LIKE = re.compile(r"[A-Za-z]{1,3}\d{4,}|[a-z]{2}(-[A-Za-z]{2,4})?")  # an ID or a language code
_Rows = Sequence[Tuple[str, Sequence[Any]]]


class JobsFileError(ValueError):
    """A jobs file that cannot be read: the message names the file, and the line or row and column."""


@dataclass(frozen=True)
class JobsFile:
    """The jobs, where each came from (``"line 3"``), the encoding (``None`` for a workbook), the format."""

    jobs: List[Dict[str, Any]]
    origins: List[str]
    encoding: Optional[str]
    format: Literal["json", "csv", "xlsx"]


def read_jobs_file(path: Union[str, os.PathLike[str]]) -> JobsFile:
    """The jobs in a JSON, CSV or ``.xlsx`` file: ``.csv`` and ``.json`` by their suffix, workbooks by their
    content or suffix, others as JSON if they start with ``[``, else CSV. :class:`JobsFileError` says where
    and how to fix what cannot be read."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as error:
        raise JobsFileError(f"{path}: cannot read it ({error.strerror})") from None
    empty = f"{path}: the file is empty; it should hold a JSON array of jobs or a table of jobs"
    if not data.strip():
        raise JobsFileError(empty)
    suffix = path.suffix.lower()
    if data.startswith(_ZIP_MAGIC) or suffix in (".xlsx", ".xlsm"):
        return JobsFile(*_read_xlsx(path, data), None, "xlsx")
    if data.startswith(_OLE_MAGIC) or suffix == ".xls":
        raise JobsFileError(
            f"{path}: an old Excel workbook (.xls) cannot be read; in Excel choose File > Save As and pick "
            '"Excel 통합 문서 (*.xlsx)" or "CSV UTF-8 (쉼표로 분리)"'
        )
    text, encoding = _decode(path, data)
    if not text.strip():
        raise JobsFileError(empty)
    if suffix == ".csv" or (suffix != ".json" and not text.lstrip().startswith("[")):
        return JobsFile(*_read_csv(path, text, encoding == "UTF-16"), encoding, "csv")
    return JobsFile(*_read_json(path, text), encoding, "json")


def _decode(path: Path, data: bytes) -> Tuple[str, str]:
    """The text and its encoding's name: a byte-order mark decides, else UTF-8, else cp949."""
    if data.startswith(codecs.BOM_UTF8):
        attempts = [("utf-8-sig", "UTF-8 with BOM")]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        attempts = [("utf-16", "UTF-16")]
    else:
        attempts = [("utf-8", "UTF-8"), ("cp949", _CP949)]
    for codec, label in attempts:
        try:
            text = data.decode(codec)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            raise JobsFileError(
                f"{path}: holds NUL characters, as UTF-16 without its byte-order mark or a binary file does; "
                f"{_SAVE_AS_CSV}"
            )
        return text, label
    tried = " or ".join(label.split(" (")[0] for _, label in attempts)
    raise JobsFileError(
        f"{path}: not text in {tried} (the encodings read are UTF-8, cp949/EUC-KR and UTF-16 with a "
        f"byte-order mark); {_SAVE_AS_CSV}"
    )


def _read_json(path: Path, text: str) -> Tuple[List[Dict[str, Any]], List[str]]:
    try:
        content = json.loads(text)
    except ValueError as error:
        raise JobsFileError(f"{path}: not valid JSON: {error}") from None
    except RecursionError:
        raise JobsFileError(f"{path}: nested too deeply to be a list of jobs") from None
    if not isinstance(content, list):
        raise JobsFileError(
            f"{path}: must be a JSON array of jobs, [{{...}}, ...], not a JSON {type(content).__name__}"
        )
    if not content:
        raise JobsFileError(f"{path}: the array holds no job")
    return content, [f"item {n}" for n in range(1, len(content) + 1)]


def _read_csv(path: Path, text: str, utf16: bool) -> Tuple[List[Dict[str, Any]], List[str]]:
    """Tab-separated if the header line has tabs and (but in Excel's UTF-16) no more commas than tabs."""
    header_line = next((line for line in text.splitlines() if line.strip()), "")
    tabs = header_line.count("\t")
    delimiter = "\t" if tabs and (utf16 or tabs >= header_line.count(",")) else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: List[Tuple[str, Sequence[Any]]] = []
    start = 1
    try:
        for row in reader:
            rows.append((f"line {start}", row))
            start = reader.line_num + 1
    except csv.Error as error:
        raise JobsFileError(f"{path}, line {start}: {error}") from None
    return _read_table(path, rows)


def _read_xlsx(path: Path, data: bytes) -> Tuple[List[Dict[str, Any]], List[str]]:
    """The first worksheet's rows, numbered as Excel numbers them."""
    try:
        openpyxl = importlib.import_module("openpyxl")
    except ImportError:
        raise JobsFileError(
            f'{path}: reading .xlsx needs openpyxl: pip install "aistudios-chromakey[excel]"; '
            f"or {_SAVE_AS_CSV} and pass the .csv file"
        ) from None
    with warnings.catch_warnings():  # about styles and extensions it drops, which we do not read
        warnings.simplefilter("ignore")
        try:
            book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception as error:  # openpyxl raises zipfile, KeyError, XML and its own errors
            raise JobsFileError(f"{path}: cannot read it as an Excel workbook ({error}); {_SAVE_AS_CSV}") from None
        try:
            if not book.worksheets:
                raise JobsFileError(f"{path}: the workbook has no worksheet")
            sheet = book.worksheets[0]
            sheet.reset_dimensions()  # some programs write a wrong size, which would cut the table short
            cells = sheet.iter_rows(min_row=1, min_col=1, values_only=True)
            rows = [(f"row {n}", row) for n, row in enumerate(cells, start=1)]
        finally:
            book.close()
    return _read_table(path, rows)


def _read_table(path: Path, rows: _Rows) -> Tuple[List[Dict[str, Any]], List[str]]:
    rows = [(where, cells) for where, cells in rows if not all(_blank(cell) for cell in cells)]
    if not rows:
        raise JobsFileError(f"{path}: the file holds no table")
    (header_where, header_cells), data = rows[0], rows[1:]
    header = _header(path, header_where, header_cells, data)
    jobs: List[Dict[str, Any]] = []
    for where, cells in data:
        if any(not _blank(cell) for cell in cells[len(header) :]):
            raise JobsFileError(f"{path}, {where}: {len(cells)} cells but the header names {len(header)} columns")
        padded = list(cells) + [None] * (len(header) - len(cells))
        job: Dict[str, Any] = {}
        for name, cell in zip(header, padded):
            at = f"{where}, column {name}"
            if name == "text":
                job[name] = "" if cell is None else _as_text(path, at, cell)
            elif _blank(cell):
                if name in REQUIRED_FIELDS:
                    job[name] = ""  # for the validator to say it must not be empty
            elif name.lower().startswith(EXTRA_KEY + "."):  # sent as written: the service's own field
                job.setdefault(EXTRA_KEY, {})[name[len(EXTRA_KEY) + 1 :]] = _as_text(path, at, cell).strip()
            else:
                job[name] = _value(path, at, name, cell)
        jobs.append(job)
    if not jobs:
        raise JobsFileError(f"{path}: the header is there but no job follows it")
    return jobs, [where for where, _ in data]


def _header(path: Path, where: str, cells: Sequence[Any], data: _Rows) -> List[str]:
    """The column names, canonical where known; ``""`` for an unnamed, empty column."""
    written = ["" if _blank(cell) else _as_text(path, where, cell).strip() for cell in cells]
    names = [_CANONICAL.get(name.lower(), name) for name in written]
    missing = [name for name in REQUIRED_FIELDS if name not in names]
    if missing:
        found = ", ".join(name for name in written if name) or "none"
        like_a_job = not set(names) & set(_CANONICAL.values()) and any(_DATA_LIKE.fullmatch(n) for n in names)
        first_row = "; the first row must be the header: it looks like a job" if like_a_job else ""
        raise JobsFileError(
            f"{path}, {where}: the header lacks the column(s) {', '.join(missing)} (found: {found}); "
            f"it needs {','.join(REQUIRED_FIELDS)} in any order, then any optional columns{first_row}"
        )
    counts = collections.Counter(names)  # counted once: a header may have very many columns
    for index, name in enumerate(names):
        if not name and any(not _blank(row[index]) for _, row in data if index < len(row)):
            raise JobsFileError(f"{path}, {where}: column {index + 1} holds cells but has no name in the header")
        if name and counts[name] > 1:
            raise JobsFileError(f"{path}, {where}: the header names the column {name!r} more than once")
    return names


def _value(path: Path, where: str, name: str, cell: Any) -> Any:
    if name == "uppercut":
        if isinstance(cell, (int, float)) and not isinstance(cell, bool):
            return cell
        word = str(cell).strip()
        try:
            return float(word) if any(c in word for c in ".eE") else int(word)
        except ValueError:
            raise JobsFileError(f"{path}, {where}: {word!r} is not a number") from None
    if name == "isExport":
        if isinstance(cell, bool):
            return cell
        word = _as_text(path, where, cell).strip()
        if word.lower() not in _BOOLEANS:
            raise JobsFileError(f"{path}, {where}: {word!r} is not true or false")
        return _BOOLEANS[word.lower()]
    return _as_text(path, where, cell).strip()


def _as_text(path: Path, where: str, cell: Any) -> str:
    """A cell as text: numbers as Excel shows them in General format."""
    if isinstance(cell, str):
        return cell
    if isinstance(cell, bool):
        return "TRUE" if cell else "FALSE"
    if isinstance(cell, (int, float)):
        if abs(cell) >= _EXCEL_DIGITS:
            raise JobsFileError(
                f"{path}, {where}: Excel holds {cell!r} as a number and may have rounded it; "
                "format the column as text (셀 서식 > 텍스트) and type it again"
            )
        return str(int(cell)) if isinstance(cell, float) and cell.is_integer() else str(cell)
    if isinstance(cell, (datetime.date, datetime.time, datetime.timedelta)):
        raise JobsFileError(
            f"{path}, {where}: Excel holds a date or time here; format the column as text (셀 서식 > 텍스트) "
            "and type it again"
        )
    return str(cell)


def _blank(cell: Any) -> bool:
    return cell is None or (isinstance(cell, str) and not cell.strip())


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
