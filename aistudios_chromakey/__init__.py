"""Chroma-key (green-screen) avatar videos from DeepBrain AI's AI STUDIOS API.

The tutorial's flow in four plain functions::

    key = request_export(job, token)              # ask for a render
    url = wait_for_video(key, token)              # poll until it is done
    path = download_video(url, out_dir="videos")  # save the video
    paths = export_chromakeys(jobs, token)        # all of it, for a batch

and the :class:`Client` behind them, for scripts that keep one.
"""

import logging

from ._catalogue import Clothes, Model
from ._client import Client
from ._errors import (
    AIStudiosError,
    AuthenticationError,
    BatchError,
    DownloadError,
    ExportRejected,
    ExportUncertain,
    InvalidJob,
    JournalError,
    RateLimited,
    RenderFailed,
    RenderTimeout,
    ServiceError,
)
from ._events import ProgressEvent, show_progress
from ._functions import download_video, export_chromakeys, list_models, request_export, wait_for_video
from ._version import VERSION as __version__  # noqa: N811 (the dunder is the convention)

logging.getLogger("aistudios_chromakey").addHandler(logging.NullHandler())

__all__ = [
    "AIStudiosError",
    "AuthenticationError",
    "BatchError",
    "Client",
    "Clothes",
    "DownloadError",
    "ExportRejected",
    "ExportUncertain",
    "InvalidJob",
    "JournalError",
    "Model",
    "ProgressEvent",
    "RateLimited",
    "RenderFailed",
    "RenderTimeout",
    "ServiceError",
    "__version__",
    "download_video",
    "export_chromakeys",
    "list_models",
    "request_export",
    "show_progress",
    "wait_for_video",
]
