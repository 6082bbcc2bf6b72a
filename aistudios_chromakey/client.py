"""The client: one configured connection to the service.

A :class:`Client` holds what every call needs: the flow, the service's
address, the credentials, the HTTP sessions (one for the API host, one for
the storage host, which never sees a credential), the timeouts and the
batch-wide rate-limit pause. Its methods are the tutorial's steps and the
whole batch; the package's plain functions are thin wrappers over one.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Iterable, List, Mapping, Optional, Union
from urllib.parse import quote

import requests

from . import download
from ._transport import (
    DEFAULT_REQUEST_TIMEOUT,
    RequestTimeout,
    api_session,
    certainly_not_sent,
    check_request_timeout,
    storage_session,
    unreachable_reason,
)
from ._version import VERSION
from .answers import (
    Answer,
    Progress,
    address_in,
    progress_in,
    project_key_in,
    read_answer,
    redactor,
    refuse_errors,
    state_in,
)
from .batch import run_batch
from .credentials import Credentials
from .errors import (
    AuthenticationError,
    ExportRejected,
    ExportUncertain,
    RateLimited,
    RenderFailed,
    ServiceError,
)
from .events import ProgressCallback
from .flows import TOKEN_PATH, flow_named, service_address
from .jobs import Job, check_job
from .names import check_filename, safe_filename
from .polling import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_RENDER_TIMEOUT,
    PollClock,
    RatePause,
    check_timing,
    progress_event,
    render_timeout,
)

logger = logging.getLogger("aistudios_chromakey")

_USER_AGENT = f"aistudios-chromakey/{VERSION} python-requests/{requests.__version__}"


class Client:
    """A configured connection to AI STUDIOS.

    :param token: the legacy API key, or a ready V3 access token; defaults to
        ``$AISTUDIOS_API_KEY``.
    :param api: ``"legacy"`` (the tutorial's endpoints) or ``"v3"``.
    :param base_url: ``scheme://host[:port]`` of the service; defaults to
        ``$AISTUDIOS_BASE_URL``, else the documented host of ``api``.
    :param app_id: V3: the AppId from your profile (with ``user_key``; or
        ``$AISTUDIOS_APP_ID``); access tokens are then minted and renewed.
    :param user_key: V3: the UserKey from your profile (or
        ``$AISTUDIOS_USER_KEY``).
    :param session: a ``requests.Session`` whose settings (proxies, TLS,
        certificates, cookies, headers) every request uses; never its
        adapters or credentials.
    :param request_timeout: seconds to connect and to wait for an answer,
        one number or a ``(connect, read)`` pair.

    Usage::

        >>> with Client(token) as client:
        ...     key = client.request_export(job)
        ...     path = client.download_video(client.wait_for_video(key))
    """

    def __init__(
        self,
        token: Optional[str] = None,
        *,
        api: str = "legacy",
        base_url: Optional[str] = None,
        app_id: Optional[str] = None,
        user_key: Optional[str] = None,
        session: Optional[requests.Session] = None,
        request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT,
    ):
        self.flow = flow_named(api)
        self.base_url = service_address(self.flow, base_url)
        self.request_timeout = check_request_timeout(request_timeout)
        self.credentials = Credentials(self.flow, token, app_id, user_key)
        #: When the service rate-limits any request, no request of this client goes before this ends.
        self.pause = RatePause()
        self._api = api_session(session)
        self._storage = storage_session(session)

    def __repr__(self) -> str:
        return f"Client(api={self.flow.name!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the client's connections."""
        self._api.close()
        self._storage.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def redact(self, text: str) -> str:
        """``text`` without any of this client's credentials."""
        return redactor(self.credentials.secrets())(text)

    # --- talking to the API host ---------------------------------------------

    def _send(self, method: str, path: str, body: Optional[Mapping[str, Any]] = None) -> requests.Response:
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": _USER_AGENT}
        if path != TOKEN_PATH:
            headers["Authorization"] = self._authorization()
        return self._api.request(
            method,
            self.base_url + path,
            json=body,
            headers=headers,
            timeout=self.request_timeout,
            allow_redirects=False,  # a credential never follows a redirect
            stream=True,  # answers are read within a bound (answers.py)
        )

    def _answer(self, response: requests.Response, what: str) -> Answer:
        with response:
            if 300 <= response.status_code < 400:
                location = self.redact(response.headers.get("Location", "?"))
                raise ServiceError(
                    f"{what}: redirected to {location}; check base_url (the service may have moved: "
                    f"give its new address as base_url= or --base-url)",
                    status=response.status_code,
                )
            return read_answer(response, self.redact)

    def _authorization(self) -> str:
        credentials = self.credentials
        token = credentials.token
        if token is None:
            token = self._mint()
        return token

    def _mint(self) -> str:
        """Mint a V3 access token from the AppId and the UserKey."""
        what = "minting an access token"
        try:
            answer = self._answer(self._send("POST", TOKEN_PATH, self.credentials.minting_body()), what)
        except requests.RequestException as error:
            raise ServiceError(f"{what}: the service could not be reached ({type(error).__name__})") from None
        if answer.status in (400, 401, 403, 404) or (answer.body is not None and not answer.ok):
            raise AuthenticationError(
                f"{what}: the service refused the AppId and UserKey ({answer.detail}). Copy both again from "
                "your AI STUDIOS profile."
            )
        refuse_errors(answer, what, self.credentials.kind)
        token = answer.data.get("token")
        if not isinstance(token, str) or not token.strip():
            raise ServiceError(f"{what}: the answer carries no token ({answer.detail})", status=answer.status)
        self.credentials.minted(token)
        logger.info("minted a V3 access token")
        return token.strip()

    def _refused(self, answer: Answer, what: str, retry: bool) -> bool:
        """True when a minted token was refused and a fresh one may be tried once."""
        if answer.status == 401 and retry and self.credentials.forget_token():
            logger.info("%s: the access token was refused; minting a new one", what)
            return True
        return False

    # --- the tutorial's steps ----------------------------------------------------

    def request_export(self, job: Union[Mapping[str, Any], Job], *, position: Optional[int] = None) -> str:
        """Ask the service to render one video (tutorial step 3); see
        :func:`aistudios_chromakey.request_export`. Returns the project key."""
        checked = job if isinstance(job, Job) else check_job(job, self.flow, position)
        who = f"job {checked.position}" if checked.position is not None else "the job"
        what = f"export request for {who}"
        for retry in (True, False):
            answer = self._export_once(checked, what)
            if not self._refused(answer, what, retry):
                break
        status = answer.status
        if 200 <= status < 300 and answer.body is None:
            raise _uncertain(what, f"the service answered HTTP {status} without JSON")
        if status >= 500 and status != 503:
            # The service (or a gateway in front of it) may have taken the job before failing.
            raise _uncertain(what, f"the service answered HTTP {status}")
        refuse_errors(answer, what, self.credentials.kind)
        if status >= 400 or not answer.ok:
            raise ExportRejected(f"{what}: the service rejected it ({answer.detail})")
        key = project_key_in(answer.data)
        if key is None:
            raise _uncertain(what, f"the answer carries no project key ({answer.detail})")
        logger.info("%s accepted: project key %s", what, key)
        return key

    def _export_once(self, job: Job, what: str) -> Answer:
        logger.debug("POST %s%s (%s)", self.base_url, self.flow.export_path, what)
        try:
            response = self._send("POST", self.flow.export_path, job.body)
        except requests.RequestException as error:
            if certainly_not_sent(error):
                raise ServiceError(
                    f"{what}: could not reach {self.base_url}: {unreachable_reason(error)}; nothing was sent",
                    unreachable=True,
                ) from None
            raise _uncertain(what, f"the request was sent but no answer came back ({type(error).__name__})") from None
        try:
            return self._answer(response, what)
        except ServiceError as error:
            if error.status is not None and 300 <= error.status < 400:
                raise ExportRejected(f"{error} (nothing was exported)") from None
            raise
        except requests.RequestException as error:
            raise _uncertain(what, f"the answer was cut off ({type(error).__name__})") from None

    def poll(self, project_key: str) -> Progress:
        """Ask a render's progress once; :class:`RenderFailed` when the
        service says it failed or does not know it."""
        what = f"progress of project {project_key}"
        path = self.flow.progress_path + quote(project_key, safe="")
        for retry in (True, False):
            try:
                response = self._send("GET", path)
                answer = self._answer(response, what)
            except requests.RequestException as error:
                raise ServiceError(
                    f"{what}: the service could not be reached ({type(error).__name__}); try again later"
                ) from None
            if not self._refused(answer, what, retry):
                break
        refuse_errors(answer, what, self.credentials.kind)
        if answer.status == 404:
            raise RenderFailed(f"{what}: the service does not know this project ({answer.detail})")
        if answer.status >= 400 or not isinstance(answer.body, Mapping):
            raise ServiceError(f"{what}: unexpected answer ({answer.detail})", status=answer.status)
        if answer.body.get("success") is False:
            raise RenderFailed(f"{what}: the render failed ({answer.detail})")
        data = answer.data
        progress = Progress(progress_in(data, what, self.redact), address_in(data, what, self.redact), state_in(data))
        logger.debug(
            "project %s: progress %s%s, address %s",
            project_key,
            progress.progress,
            f" ({progress.state})" if progress.state else "",
            "present" if progress.address else "not yet",
        )
        return progress

    def wait_for_video(
        self,
        project_key: str,
        *,
        poll_interval: Optional[float] = DEFAULT_POLL_INTERVAL,
        timeout: Optional[float] = DEFAULT_RENDER_TIMEOUT,
        on_progress: Optional[ProgressCallback] = None,
    ) -> str:
        """Poll until the render is done (tutorial step 4); see
        :func:`aistudios_chromakey.wait_for_video`. Returns the video's address."""
        if not isinstance(project_key, str) or not project_key.strip():
            raise ValueError(f"project_key must be a non-empty string, not {project_key!r}")
        check_timing(poll_interval, timeout)
        started = time.monotonic()
        deadline = None if timeout is None else started + timeout
        clock = PollClock(poll_interval, started)
        progress = Progress(0.0)
        while True:
            limited: Optional[RateLimited] = None
            try:
                progress = self.poll(project_key)
            except RateLimited as error:
                limited, pause = error, self.pause.extend(error)
                logger.warning("project %s: rate limited; polling again in %g s", project_key, pause)
            else:
                if on_progress is not None:
                    on_progress(progress_event(project_key, progress, clock))
                if progress.done:
                    assert progress.address is not None
                    return progress.address
                pause = clock.next_wait(time.monotonic(), progress.progress)
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    if limited is not None:
                        raise limited
                    raise render_timeout(project_key, timeout, progress.progress)
                pause = min(pause, left)
            time.sleep(pause)

    def download_video(
        self,
        url: str,
        out_dir: Union[str, os.PathLike[str]] = "videos",
        *,
        filename: Optional[str] = None,
        project_key: Optional[str] = None,
    ) -> Path:
        """Download a finished video (tutorial step 4); see
        :func:`aistudios_chromakey.download_video`. Returns its path."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) address, not {url!r}")
        name = check_filename(filename) if filename is not None else safe_filename(url, project_key)
        return self.save_video(url, Path(out_dir), name).path

    def save_video(self, url: str, folder: Path, name: str) -> download.SavedVideo:
        """Download ``url`` into ``folder`` as ``name`` (or a free variant of
        it), with its size and SHA-256."""
        return download.save_video(self._storage, url, folder, name, self.request_timeout)

    def export_chromakeys(self, jobs: Iterable[Mapping[str, Any]], **options: Any) -> List[Path]:
        """Export every job and download its video; see
        :func:`aistudios_chromakey.export_chromakeys` for the options."""
        return run_batch(self, jobs, **options)


def _uncertain(what: str, reason: str) -> ExportUncertain:
    return ExportUncertain(
        f"{what}: {reason}. The service may have accepted it and may charge for it: "
        "check your AI STUDIOS dashboard before exporting it again."
    )
