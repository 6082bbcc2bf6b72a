"""Jobs files: a JSON array of jobs, a CSV (or tab-separated) table in UTF-8,
cp949 or UTF-16 (as Excel saves them), or an ``.xlsx`` workbook (with openpyxl).

A table's first non-empty row is its header, matched without regard to case
or blanks: the required fields in any order, then optional fields,
``filename`` and ``extra.NAME``; unknown columns are kept for the validator
to name. An empty optional cell leaves the field out; cells but ``text`` are
trimmed. A workbook's number is text as Excel shows it, unless Excel may have
rounded it: that, like a date, is an error.
"""

from __future__ import annotations

import codecs
import collections
import csv
import datetime
import importlib
import io
import json
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Literal, Optional, Sequence, Tuple, Union

from ._access import APIS
from ._jobs import EXTRA_KEY, FILENAME_KEY, REQUIRED_FIELDS

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
