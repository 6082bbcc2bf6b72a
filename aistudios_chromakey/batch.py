"""The whole tutorial loop: export, wait and download every job of a batch."""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Tuple, Union

import requests

from ._transport import DEFAULT_REQUEST_TIMEOUT, RequestTimeout, session_scope
from .api import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_RENDER_TIMEOUT,
    ProgressCallback,
    ProgressEvent,
    _base_url,
    _export,
    _flow,
    _resolve_token,
    _validate_jobs,
    wait_for_video,
)
from .download import download_video
from .errors import AIStudiosError, AuthenticationError, BatchError

logger = logging.getLogger("aistudios_chromakey")


def export_chromakeys(
    jobs: Iterable[Mapping[str, Any]],
    token: Optional[str] = None,
    *,
    out_dir: Union[str, os.PathLike[str]] = "videos",
    api: str = "legacy",
    base_url: Optional[str] = None,
    session: Optional[requests.Session] = None,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    timeout: Optional[float] = DEFAULT_RENDER_TIMEOUT,
    on_progress: Optional[ProgressCallback] = None,
    concurrency: int = 1,
    resume: bool = True,
    request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT,
) -> List[Path]:
    """Export every job and download its video into ``out_dir`` (the
    tutorial's whole loop).

    Every job is checked before the first request is sent. Jobs run one after
    the other, as in the tutorial; a job that fails does not stop the others.

    :param jobs: a list of job dicts (``language``, ``text``, ``model``,
        ``clothes``, plus optional fields of the chosen API).
    :param token: the API key; defaults to ``$AISTUDIOS_API_KEY``.
    :param out_dir: the output folder; created if missing.
    :param api: ``"legacy"`` (the tutorial's endpoints) or ``"v3"``.
    :param base_url: the service's ``scheme://host[:port]``.
    :param session: a ``requests.Session`` to reuse; one is made otherwise.
    :param poll_interval: seconds between progress polls.
    :param timeout: seconds one render may take, ``None`` for no limit.
    :param on_progress: called with a :class:`ProgressEvent` at each step.
    :param concurrency: how many renders may run on the service at once.
    :param resume: skip jobs a previous run of this batch already finished.
    :param request_timeout: seconds to connect and to wait for each answer.
    :return: the downloaded files, in the order of the jobs.
    :rtype: list[pathlib.Path]
    :raises InvalidJob: a job is malformed (nothing was sent).
    :raises AuthenticationError: no key, or the service refused it.
    :raises BatchError: some jobs failed; it lists them and keeps the paths
        of those that finished.

    Usage::

        >>> paths = export_chromakeys(jobs, out_dir="videos")
    """
    flow = _flow(api)
    bodies = _validate_jobs(jobs, flow)
    base = _base_url(flow, base_url)
    secret = _resolve_token(token)
    if not isinstance(concurrency, int) or isinstance(concurrency, bool) or concurrency < 1:
        raise ValueError(f"concurrency must be a whole number >= 1, not {concurrency!r}")

    def emit(event: ProgressEvent) -> None:
        if on_progress is not None:
            on_progress(event)

    def relay(event: ProgressEvent, position: int) -> None:
        emit(dataclasses.replace(event, position=position))

    paths: List[Optional[Path]] = [None] * len(bodies)
    failures: List[Tuple[int, BaseException]] = []
    with session_scope(session) as active:
        for position, body in enumerate(bodies, start=1):
            try:
                key = _export(active, body, flow, base, secret, request_timeout, position)
                emit(ProgressEvent("submitted", position, key))
                url = wait_for_video(
                    key,
                    secret,
                    api=api,
                    base_url=base,
                    session=active,
                    poll_interval=poll_interval,
                    timeout=timeout,
                    request_timeout=request_timeout,
                    on_progress=functools.partial(relay, position=position),
                )
                emit(ProgressEvent("downloading", position, key, 100.0))
                path = download_video(url, out_dir, project_key=key, session=active, request_timeout=request_timeout)
            except AuthenticationError:
                raise
            except AIStudiosError as error:
                logger.error("job %d failed: %s", position, error)
                failures.append((position, error))
                emit(ProgressEvent("failed", position, error=error))
                continue
            paths[position - 1] = path
            emit(ProgressEvent("done", position, key, 100.0, path))
    if failures:
        raise BatchError(failures, paths)
    return [path for path in paths if path is not None]
