"""Chroma-key (green-screen) avatar videos from DeepBrain AI's AI STUDIOS API.

The tutorial's flow in four plain functions::

    key = request_export(job, token)              # ask for a render
    url = wait_for_video(key, token)              # poll until it is done
    path = download_video(url, out_dir="videos")  # save the video
    paths = export_chromakeys(jobs, token)        # all of it, for a batch

and the :class:`Client` behind them, for scripts that keep one.
"""

import importlib
import logging
from typing import TYPE_CHECKING, Any, List

from ._version import VERSION as __version__  # noqa: N811 (the dunder is the convention)
from .errors import (
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
from .events import ProgressEvent, show_progress

if TYPE_CHECKING:
    from .api import download_video, export_chromakeys, list_models, request_export, wait_for_video
    from .client import Client

logging.getLogger("aistudios_chromakey").addHandler(logging.NullHandler())

# The names that need requests come with their module on first use, so that
# `aistudios-chromakey --version` (and any script that only reads the
# version or catches an error) starts without loading it.
_LAZY = {
    "Client": "client",
    "download_video": "api",
    "export_chromakeys": "api",
    "list_models": "api",
    "request_export": "api",
    "wait_for_video": "api",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> List[str]:
    return sorted(__all__)


__all__ = [
    "AIStudiosError",
    "AuthenticationError",
    "BatchError",
    "Client",
    "DownloadError",
    "ExportRejected",
    "ExportUncertain",
    "InvalidJob",
    "JournalError",
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
