"""The tutorial's steps as plain functions, and the batch: each makes a
Client for the call and closes it afterwards, as ``requests.get`` does."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, ContextManager, Iterable, List, Mapping, Optional, Tuple, Union

import requests

from . import video
from ._access import LEGACY
from ._answers import Model
from ._batch import run_batch
from ._client import Client
from ._http import DEFAULT_REQUEST_TIMEOUT, RequestTimeout
from ._polling import DEFAULT_POLL_INTERVAL, DEFAULT_RENDER_TIMEOUT
from ._reports import ProgressCallback


def _client(client: Optional[Client], **settings: Any) -> ContextManager[Client]:
    """``client`` itself (left open), else one made from ``settings`` for this call."""
    if client is None:
        return Client(**settings)
    given = sorted(name for name, value in settings.items() if value is not None and name != "request_timeout")
    if given or settings.get("request_timeout") != DEFAULT_REQUEST_TIMEOUT:
        also = ", ".join(given) or "request_timeout"
        raise ValueError(f"give either client= or the settings of a new client ({also}), not both")
    return contextlib.nullcontext(client)


def request_export(
    job: Mapping[str, Any],
    token: Optional[str] = None,
    *,
    api: Optional[str] = None,
    base_url: Optional[str] = None,
    session: Optional[requests.Session] = None,
    request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT,
    app_id: Optional[str] = None,
    user_key: Optional[str] = None,
    client: Optional[Client] = None,
) -> str:
    """Ask the service to render one chroma-key video (tutorial step 3) and
    return the project key :func:`wait_for_video` takes. Settings: see
    ``help(aistudios_chromakey)``.

    ``job`` is a dict with ``language``, ``text``, ``model``, ``clothes`` and
    any optional field the chosen API documents, checked before anything is
    sent. The request is resent only when the service certainly did not
    receive it, so one call is at most one paid render.

    :raises: :class:`InvalidJob`, :class:`AuthenticationError`,
        :class:`ExportRejected` (its message says why),
        :class:`ExportUncertain` (the render may exist), :class:`ServiceError`.
    """
    settings = dict(token=token, api=api, base_url=base_url, app_id=app_id, user_key=user_key, session=session)
    with _client(client, request_timeout=request_timeout, **settings) as client:
        return client.request_export(job)


def wait_for_video(
    project_key: str,
    token: Optional[str] = None,
    *,
    api: Optional[str] = None,
    base_url: Optional[str] = None,
    session: Optional[requests.Session] = None,
    poll_interval: Optional[float] = DEFAULT_POLL_INTERVAL,
    timeout: Optional[float] = DEFAULT_RENDER_TIMEOUT,
    on_progress: Optional[ProgressCallback] = None,
    request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT,
    app_id: Optional[str] = None,
    user_key: Optional[str] = None,
    client: Optional[Client] = None,
) -> str:
    """Poll the render of ``project_key`` until it is done (tutorial step
    4): progress at 100 *and* the video's address, which it returns.
    Settings: see ``help(aistudios_chromakey)``.

    :param poll_interval: seconds between polls (the tutorial's is 3);
        ``None`` (the default) times each from the progress seen so far. A
        rate limit (HTTP 429) is waited out as long as asked.
    :param timeout: seconds the render may take, ``None`` for no limit.
    :param on_progress: called with a :class:`ProgressEvent` after each poll.
    :raises: :class:`RenderFailed` (a failed or unknown render),
        :class:`RenderTimeout`, :class:`AuthenticationError`, :class:`ServiceError`.
    """
    settings = dict(token=token, api=api, base_url=base_url, app_id=app_id, user_key=user_key, session=session)
    with _client(client, request_timeout=request_timeout, **settings) as client:
        return client.wait_for_video(project_key, poll_interval=poll_interval, timeout=timeout, on_progress=on_progress)


def download_video(
    url: str,
    out_dir: Union[str, os.PathLike[str]] = "videos",
    *,
    filename: Optional[str] = None,
    project_key: Optional[str] = None,
    session: Optional[requests.Session] = None,
    request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT,
    client: Optional[Client] = None,
) -> Path:
    """Download the video at ``url`` (from :func:`wait_for_video`) into
    ``out_dir``, created if missing, and return its path (tutorial step 4).
    Settings: see ``help(aistudios_chromakey)``.

    The file is named after the address's basename, made safe, as in the
    tutorial, unless ``filename`` is given (``project_key`` names it when the
    address has no name). An existing file is never replaced: the new one
    gets a numbered suffix (``clip-2.mp4``). Nothing appears under the final
    name until the whole body has arrived; a failed download, or one that is
    not a video (an error page sent with status 200), raises :class:`DownloadError`.
    """
    # No credential and no API address needed: the documented one stands in, whatever the environment says.
    settings = {} if client is not None else {"api": "legacy", "base_url": LEGACY.host}
    with _client(client, request_timeout=request_timeout, session=session, **settings) as client:
        return client.download_video(url, out_dir, filename=filename, project_key=project_key)


def list_models(
    token: Optional[str] = None,
    *,
    api: Optional[str] = None,
    base_url: Optional[str] = None,
    session: Optional[requests.Session] = None,
    request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT,
    app_id: Optional[str] = None,
    user_key: Optional[str] = None,
    client: Optional[Client] = None,
) -> List[Model]:
    """The V3 model catalogue, where a job's ``model`` and ``clothes`` IDs
    come from: each model with its ``id``, ``names`` (``"ko"``, ``"en"``)
    and ``clothes`` (each with ``id`` and ``names``). The legacy API
    documents none (``ValueError``). Settings: see ``help(aistudios_chromakey)``.

    :raises: :class:`AuthenticationError`, :class:`ServiceError`.
    """
    api = api or ("v3" if client is None else None)  # the catalogue is V3's
    settings = dict(token=token, api=api, base_url=base_url, app_id=app_id, user_key=user_key, session=session)
    with _client(client, request_timeout=request_timeout, **settings) as client:
        return client.models()


def export_chromakeys(
    jobs: Iterable[Mapping[str, Any]],
    token: Optional[str] = None,
    *,
    out_dir: Union[str, os.PathLike[str]] = "videos",
    api: Optional[str] = None,
    base_url: Optional[str] = None,
    session: Optional[requests.Session] = None,
    poll_interval: Optional[float] = DEFAULT_POLL_INTERVAL,
    timeout: Optional[float] = DEFAULT_RENDER_TIMEOUT,
    on_progress: Optional[ProgressCallback] = None,
    concurrency: int = 1,
    resume: bool = True,
    request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT,
    app_id: Optional[str] = None,
    user_key: Optional[str] = None,
    filename_template: Optional[str] = None,
    adopt: Optional[Mapping[int, str]] = None,
    check_catalogue: bool = True,
    transparent: Optional[str] = None,
    background: Optional[Union[str, os.PathLike[str], Tuple[int, int, int]]] = None,
    client: Optional[Client] = None,
) -> List[Path]:
    """Export every job and download its video into ``out_dir`` (the
    tutorial's whole loop); return the files, in the order of the jobs.
    Settings: see ``help(aistudios_chromakey)``; the README's *Options*
    tells more of each.

    Every job is checked before the first request is sent (``jobs``: dicts
    as :func:`request_export` takes, each with an optional ``filename``,
    never sent). A job that fails does not stop the others. Re-running the
    same batch pays for nothing twice: finished jobs are skipped, renders
    already accepted are polled again, and only jobs never accepted are
    exported. Ctrl-C stops cleanly; run the same batch again to resume.

    :param poll_interval, timeout: as :func:`wait_for_video` takes, per render.
    :param on_progress: called with a :class:`ProgressEvent` at each step.
    :param concurrency: how many renders may run at once (1: the tutorial's loop).
    :param resume: keep a journal in ``out_dir`` to skip or resume what an
        earlier run of this batch did.
    :param filename_template: how to name every file, for example
        ``"{position:03d}-{text}"``, from ``{position}``, ``{text}`` (its
        first words), ``{language}``, ``{model}``, ``{clothes}``, ``{key}``
        and ``{name}`` (the tutorial's); a job's own ``filename`` comes first.
    :param adopt: project keys you know for some jobs, by 1-based position:
        polled and downloaded, never exported again.
    :param check_catalogue: V3: check each job's model and clothes against
        the service's model list before anything is paid for.
    :param transparent, background: also make each video, as it arrives, a
        clip with an alpha channel (``"webm"``, ``"mov"`` or ``"png"``) or a
        finished MP4 over an image, video or colour (``"#3050A0"``): see
        :mod:`aistudios_chromakey.video` (ffmpeg).
    :raises: :class:`InvalidJob`, ``FFmpegMissing`` or :class:`JournalError`
        before anything is sent; :class:`AuthenticationError`; :class:`BatchError`
        when some jobs failed (it keeps the paths of those that finished).
    """
    then = video.batch_step(transparent, background)  # checked before anything is paid for
    settings = dict(token=token, api=api, base_url=base_url, app_id=app_id, user_key=user_key, session=session)
    with _client(client, request_timeout=request_timeout, **settings) as client:
        return run_batch(
            client, jobs, out_dir=out_dir, poll_interval=poll_interval, timeout=timeout, on_progress=on_progress,
            concurrency=concurrency, resume=resume, filename_template=filename_template, adopt=adopt,
            check_catalogue=check_catalogue, then=then,
        )  # fmt: skip
