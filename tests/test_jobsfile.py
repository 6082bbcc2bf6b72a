"""Jobs files as spreadsheets really write them: the bytes of each encoding,
workbooks, and the mistakes beginners make."""

from __future__ import annotations

import codecs
import datetime
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List

import pytest

from aistudios_chromakey._jobs import REQUIRED_FIELDS, JobsFile, JobsFileError, read_jobs_file

ROOT = Path(__file__).resolve().parents[1]
HEADER = "language,text,model,clothes"
JOB = {"language": "ko", "text": "안녕하세요", "model": "M000004017", "clothes": "BG00006160"}


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _csv(tmp_path: Path, *lines: str, name: str = "jobs.csv") -> JobsFile:
    return read_jobs_file(_write(tmp_path, name, "\r\n".join(lines).encode("utf-8")))


def _error(tmp_path: Path, name: str, data: bytes) -> str:
    with pytest.raises(JobsFileError) as caught:
        read_jobs_file(_write(tmp_path, name, data))
    return str(caught.value)


# --- the contract the command line had ------------------------------------------


def test_a_json_array_is_read_as_is_with_a_filename(tmp_path: Path) -> None:
    jobs: List[Dict[str, Any]] = [JOB, {**JOB, "filename": "둘째.mp4", "uppercut": 2}]
    result = read_jobs_file(_write(tmp_path, "jobs.json", json.dumps(jobs).encode("utf-8")))
    assert result == JobsFile(jobs, ["item 1", "item 2"], "UTF-8", "json")


def test_the_format_follows_the_suffix_else_the_first_character(tmp_path: Path) -> None:
    array = json.dumps([JOB]).encode("utf-8")
    assert read_jobs_file(_write(tmp_path, "jobs.txt", b"  \n" + array)).format == "json"
    assert read_jobs_file(_write(tmp_path, "jobs", f"{HEADER}\nko,a,M,B\n".encode())).format == "csv"
    assert "line 1" in _error(tmp_path, "jobs.csv", array)  # a .csv is a table, whatever it holds


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("jobs.json", "", "the file is empty"),
        ("jobs.csv", " \r\n\r\n", "the file is empty"),
        ("jobs.json", '[{"language": "ko",}]', "not valid JSON"),
        ("jobs.json", '{"language": "ko"}', "must be a JSON array of jobs.*not a JSON dict"),
        ("jobs.json", "[]", "holds no job"),
        ("jobs.csv", "language,text,model\nko,hi,M\n", r"line 1: the header lacks the column\(s\) clothes"),
        ("jobs.csv", f"{HEADER}\n\n , ,,\n", "the header is there but no job follows it"),
        ("jobs.csv", f"{HEADER}\nko,hi,M,B,extra\n", "line 2: 5 cells but the header names 4 columns"),
        ("jobs.csv", f"{HEADER},Text\nko,hi,M,B,x\n", "line 1: the header names the column 'text' more than once"),
        ("jobs.csv", f"{HEADER},\nko,hi,M,B,x\n", "line 1: column 5 holds cells but has no name in the header"),
        ("jobs.csv", f"{HEADER},uppercut\nko,hi,M,B,high\n", "line 2, column uppercut: 'high' is not a number"),
        ("jobs.csv", f"{HEADER},isExport\nko,hi,M,B,maybe\n", "line 2, column isExport: 'maybe' is not true or"),
    ],
)
def test_a_bad_file_is_an_error_naming_the_file_and_where(
    tmp_path: Path, name: str, content: str, message: str
) -> None:
    text = _error(tmp_path, name, content.encode("utf-8"))
    assert text.startswith(str(tmp_path / name))
    assert re.search(message, text), text


def test_an_unreadable_file_is_a_jobs_file_error(tmp_path: Path) -> None:
    with pytest.raises(JobsFileError, match="cannot read it"):
        read_jobs_file(tmp_path / "missing.csv")
    assert issubclass(JobsFileError, ValueError)


def test_csv_cells_become_typed_fields_and_empty_optional_cells_are_left_out(tmp_path: Path) -> None:
    result = _csv(
        tmp_path,
        f"{HEADER},uppercut,isExport,resolution",
        'ko,"첫째, 쉼표",M1,B1,1.5,TRUE,720',
        ",,,,,,",
        "ko,둘째,M2,B2,3,no,",
        "ko,셋째,M3,B3,,,",
        "ko,,M4",
    )
    assert result.jobs == [
        {"language": "ko", "text": "첫째, 쉼표", "model": "M1", "clothes": "B1", "uppercut": 1.5, "isExport": True}
        | {"resolution": "720"},
        {"language": "ko", "text": "둘째", "model": "M2", "clothes": "B2", "uppercut": 3, "isExport": False},
        {"language": "ko", "text": "셋째", "model": "M3", "clothes": "B3"},
        {"language": "ko", "text": "", "model": "M4", "clothes": ""},  # for the validator to say "must not be empty"
    ]
    assert result.origins == ["line 2", "line 4", "line 5", "line 6"]


def test_an_origin_is_the_line_where_a_multiline_cell_starts(tmp_path: Path) -> None:
    result = _csv(tmp_path, HEADER, 'ko,"한 줄\r\n두 줄",M,B', "ko,셋,M,B")
    assert result.jobs[0]["text"] == "한 줄\r\n두 줄"
    assert result.origins == ["line 2", "line 4"]


# --- encodings ------------------------------------------------------------------

ROWS = [f"{HEADER},filename", "ko,안녕하세요,M000004017,BG00006160,인사"]
EXPECTED = [{**JOB, "filename": "인사"}]


@pytest.mark.parametrize(
    "data, encoding",
    [
        ("\r\n".join(ROWS).encode("utf-8"), "UTF-8"),
        (codecs.BOM_UTF8 + "\r\n".join(ROWS).encode("utf-8"), "UTF-8 with BOM"),
        ("\r\n".join(ROWS).encode("cp949"), "cp949 (Korean Excel 'CSV (쉼표로 분리)')"),
        ("\r\n".join(ROWS).encode("euc-kr"), "cp949 (Korean Excel 'CSV (쉼표로 분리)')"),
        # Excel's "유니코드 텍스트": UTF-16 LE with its BOM, tab-separated; BE too.
        ("\r\n".join(r.replace(",", "\t") for r in ROWS).encode("utf-16"), "UTF-16"),
        (codecs.BOM_UTF16_BE + "\r\n".join(r.replace(",", "\t") for r in ROWS).encode("utf-16-be"), "UTF-16"),
    ],
    ids=["utf-8", "utf-8-bom", "cp949", "euc-kr", "utf-16-tabs", "utf-16-be-tabs"],
)
def test_each_encoding_spreadsheets_write_is_read_and_named(tmp_path: Path, data: bytes, encoding: str) -> None:
    result = read_jobs_file(_write(tmp_path, "jobs.csv", data))
    assert (result.jobs, result.encoding) == (EXPECTED, encoding)


def test_cp949_bytes_are_not_taken_for_another_encoding(tmp_path: Path) -> None:
    data = f"{HEADER}\nko,안녕하세요,M,B\n".encode("cp949")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")
    result = read_jobs_file(_write(tmp_path, "jobs.csv", data))
    assert result.jobs[0]["text"] == "안녕하세요"
    assert result.encoding is not None and result.encoding.startswith("cp949")


def test_bytes_valid_in_utf8_and_cp949_are_read_as_utf8(tmp_path: Path) -> None:
    data = f"{HEADER}\nko,모델 교육,M,B\n".encode()
    assert "모델 교육".encode().decode("cp949") != "모델 교육"  # it decodes, to something else
    result = read_jobs_file(_write(tmp_path, "jobs.csv", data))
    assert (result.jobs[0]["text"], result.encoding) == ("모델 교육", "UTF-8")


def test_a_tab_separated_utf8_file_is_detected_from_its_header(tmp_path: Path) -> None:
    result = _csv(tmp_path, "language\ttext\tmodel\tclothes", "ko\t쉼표, 그대로\tM\tB", name="jobs.tsv")
    assert result.jobs == [{"language": "ko", "text": "쉼표, 그대로", "model": "M", "clothes": "B"}]


@pytest.mark.parametrize(
    "data",
    [
        b"language,text\n\xff\xfe\xfa\n",  # neither UTF-8 nor cp949
        codecs.BOM_UTF8 + "안녕".encode("cp949"),  # a UTF-8 mark on other bytes
        codecs.BOM_UTF16_LE + b"l\x00a",  # a UTF-16 mark and an odd byte
    ],
    ids=["unknown", "false-utf8-bom", "truncated-utf16"],
)
def test_text_in_no_known_encoding_says_how_to_save_as_csv_utf8(tmp_path: Path, data: bytes) -> None:
    message = _error(tmp_path, "jobs.csv", data)
    assert "not text in" in message
    assert 'File > Save As > "CSV UTF-8 (쉼표로 분리)"' in message


def test_utf16_without_its_mark_is_not_read_as_utf8_with_nul_characters(tmp_path: Path) -> None:
    message = _error(tmp_path, "jobs.csv", f"{HEADER}\nko,hi,M,B\n".encode("utf-16-le"))
    assert "NUL" in message and "CSV UTF-8" in message


# --- tolerant headers and cells -------------------------------------------------


def test_header_names_match_without_case_or_blanks_and_id_cells_are_trimmed(tmp_path: Path) -> None:
    result = _csv(
        tmp_path,
        " Language, TEXT ,model,Clothes ,ISEXPORT,webhookurl,Locale,FileName,Colour",
        " ko ,  두 칸 띄운 대본  , M000004017 ,BG00006160\t, yes ,https://example.com/h , zh , 첫째.mp4 , red ",
    )
    assert result.jobs == [
        {
            "language": "ko",
            "text": "  두 칸 띄운 대본  ",
            "model": "M000004017",
            "clothes": "BG00006160",
            "isExport": True,
            "webhookUrl": "https://example.com/h",
            "locale": "zh",
            "filename": "첫째.mp4",
            "Colour": "red",  # unknown: kept as written, for the validator's "did you mean"
        }
    ]


def test_missing_columns_are_named_with_the_columns_found(tmp_path: Path) -> None:
    message = _error(tmp_path, "jobs.csv", "언어,대본,모델,의상\nko,hi,M,B\n".encode())
    assert "lacks the column(s) language, text, model, clothes (found: 언어, 대본, 모델, 의상)" in message
    assert "first row must be the header" not in message


def test_a_first_row_of_data_is_told_to_be_a_header(tmp_path: Path) -> None:
    message = _error(tmp_path, "jobs.csv", "ko,안녕하세요,M000004017,BG00006160\n".encode())
    assert "line 1: the header lacks the column(s)" in message
    assert "the first row must be the header" in message


def test_leading_blank_lines_and_trailing_empty_columns_are_ignored(tmp_path: Path) -> None:
    result = _csv(tmp_path, "", ",,,,", f"{HEADER},,", "ko,hi,M,B,,", "ko,hi,M,B")
    assert result.jobs == [{"language": "ko", "text": "hi", "model": "M", "clothes": "B"}] * 2
    assert result.origins == ["line 4", "line 5"]


def test_a_filename_cell_is_carried_only_when_non_empty(tmp_path: Path) -> None:
    result = _csv(tmp_path, f"{HEADER},FILENAME", "ko,a,M,B, 인사 영상.mp4 ", "ko,b,M,B,  ")
    assert [job.get("filename") for job in result.jobs] == ["인사 영상.mp4", None]


# --- workbooks ------------------------------------------------------------------


def _xlsx(tmp_path: Path, rows: List[List[Any]], name: str = "jobs.xlsx") -> Path:
    openpyxl = pytest.importorskip("openpyxl", reason="the excel extra (openpyxl) is not installed")
    book = openpyxl.Workbook()
    book.active.title = "대본"
    for row in rows:
        book.active.append(row)
    book.create_sheet("다른 시트").append(["ignored"])
    path = tmp_path / name
    book.save(path)
    return path


def test_an_xlsx_first_sheet_is_read_like_a_csv(tmp_path: Path) -> None:
    path = _xlsx(
        tmp_path,
        [
            [],
            [" Language", "Text", "MODEL", "clothes", "uppercut", "isExport", "workspaceId", "resolution", "filename"],
            ["ko", " 안녕하세요 ", " M000004017", "BG00006160", 2, True, 12345, 720, "인사"],
            [None, None, None, None],
            ["ko", 2024, "M2", "B2", None, 0, None, 1080.0, 7],
        ],
    )
    result = read_jobs_file(path)
    assert result.jobs == [
        {"language": "ko", "text": " 안녕하세요 ", "model": "M000004017", "clothes": "BG00006160", "uppercut": 2}
        | {"isExport": True, "workspaceId": "12345", "resolution": "720", "filename": "인사"},
        {"language": "ko", "text": "2024", "model": "M2", "clothes": "B2", "isExport": False}
        | {"resolution": "1080", "filename": "7"},
    ]
    assert (result.origins, result.encoding, result.format) == (["row 3", "row 5"], None, "xlsx")


@pytest.mark.parametrize(
    "cell, message",
    [
        (12345678901234567, r"row 2, column workspaceId: Excel holds 1.23456789012345\d*e\+16 as a number.*as text"),
        (datetime.datetime(2024, 5, 1), "row 2, column workspaceId: Excel holds a date or time"),
    ],
)
def test_an_xlsx_cell_excel_may_have_changed_is_an_error(tmp_path: Path, cell: Any, message: str) -> None:
    path = _xlsx(tmp_path, [[*REQUIRED_FIELDS, "workspaceId"], ["ko", "hi", "M", "B", cell]])
    with pytest.raises(JobsFileError, match=message):
        read_jobs_file(path)


def test_an_xlsx_without_the_required_columns_says_which_row(tmp_path: Path) -> None:
    path = _xlsx(tmp_path, [["ko", "안녕하세요", "M000004017", "BG00006160"]])
    with pytest.raises(JobsFileError, match=r"row 1: the header lacks.*the first row must be the header"):
        read_jobs_file(path)


def test_a_workbook_is_recognised_by_its_content_whatever_its_name(tmp_path: Path) -> None:
    path = _xlsx(tmp_path, [list(REQUIRED_FIELDS), ["ko", "hi", "M", "B"]], name="jobs.csv")
    assert read_jobs_file(path).format == "xlsx"


def test_a_broken_xlsx_is_an_error(tmp_path: Path) -> None:
    pytest.importorskip("openpyxl", reason="the excel extra (openpyxl) is not installed")
    assert "cannot read it as an Excel workbook" in _error(tmp_path, "jobs.xlsx", b"PK\x03\x04 not a zip")


def test_without_openpyxl_an_xlsx_says_how_to_install_it_or_save_as_csv(tmp_path: Path) -> None:
    path = _write(tmp_path, "jobs.xlsx", b"PK\x03\x04")
    script = (
        "import sys; sys.modules['openpyxl'] = None\n"
        "from aistudios_chromakey._jobs import JobsFileError, read_jobs_file\n"
        "try:\n    read_jobs_file(sys.argv[1])\nexcept JobsFileError as error:\n    print(error)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "utf-8"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=True,
    )
    assert 'pip install "aistudios-chromakey[excel]"' in result.stdout
    assert 'File > Save As > "CSV UTF-8 (쉼표로 분리)"' in result.stdout


@pytest.mark.parametrize("name, data", [("jobs.xls", b"anything"), ("jobs.csv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1")])
def test_an_old_xls_workbook_says_to_save_as_xlsx_or_csv(tmp_path: Path, name: str, data: bytes) -> None:
    message = _error(tmp_path, name, data)
    assert ".xls" in message and "*.xlsx" in message and "CSV UTF-8" in message
