"""The tutorial's steps as four plain functions.

Each is a thin wrapper over a :class:`~aistudios_chromakey.client.Client`
made from its arguments, as ``requests.get`` is over a ``Session``. The
client is kept for the next call with the same arguments (per thread, a
few at a time), so the tutorial's loop of ``request_export``,
``wait_for_video`` and ``download_video`` reuses its connections and, on
V3, its access token.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import threading
import weakref
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Tuple, Union

import requests

from ._transport import DEFAULT_REQUEST_TIMEOUT, RequestTimeout
from .catalogue import Model
from .client import Client
from .credentials import API_KEY_ENV, APP_ID_ENV, USER_KEY_ENV
from .events import ProgressCallback
from .flows import BASE_URL_ENV, LEGACY
from .polling import DEFAULT_POLL_INTERVAL, DEFAULT_RENDER_TIMEOUT

_KEPT = 4
_local = threading.local()
_every: weakref.WeakSet[Client] = weakref.WeakSet()


def _secret_digest(value: Optional[str]) -> Optional[str]:
    return None if value is None else hashlib.sha256(str(value).encode("utf-8", "replace")).hexdigest()


def client_for(
    token: Optional[str] = None,
    *,
    api: Optional[str] = None,
    base_url: Optional[str] = None,
    app_id: Optional[str] = None,
    user_key: Optional[str] = None,
    session: Optional[requests.Session] = None,
    request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT,
) -> Client:
    """The client the plain functions use for these arguments: the one kept
    from an earlier call with the same ones, else a new one."""
    environment = tuple(os.environ.get(name) for name in (API_KEY_ENV, APP_ID_ENV, USER_KEY_ENV, BASE_URL_ENV))
    identity: Tuple[Any, ...] = (
        api,
        base_url,
        request_timeout,
        session,  # by identity, and kept alive while its client is
        *(_secret_digest(value) for value in (token, app_id, user_key, *environment)),
    )
    kept: OrderedDict[Tuple[Any, ...], Client] = getattr(_local, "clients", None) or OrderedDict()
    _local.clients = kept
    client = kept.pop(identity, None)
    if client is None:
        client = Client(
            token,
            api=api,
            base_url=base_url,
            app_id=app_id,
            user_key=user_key,
            session=session,
            request_timeout=request_timeout,
        )
        _every.add(client)
    kept[identity] = client
    while len(kept) > _KEPT:
        kept.popitem(last=False)[1].close()
    return client


@atexit.register
def _close_kept() -> None:
    for client in list(_every):
        client.close()


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
) -> str:
    """Ask the service to render one chroma-key video (tutorial step 3).

    The job is checked before anything is sent. The request is resent only
    when the service certainly did not receive it, so one call is at most one
    paid render.

    :param job: a dict with ``language``, ``text``, ``model``, ``clothes`` and
        any optional field the chosen API documents.
    :param token: the legacy API key (or a ready V3 access token); defaults
        to ``$AISTUDIOS_API_KEY``.
    :param api: ``"legacy"`` (the tutorial's endpoints) or ``"v3"``; by
        default the one the credentials belong to (an AppId and a UserKey:
        V3; an API key: legacy).
    :param base_url: ``scheme://host[:port]`` of the service, or ``"cn"``
        (V3's China service); defaults to ``$AISTUDIOS_BASE_URL``, else the
        documented host of ``api``.
    :param session: a ``requests.Session`` whose settings to use.
    :param request_timeout: seconds to connect and to wait for an answer,
        one number or a ``(connect, read)`` pair.
    :param app_id: V3: the AppId from your profile, with ``user_key``
        (defaults: ``$AISTUDIOS_APP_ID``, ``$AISTUDIOS_USER_KEY``); the
        access token is minted from them.
    :param user_key: V3: the UserKey from your profile.
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
    client = client_for(
        token, api=api, base_url=base_url, app_id=app_id, user_key=user_key, session=session,
        request_timeout=request_timeout,
    )  # fmt: skip
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
) -> str:
    """Poll a render's progress until it is done (tutorial step 4).

    Done means progress has reached 100 *and* the video's address has
    appeared; until both hold, it polls again. By default the next poll is
    timed from the progress seen so far (just after the render should end);
    ``poll_interval=3`` polls every 3 seconds, as the tutorial does. When the
    service rate-limits the polls (HTTP 429), it waits as long as asked.

    :param project_key: what :func:`request_export` returned.
    :param token: the API key (or V3 access token); defaults to ``$AISTUDIOS_API_KEY``.
    :param api: ``"legacy"`` or ``"v3"``, as for the export (by default
        the credentials' own).
    :param base_url: the service's ``scheme://host[:port]``.
    :param session: a ``requests.Session`` whose settings to use.
    :param poll_interval: seconds between polls; ``None`` (the default) for
        adaptive polling.
    :param timeout: seconds the render may take, ``None`` for no limit.
    :param on_progress: called with a :class:`ProgressEvent` after each poll.
    :param request_timeout: seconds to connect and to wait for each answer.
    :param app_id: V3: the AppId, with ``user_key``, instead of a token.
    :param user_key: V3: the UserKey.
    :return: the video's address (a URL on the storage host).
    :rtype: str
    :raises RenderFailed: the service reported a failed or unknown render.
    :raises RenderTimeout: not done within ``timeout`` (also a ``TimeoutError``).
    :raises AuthenticationError: the service refused the credential.
    :raises ServiceError: the service answered something unusable.

    Usage::

        >>> url = wait_for_video(key, poll_interval=3, timeout=600)
    """
    client = client_for(
        token, api=api, base_url=base_url, app_id=app_id, user_key=user_key, session=session,
        request_timeout=request_timeout,
    )  # fmt: skip
    return client.wait_for_video(project_key, poll_interval=poll_interval, timeout=timeout, on_progress=on_progress)


def download_video(
    url: str,
    out_dir: Union[str, os.PathLike[str]] = "videos",
    *,
    filename: Optional[str] = None,
    project_key: Optional[str] = None,
    session: Optional[requests.Session] = None,
    request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT,
) -> Path:
    """Download a finished video into ``out_dir`` (tutorial step 4).

    The file is named after the address, as in the tutorial (the basename of
    its path, made safe), unless ``filename`` is given. An existing file is
    never replaced: the new one gets a numbered suffix (``clip-2.mp4``).
    Nothing appears under the final name until the whole body has arrived.

    :param url: the video's address, from :func:`wait_for_video`.
    :param out_dir: the output folder; created if missing.
    :param filename: the file name to use instead of the address's basename.
    :param project_key: used to name the file when the address has no name.
    :param session: a ``requests.Session`` whose settings to use. No
        credential is ever sent to the download host, even if this session
        carries one.
    :param request_timeout: seconds to connect and to wait for data.
    :return: the path of the downloaded file.
    :rtype: pathlib.Path
    :raises DownloadError: the download failed, or what arrived is not a
        video (an error page sent with status 200); nothing was saved.

    Usage::

        >>> path = download_video(url, out_dir="videos")
    """
    # A download needs no credential and no API address: the documented one
    # stands in, so that nothing in the environment can make this call fail.
    client = client_for(api="legacy", base_url=LEGACY.host, session=session, request_timeout=request_timeout)
    return client.download_video(url, out_dir, filename=filename, project_key=project_key)


def list_models(
    token: Optional[str] = None,
    *,
    api: str = "v3",
    base_url: Optional[str] = None,
    session: Optional[requests.Session] = None,
    request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT,
    app_id: Optional[str] = None,
    user_key: Optional[str] = None,
) -> List[Model]:
    """The V3 model catalogue: where a job's ``model`` and ``clothes`` IDs
    come from. (The legacy API documents none: ``ValueError``.)

    :param token: a ready V3 access token; or give ``app_id`` and ``user_key``.
    :return: each model with its ``id``, ``names`` (``"ko"``, ``"en"``) and
        ``clothes`` (each with ``id`` and ``names``).
    :rtype: list[aistudios_chromakey.catalogue.Model]
    :raises AuthenticationError: no credential, or the service refused it.
    :raises ServiceError: the catalogue could not be read.

    Usage::

        >>> for model in list_models(app_id=APP_ID, user_key=USER_KEY):
        ...     print(model.id, model.names.get("en"), [c.id for c in model.clothes])
    """
    client = client_for(
        token, api=api, base_url=base_url, app_id=app_id, user_key=user_key, session=session,
        request_timeout=request_timeout,
    )  # fmt: skip
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
) -> List[Path]:
    """Export every job and download its video into ``out_dir`` (the
    tutorial's whole loop).

    Every job is checked before the first request is sent. A job that fails
    does not stop the others. Re-running the same batch pays for nothing
    twice: finished jobs are skipped, renders already accepted are polled
    again, and only jobs never accepted are exported. Ctrl-C stops cleanly;
    run the same batch again to resume.

    :param jobs: a list of job dicts (``language``, ``text``, ``model``,
        ``clothes``, plus optional fields of the chosen API; ``filename`` to
        name the job's file, never sent).
    :param token: the API key (or V3 access token); defaults to ``$AISTUDIOS_API_KEY``.
    :param out_dir: the output folder; created if missing.
    :param api: ``"legacy"`` (the tutorial's endpoints) or ``"v3"``; by
        default the credentials' own: an AppId and a UserKey mean V3, an API
        key the legacy flow.
    :param base_url: the service's ``scheme://host[:port]``, or ``"cn"``.
    :param session: a ``requests.Session`` whose settings to use.
    :param poll_interval: seconds between two polls of the same render;
        ``None`` (the default) times each poll from the render's progress.
    :param timeout: seconds one render may take, ``None`` for no limit.
    :param on_progress: called with a :class:`ProgressEvent` at each step.
    :param concurrency: how many renders may run on the service at once;
        1 is the tutorial's one-after-the-other loop.
    :param resume: keep a journal in ``out_dir`` and use it to skip or resume
        what an earlier run of this batch did.
    :param request_timeout: seconds to connect and to wait for each answer.
    :param app_id: V3: the AppId, with ``user_key``, instead of a token.
    :param user_key: V3: the UserKey.
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
    :raises InvalidJob: a job is malformed (nothing was sent).
    :raises AuthenticationError: no credential, or the service refused it.
    :raises JournalError: the journal cannot be read (nothing was sent).
    :raises BatchError: some jobs failed; it lists them and keeps the paths
        of those that finished.

    Usage::

        >>> paths = export_chromakeys(jobs, out_dir="videos", concurrency=4)
    """
    client = client_for(
        token, api=api, base_url=base_url, app_id=app_id, user_key=user_key, session=session,
        request_timeout=request_timeout,
    )  # fmt: skip
    return client.export_chromakeys(
        jobs, out_dir=out_dir, poll_interval=poll_interval, timeout=timeout, on_progress=on_progress,
        concurrency=concurrency, resume=resume, filename_template=filename_template, adopt=adopt,
        check_catalogue=check_catalogue,
    )  # fmt: skip
