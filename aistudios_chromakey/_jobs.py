"""What a job may contain, checked before anything is sent or paid for.

A job is a dict, as in the tutorial: ``language``, ``text``, ``model`` and
``clothes``, plus any optional field the chosen flow documents, sent
unchanged; and ``filename``, the caller's name for its file, never sent. A
field the service has but this library does not know yet goes in ``extra``
(``{"extra": {"ttsType": "..."}}``, a table's column ``extra.ttsType``),
sent unchecked; any other unknown key is refused as a likely typo.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit

from ._access import APIS, BOOLEAN, NUMBER, RESOLUTION, TEXT, URL, Api
from ._names import check_filename
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


# Each kind of optional field (_apis.py): how to check it, and what it must be.
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
        raise InvalidJob(
            f"is {len(job['text']):,} characters long, more than the {max_text:,} allowed without being asked "
            "(about an hour of speech). If it is meant, raise the bound: Client(max_text_length=N) given as "
            "client=, or --max-text-length N",
            position=position,
            field="text",
        )
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
