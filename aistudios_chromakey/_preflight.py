"""What a batch checks before anything is sent or paid for: the output
folder, the jobs' models (V3), the keys given to adopt, and each job's
identity across runs."""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Collection, Dict, List, Mapping, Optional, Tuple

from ._answers import check_jobs_against
from ._client import Client
from ._jobs import Job
from ._reports import JournalError, ServiceError

logger = logging.getLogger("aistudios_chromakey")


def fingerprints(jobs: List[Job], api: str, base_url: str) -> List[str]:
    """A stable identity per job: its body, the flow and the host. The n-th
    copy of an identical job is a job of its own (``#n``)."""
    seen: Dict[str, int] = {}
    result = []
    for job in jobs:
        canonical = json.dumps({"job": job.body, "api": api, "host": base_url}, sort_keys=True, ensure_ascii=False)
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:32]
        seen[digest] = seen.get(digest, 0) + 1
        result.append(f"{digest}#{seen[digest]}")
    return result


def check_concurrency(concurrency: object) -> None:
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ValueError(f"concurrency must be a whole number >= 1, not {concurrency!r}")


def check_adopted(adopt: Optional[Mapping[int, str]], count: int, resume: bool) -> Dict[int, str]:
    """``adopt``: project keys the caller knows for some jobs (a key printed
    when the journal could not be written), by 1-based position."""
    if not adopt:
        return {}
    if not resume:
        raise ValueError("adopt= needs the journal: it records the keys it is given (resume=True)")
    if not isinstance(adopt, Mapping):
        raise ValueError(f"adopt must map job positions to project keys, not {type(adopt).__name__}")
    for position, key in adopt.items():
        if not isinstance(position, int) or isinstance(position, bool) or not 1 <= position <= count:
            raise ValueError(f"adopt: {position!r} is not the position of a job (1 to {count})")
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"adopt: job {position}'s project key must be a non-empty string, not {key!r}")
    return {position: key.strip() for position, key in adopt.items()}


def check_catalogue(client: Client, jobs: List[Job]) -> None:
    """V3: every job's model and clothes must be in the service's catalogue.
    One that cannot be read only earns a warning (the service judges the
    jobs), but refused credentials or an unreachable service stop here."""
    try:
        models = client.models()
    except ServiceError as error:
        if error.unreachable:
            raise
        logger.warning(
            "the model catalogue could not be read (%s); the jobs' model IDs are not checked", error,
            extra={"notice": True},
        )  # fmt: skip
        return
    check_jobs_against(jobs, models)


#: Free space the output folder must have before anything is paid for: room for a video.
MIN_FREE_BYTES = 64 * 1024 * 1024


def check_folder(folder: Path, create: bool = True) -> None:
    """Before any render is paid for: ``folder`` exists (or is created), a file
    can be written there, and the disk has room for a video. ``create=False``
    (a dry run) checks where a missing folder would be made instead."""
    try:
        if not create and not folder.exists():
            parent = next(p for p in folder.absolute().parents if p.exists())
            if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
                raise PermissionError(errno.EACCES, f"{parent} cannot be written")
            folder = parent
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".aistudios-chromakey-probe.") as probe:
            probe.write(b"\0")
        free = shutil.disk_usage(folder).free
    except OSError as error:
        raise JournalError(
            f"cannot save videos in the output folder {folder} ({error.strerror or error}); nothing was sent"
        ) from None
    if free < MIN_FREE_BYTES:
        raise JournalError(
            f"the output folder {folder} has only {free // (1024 * 1024)} MiB free, not enough for a video; "
            "nothing was sent"
        )


def projects_like(projects: List[Mapping[str, Any]], text: str, known: Collection[str]) -> List[Tuple[str, str, str]]:
    """``(key, name, state)`` of the listed projects that may be the lost
    export of a job whose script is ``text``: not the project of any job the
    journal knows, and named with that text (all of it, or a start of ten
    characters or more, as a shortened title). The list's ``name`` is not
    documented; where it holds anything else, nothing matches."""
    wanted = " ".join(text.split())
    found = []
    for item in projects:
        key = str(item.get("id", "")).strip()
        name = " ".join(str(item.get("name") or "").split())
        stem = name.rstrip(".…").rstrip()
        if key and key not in known and name and (name == wanted or (len(stem) >= 10 and wanted.startswith(stem))):
            found.append((key, name, str(item.get("state") or "")))
    return found
