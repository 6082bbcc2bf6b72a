"""The tutorial's steps as four plain functions, and the batch: each makes
a Client from its settings for the call and closes it afterwards, as
``requests.get`` does with a ``Session`` (see ``help(aistudios_chromakey)``).
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

import requests

from ._apis import LEGACY
from ._batch import run_batch
from ._catalogue import Model
from ._client import Client
from ._events import ProgressCallback
from ._life import Then
from ._polling import DEFAULT_POLL_INTERVAL, DEFAULT_RENDER_TIMEOUT
from ._transport import DEFAULT_REQUEST_TIMEOUT, RequestTimeout


@contextlib.contextmanager
def _client(client: Optional[Client], **settings: Any) -> Iterator[Client]:
    """``client`` itself (left open), else one made from ``settings`` for this call."""
    if client is None:
        with Client(**settings) as made:
            yield made
        return
    given = sorted(name for name, value in settings.items() if value is not None and name != "request_timeout")
    if given or settings.get("request_timeout") != DEFAULT_REQUEST_TIMEOUT:
        also = ", ".join(given) or "request_timeout"
        raise ValueError(f"give either client= or the settings of a new client ({also}), not both")
    yield client


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
    """Ask the service to render one chroma-key video (tutorial step 3).

    The job is checked before anything is sent. The request is resent only
    when the service certainly did not receive it, so one call is at most one
    paid render.

    Settings (``token``, ``app_id``, ``user_key``, ``api``, ``base_url``, ``session``,
    ``request_timeout``, ``client``): see ``help(aistudios_chromakey)``.

    :param job: a dict with ``language``, ``text``, ``model``, ``clothes`` and
        any optional field the chosen API documents.
    :return: the project key that :func:`wait_for_video` takes.
    :rtype: str
    :raises InvalidJob: the job is malformed (nothing was sent).
    :raises AuthenticationError: no credential, or the service refused it.
    :raises ExportRejected: the service refused the job; its message says why.
    :raises ExportUncertain: the answer was lost; the render may exist.
    :raises ServiceError: the service could not be reached or answered
        something unusable.

    Usage::

        >>> key = request_export({"language": "ko", "text": "안녕하세요",
        ...                       "model": "M000004017", "clothes": "BG00006160"})
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
    """Poll a render's progress until it is done (tutorial step 4).

    Done means progress has reached 100 *and* the video's address has
    appeared; until both hold, it polls again. By default the next poll is
    timed from the progress seen so far (just after the render should end);
    ``poll_interval=3`` polls every 3 seconds, as the tutorial does. When the
    service rate-limits the polls (HTTP 429), it waits as long as asked.

    Settings (``token``, ``app_id``, ``user_key``, ``api``, ``base_url``, ``session``,
    ``request_timeout``, ``client``): see ``help(aistudios_chromakey)``.

    :param project_key: what :func:`request_export` returned.
    :param poll_interval: seconds between polls; ``None`` (the default) for
        adaptive polling.
    :param timeout: seconds the render may take, ``None`` for no limit.
    :param on_progress: called with a :class:`ProgressEvent` after each poll.
    :return: the video's address (a URL on the storage host).
    :rtype: str
    :raises RenderFailed: the service reported a failed or unknown render.
    :raises RenderTimeout: not done within ``timeout`` (also a ``TimeoutError``).
    :raises AuthenticationError: the service refused the credential.
    :raises ServiceError: the service answered something unusable.

    Usage::

        >>> url = wait_for_video(key, poll_interval=3, timeout=600)
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
    """Download a finished video into ``out_dir`` (tutorial step 4).

    The file is named after the address, as in the tutorial (the basename of
    its path, made safe), unless ``filename`` is given. An existing file is
    never replaced: the new one gets a numbered suffix (``clip-2.mp4``).
    Nothing appears under the final name until the whole body has arrived.

    Settings (``token``, ``app_id``, ``user_key``, ``api``, ``base_url``, ``session``,
    ``request_timeout``, ``client``): see ``help(aistudios_chromakey)``.

    :param url: the video's address, from :func:`wait_for_video`.
    :param out_dir: the output folder; created if missing.
    :param filename: the file name to use instead of the address's basename.
    :param project_key: used to name the file when the address has no name.
    :return: the path of the downloaded file.
    :rtype: pathlib.Path
    :raises DownloadError: the download failed, or what arrived is not a
        video (an error page sent with status 200); nothing was saved.

    Usage::

        >>> path = download_video(url, out_dir="videos")
    """
    # A download needs no credential and no API address: the documented one
    # stands in, so that nothing in the environment can make this call fail.
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
    """The V3 model catalogue: where a job's ``model`` and ``clothes`` IDs
    come from. (The legacy API documents none: ``ValueError``.)

    Settings (``token``, ``app_id``, ``user_key``, ``api``, ``base_url``, ``session``,
    ``request_timeout``, ``client``): see ``help(aistudios_chromakey)``.

    :return: each model with its ``id``, ``names`` (``"ko"``, ``"en"``) and
        ``clothes`` (each with ``id`` and ``names``).
    :rtype: list[aistudios_chromakey._catalogue.Model]
    :raises AuthenticationError: no credential, or the service refused it.
    :raises ServiceError: the catalogue could not be read.

    Usage::

        >>> for model in list_models(app_id=APP_ID, user_key=USER_KEY):
        ...     print(model.id, model.names.get("en"), [c.id for c in model.clothes])
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
    tutorial's whole loop).

    Every job is checked before the first request is sent. A job that fails
    does not stop the others. Re-running the same batch pays for nothing
    twice: finished jobs are skipped, renders already accepted are polled
    again, and only jobs never accepted are exported. Ctrl-C stops cleanly;
    run the same batch again to resume.

    Settings (``token``, ``app_id``, ``user_key``, ``api``, ``base_url``, ``session``,
    ``request_timeout``, ``client``): see ``help(aistudios_chromakey)``.

    :param jobs: a list of job dicts (``language``, ``text``, ``model``,
        ``clothes``, plus optional fields of the chosen API; ``filename`` to
        name the job's file, never sent).
    :param out_dir: the output folder; created if missing.
    :param poll_interval: seconds between two polls of the same render;
        ``None`` (the default) times each poll from the render's progress.
    :param timeout: seconds one render may take, ``None`` for no limit.
    :param on_progress: called with a :class:`ProgressEvent` at each step.
    :param concurrency: how many renders may run on the service at once;
        1 is the tutorial's one-after-the-other loop.
    :param resume: keep a journal in ``out_dir`` and use it to skip or resume
        what an earlier run of this batch did.
    :param filename_template: how to name every file, for example
        ``"{position:03d}-{text}"``: fields ``{position}``, ``{text}`` (its
        first words), ``{language}``, ``{model}``, ``{clothes}``, ``{key}``
        (the project key), ``{name}`` (the tutorial's name); made safe, with
        ``.mp4`` added. A job's own ``filename`` comes first.
    :param adopt: project keys you know for some jobs, by position (1-based),
        such as a key printed when the journal could not be written: they are
        recorded, then polled and downloaded, never exported again.
    :param check_catalogue: V3: check each job's model (and clothes, where
        listed) against the service's model list before anything is paid
        for; a list that cannot be read only earns a warning. ``False``
        skips the check.
    :return: the downloaded files, in the order of the jobs.
    :rtype: list[pathlib.Path]
    :param transparent: also make each video a clip with an alpha channel
        as it arrives: ``"webm"``, ``"mov"`` or ``"png"`` (see
        :func:`aistudios_chromakey.video.make_transparent`; needs ffmpeg).
    :param background: also make each video a finished MP4 over this image,
        video or colour (``"#3050A0"``) as it arrives (see
        :func:`aistudios_chromakey.video.composite`; needs ffmpeg). Both
        are recorded in the journal: a re-run makes only what is missing.
    :raises InvalidJob: a job is malformed (nothing was sent).
    :raises AuthenticationError: no credential, or the service refused it.
    :raises FFmpegMissing: ``transparent`` or ``background`` was asked for
        and no ffmpeg can make it (nothing was sent).
    :raises JournalError: the journal cannot be read (nothing was sent).
    :raises BatchError: some jobs failed; it lists them and keeps the paths
        of those that finished.

    Usage::

        >>> paths = export_chromakeys(jobs, out_dir="videos", concurrency=4)
    """
    then = _finishing(transparent, background)  # before anything is paid for: ffmpeg, the background
    settings = dict(token=token, api=api, base_url=base_url, app_id=app_id, user_key=user_key, session=session)
    with _client(client, request_timeout=request_timeout, **settings) as client:
        return run_batch(
            client, jobs, out_dir=out_dir, poll_interval=poll_interval, timeout=timeout, on_progress=on_progress,
            concurrency=concurrency, resume=resume, filename_template=filename_template, adopt=adopt,
            check_catalogue=check_catalogue, then=then,
        )  # fmt: skip


def _finishing(transparent: Optional[str], background: Any) -> Optional[Then]:
    """The batch's last step for ``transparent`` or ``background``, checked
    (ffmpeg and its encoders, the background) before anything is sent."""
    if transparent is None and background is None:
        return None
    from . import video  # only for a batch that asks for it

    if transparent is not None and background is not None:
        raise ValueError("give transparent= or background=, not both: each batch makes one of them")
    if background is not None:
        video.check_background(background)
        video.check_ffmpeg("composite")
        return lambda path, progress: video.composite(path, background, progress=progress)
    if transparent not in ("webm", "mov", "png"):
        raise ValueError(f"transparent must be 'webm', 'mov' or 'png', not {transparent!r}")
    video.check_ffmpeg(transparent)
    return lambda path, progress: video.make_transparent(path, format=transparent, progress=progress)
