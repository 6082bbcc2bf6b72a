"""Chroma-key (green-screen) avatar videos from DeepBrain AI's AI STUDIOS API.

The tutorial's flow in four plain functions::

    key = request_export(job, token)              # ask for a render
    url = wait_for_video(key, token)              # poll until it is done
    path = download_video(url, out_dir="videos")  # save the video
    paths = export_chromakeys(jobs, token)        # all of it, for a batch

and the :class:`Client` behind them. Each function makes a client for the
call and closes it afterwards; ``client=`` uses one of yours instead (left
open), with its connections and its V3 access token.

The settings every function takes, besides ``client``:

* ``token``: the legacy API key (or a ready V3 access token, with
  ``api="v3"``); default ``$AISTUDIOS_API_KEY``.
* ``app_id``, ``user_key``: V3's AppId and UserKey from your profile
  (default ``$AISTUDIOS_APP_ID``, ``$AISTUDIOS_USER_KEY``); access tokens
  are minted from them and renewed.
* ``api``: ``"legacy"`` (the tutorial's endpoints) or ``"v3"``; by default
  the credentials' own (an AppId and a UserKey: V3; an API key: legacy).
* ``base_url``: ``scheme://host[:port]`` of the service, or ``"cn"`` (V3's
  China service); default ``$AISTUDIOS_BASE_URL``, else the documented host.
* ``session``: a ``requests.Session`` whose settings (proxies, TLS,
  certificates, cookies, headers) to use; never its adapters or credentials.
* ``request_timeout``: seconds to connect and to wait for an answer, one
  number or a ``(connect, read)`` pair.
"""

import logging

from ._answers import Clothes, Model
from ._client import Client
from ._functions import download_video, export_chromakeys, list_models, request_export, wait_for_video
from ._reports import (
    AIStudiosError,
    AuthenticationError,
    BatchError,
    DownloadError,
    ExportRejected,
    ExportUncertain,
    InvalidJob,
    JournalError,
    ProgressEvent,
    RateLimited,
    RenderFailed,
    RenderTimeout,
    ServiceError,
    show_progress,
)
from ._version import VERSION as __version__  # noqa: N811 (the dunder is the convention)

logging.getLogger("aistudios_chromakey").addHandler(logging.NullHandler())

__all__ = [
    "AIStudiosError", "AuthenticationError", "BatchError", "Client", "Clothes", "DownloadError", "ExportRejected",
    "ExportUncertain", "InvalidJob", "JournalError", "Model", "ProgressEvent", "RateLimited", "RenderFailed",
    "RenderTimeout", "ServiceError", "__version__", "download_video", "export_chromakeys", "list_models",
    "request_export", "show_progress", "wait_for_video",
]  # fmt: skip
