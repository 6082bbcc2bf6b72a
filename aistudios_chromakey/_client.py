"""The client: one configured connection to the service.

A :class:`Client` holds what every call needs: the API, the service's
address, the credentials, the HTTP sessions (one for the API host, one for
the storage host, which never sees a credential), the timeouts and the
batch-wide rate-limit pause. Its methods are the tutorial's steps and the
whole batch; the package's plain functions are thin wrappers over one.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Union
from urllib.parse import quote

import requests

from . import _download as download
from ._answers import (
    KNOWN_STATES,
    Answer,
    Progress,
    credential_refused,
    progress_of,
    project_key_of,
    read_answer,
    redactor,
    refuse_errors,
    uncertain,
)
from ._apis import AUTH_PATH, DROPDOWN_PATH, MODEL_PATH, PROJECTS_PATH, TOKEN_PATH, api_named, service_address
from ._catalogue import Model, parse_catalogue
from ._credentials import Credentials, choose_api
from ._deadlines import guarded
from ._errors import (
    AuthenticationError,
    ExportRejected,
    ServiceError,
)
from ._events import ProgressCallback
from ._jobs import MAX_TEXT_LENGTH, Job, check_job
from ._names import check_filename, safe_filename
from ._polling import (
    DEFAULT_POLL_INTERVAL,
    DEFAULT_POLLS_PER_SECOND,
    DEFAULT_RENDER_TIMEOUT,
    PollGate,
    RatePause,
    Watch,
    check_timing,
    until_done,
)
from ._transport import (
    DEFAULT_REQUEST_TIMEOUT,
    NetworkProblem,
    RequestTimeout,
    api_session,
    check_request_timeout,
    no_credentials,
    request_seconds,
    storage_session,
)
from ._version import VERSION

logger = logging.getLogger("aistudios_chromakey")

#: Seconds after a token request that got no answer before the next is sent.
MINT_PAUSE = 60.0

_USER_AGENT = f"aistudios-chromakey/{VERSION} python-requests/{requests.__version__}"


class Client:
    """A configured connection to AI STUDIOS.

    :param token: the legacy API key, or a ready V3 access token; defaults to
        ``$AISTUDIOS_API_KEY``.
    :param api: ``"legacy"`` (the tutorial's endpoints) or ``"v3"``; by
        default the credentials' own: an AppId and a UserKey mean V3, an API
        key the legacy flow (a V3 access token as ``token`` needs ``"v3"``).
    :param base_url: ``scheme://host[:port]`` of the service, or ``"cn"``
        (V3's China service); defaults to ``$AISTUDIOS_BASE_URL``, else the
        documented host of ``api``.
    :param app_id: V3: the AppId from your profile (with ``user_key``; or
        ``$AISTUDIOS_APP_ID``); access tokens are then minted and renewed.
    :param user_key: V3: the UserKey from your profile (or
        ``$AISTUDIOS_USER_KEY``).
    :param session: a ``requests.Session`` whose settings (proxies, TLS,
        certificates, cookies, headers) every request uses; never its
        adapters or credentials.
    :param request_timeout: seconds to connect and to wait for an answer,
        one number or a ``(connect, read)`` pair.
    :param max_text_length: the longest ``text`` a job may have (50,000
        characters, about an hour of speech, unless raised).
    :param max_polls_per_second: the most progress polls this client sends
        per second, however many renders a batch runs (``None``: no cap).

    Usage::

        >>> with Client(token) as client:
        ...     key = client.request_export(job)
        ...     path = client.download_video(client.wait_for_video(key))
    """

    def __init__(
        self,
        token: Optional[str] = None,
        *,
        api: Optional[str] = None,
        base_url: Optional[str] = None,
        app_id: Optional[str] = None,
        user_key: Optional[str] = None,
        session: Optional[requests.Session] = None,
        request_timeout: RequestTimeout = DEFAULT_REQUEST_TIMEOUT,
        max_polls_per_second: Optional[float] = DEFAULT_POLLS_PER_SECOND,
        max_text_length: int = MAX_TEXT_LENGTH,
    ):
        self.api = api_named(choose_api(api, token, app_id, user_key))
        self.base_url = service_address(self.api, base_url)
        self.request_timeout = check_request_timeout(request_timeout)
        self.credentials = Credentials(self.api, token, app_id, user_key)
        if not isinstance(max_text_length, int) or isinstance(max_text_length, bool) or max_text_length < 1:
            raise ValueError(f"max_text_length must be a whole number >= 1, not {max_text_length!r}")
        self.max_text_length = max_text_length
        #: When the service rate-limits any request, no request of this client goes before this ends.
        self.pause = RatePause()
        self._poll_gate = PollGate(max_polls_per_second)
        self._models: Optional[List[Model]] = None
        self._states_told: Dict[str, set[str]] = {}  # unknown V3 states logged, per project
        self._mint_failed: Optional[tuple[float, ServiceError]] = None  # when minting last failed, and how
        self._session = api_session(session)
        self._settings_from = session
        self._local = threading.local()
        self._storages: List[requests.Session] = []

    def __repr__(self) -> str:
        return f"Client(api={self.api.name!r}, base_url={self.base_url!r})"

    def close(self) -> None:
        """Close the client's connections."""
        self._session.close()
        for session in self._storages:
            session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def redact(self, text: str) -> str:
        """``text`` without any of this client's credentials."""
        return redactor(self.credentials.secrets())(text)

    # --- talking to the API host ---------------------------------------------

    def _exchange(
        self, method: str, path: str, what: str, body: Optional[Mapping[str, Any]] = None, limit: float = math.inf
    ) -> Answer:
        """One exchange with the API host, each request bound in wall-clock
        time (at most ``limit`` seconds from now): a refused minted token (a
        401, or a 200 whose error names the credential) is minted again once.
        The network's exceptions come through: only the caller knows whether a
        lost answer may hide a paid render."""
        answer = self._request(method, path, what, body, limit)
        if credential_refused(answer) and path != TOKEN_PATH and self.credentials.forget_token():
            logger.info("%s: the access token was refused; minting a new one", what)
            answer = self._request(method, path, what, body, limit)
        return answer

    def _request(self, method: str, path: str, what: str, body: Optional[Mapping[str, Any]], limit: float) -> Answer:
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": _USER_AGENT}
        if path != TOKEN_PATH:
            headers["Authorization"] = self._authorization()
        seconds = min(request_seconds(self.request_timeout), limit)
        problem: Optional[NetworkProblem] = None
        with guarded(seconds) as guard:
            try:
                response = self._session.request(
                    method,
                    self.base_url + path,
                    json=body,
                    headers=headers,
                    timeout=self.request_timeout,
                    allow_redirects=False,  # a credential never follows a redirect
                    auth=no_credentials,  # ours is the only one, in the header
                    stream=True,  # answers are read within a bound (_answers.py)
                )
                with response:
                    return self._read(response, what)
            except requests.RequestException as error:
                problem = NetworkProblem.of(error, seconds if guard.fired else None)
        # Raised here, outside the handler, so that it carries no trace of
        # the request (whose headers hold the credential).
        assert problem is not None
        raise problem

    def _read(self, response: requests.Response, what: str) -> Answer:
        if 300 <= response.status_code < 400:
            location = self.redact(response.headers.get("Location", "?"))
            raise ServiceError(
                f"{what}: redirected to {location}; check base_url (the service may have moved: "
                f"give its new address as base_url= or --base-url)",
                status=response.status_code,
            )
        return read_answer(response, self.redact)

    def _authorization(self) -> str:
        token = self.credentials.token
        return token if token is not None else self._mint()

    def _mint(self) -> str:
        """Mint a V3 access token from the AppId and the UserKey."""
        what = "minting an access token"
        failed = self._mint_failed
        if failed is not None and time.monotonic() - failed[0] < MINT_PAUSE:
            # A token endpoint that just hung or could not be reached is not
            # asked again by every job of a batch, each waiting out its bound.
            raise ServiceError(f"{failed[1]} (not asked again for {MINT_PAUSE:g} s)", unreachable=failed[1].unreachable)
        try:
            answer = self._exchange("POST", TOKEN_PATH, what, self.credentials.minting_body())
        except NetworkProblem as problem:
            error = ServiceError(f"{what}: the service could not be reached ({problem})", unreachable=problem.not_sent)
            self._mint_failed = (time.monotonic(), error)
            raise error from None
        self._mint_failed = None
        if answer.status in (400, 401, 403, 404) or (answer.body is not None and not answer.ok):
            raise AuthenticationError(
                f"{what}: the service refused the AppId and UserKey ({answer.detail}). Copy both again from "
                "your AI STUDIOS profile."
            )
        refuse_errors(answer, what, self.credentials.kind, self.credentials.refusal_hint())
        token = answer.data.get("token")
        if not isinstance(token, str) or not token.strip():
            raise ServiceError(f"{what}: the answer carries no token ({answer.detail})", status=answer.status)
        self.credentials.minted(token)
        logger.info("minted a V3 access token")
        return token.strip()

    # --- the tutorial's steps ----------------------------------------------------

    def request_export(self, job: Union[Mapping[str, Any], Job], *, position: Optional[int] = None) -> str:
        """Ask the service to render one video (tutorial step 3); see
        :func:`aistudios_chromakey.request_export`. Returns the project key."""
        checked = job if isinstance(job, Job) else check_job(job, self.api, position, self.max_text_length)
        who = f"job {checked.position}" if checked.position is not None else "the job"
        what = f"export request for {who}"
        answer = self._export_once(checked, what)
        key = project_key_of(answer, what, self.credentials.kind, self.credentials.refusal_hint())
        logger.info("%s accepted: project key %s", what, key)
        return key

    def _export_once(self, job: Job, what: str) -> Answer:
        logger.debug("POST %s%s (%s)", self.base_url, self.api.export_path, what)
        if self.api.mints_tokens and job.body.get("isExport") is False:
            logger.warning("%s: isExport is false: the service may keep it as a draft that never renders", what)
        body = {**self.api.defaults, **job.body}  # isExport: true on V3, unless the job says otherwise
        self._authorization()  # a token to mint is minted before anything of the export is sent
        try:
            return self._exchange("POST", self.api.export_path, what, body)
        except ServiceError as error:
            # Every answer came after the request was delivered. A redirect that
            # asks for the request again elsewhere (301, 302, 307, 308: a moved
            # host) processed nothing; "303 See Other" says it was processed, and
            # an answer too large to read may hold an accepted project.
            if error.status in (301, 302, 307, 308):
                raise ExportRejected(f"{error} (nothing was exported)", moved=True) from None
            raise uncertain(what, f"the answer could not be used ({error})") from None
        except NetworkProblem as problem:
            if problem.not_sent:
                raise ServiceError(
                    f"{what}: could not reach {self.base_url}: {problem}; nothing was sent", unreachable=True
                ) from None
            raise uncertain(what, f"the request was sent but no complete answer came back ({problem})") from None

    def poll(self, project_key: str, *, limit: float = math.inf) -> Progress:
        """Ask a render's progress once, within ``limit`` seconds;
        :class:`RenderFailed` when the service says it failed or does not
        know it."""
        what = f"progress of project {project_key}"
        self._poll_gate.wait()
        answer = self._get(self.api.progress_path + quote(project_key, safe=""), what, limit)
        progress = progress_of(answer, what, self.redact)
        self._tell_state(project_key, progress.state)
        logger.debug(
            "project %s: progress %s%s, address %s",
            project_key,
            progress.progress,
            f" ({progress.state})" if progress.state else "",
            "present" if progress.address else "not yet",
        )
        return progress

    def _tell_state(self, project_key: str, state: Optional[str]) -> None:
        """Log a state the docs do not name, once per render."""
        if state is None or state.lower() in KNOWN_STATES:
            return
        told = self._states_told.setdefault(project_key, set())
        if state not in told:
            told.add(state)
            logger.info("project %s: the service says its state is %r", project_key, self.redact(state))

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
        watch = Watch(project_key, poll_interval, timeout, time.monotonic())

        def report(progress: Progress) -> None:
            if on_progress is not None:
                on_progress(watch.event(progress))

        polls = until_done(lambda limit: self.poll(project_key, limit=limit), watch, self.pause, report)
        while True:  # the tutorial's loop: poll, and wait before the next
            try:
                when = next(polls)
            except StopIteration as done:
                return str(done.value)
            time.sleep(max(0.0, when - time.monotonic()))

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

    def save_video(
        self,
        url: str,
        folder: Path,
        name: str,
        *,
        progress: Optional[download.Progress] = None,
        max_bytes: int = download.MAX_VIDEO_BYTES,
    ) -> download.SavedVideo:
        """Download ``url`` into ``folder`` as ``name`` (or a free variant of
        it), with its size, SHA-256 and the host's check it passed."""
        session = getattr(self._local, "storage", None)
        if session is None:  # one per thread: the batch downloads in several
            session = self._local.storage = storage_session(self._settings_from)
            self._storages.append(session)
        return download.save_video(
            session, url, folder, name, self.request_timeout, progress=progress, max_bytes=max_bytes
        )

    def models(self) -> List[Model]:
        """The V3 model catalogue: each model's ID, names and clothes (the IDs
        a job's ``model`` and ``clothes`` take). Asked once per client: the
        page with clothes first, then today's model list (no clothes);
        :class:`ServiceError` when neither gives a list of models."""
        if not self.api.mints_tokens:
            raise ValueError(
                "the legacy API documents no model catalogue: use the model and clothes IDs of your "
                "AI STUDIOS account, or api='v3'"
            )
        if self._models is None:
            self._authorization()  # credentials that cannot mint a token stop here, whatever the pages say
            problems = []
            for path in (MODEL_PATH, DROPDOWN_PATH):
                what = f"the model list at {path}"
                try:
                    answer = self._get(path, what)
                    if answer.status >= 400 or not (answer.ok or "success" not in answer.body):
                        raise ServiceError(f"{what}: not available ({answer.detail})", status=answer.status)
                    models = parse_catalogue(answer.body)
                except (ServiceError, AuthenticationError) as error:
                    problems.append(str(error))
                    continue
                if models:
                    self._models = models
                    break
                problems.append(f"{what}: empty")
            else:
                raise ServiceError("the model catalogue: " + "; ".join(problems))
        return list(self._models)

    def projects(self) -> List[Mapping[str, Any]]:
        """V3: the account's exported projects, as the service lists them
        (each with ``id``, ``name``, ``state``, ``download_url``; the list's
        envelope is not documented, so a list under ``data``, ``projects``
        or ``list`` is taken); :class:`ServiceError` when there is none."""
        if not self.api.mints_tokens:
            raise ValueError("the legacy API documents no list of projects")
        answer = self._get(PROJECTS_PATH, "the list of projects")
        found: Any = answer.body
        for _ in range(3):
            if isinstance(found, Mapping):
                found = next((found[k] for k in ("data", "projects", "list") if k in found), None)
        if answer.status >= 400 or not isinstance(found, list):
            raise ServiceError(f"the list of projects: not available ({answer.detail})", status=answer.status)
        return [item for item in found if _has_id(item)]

    def verify_credentials(self) -> Optional[bool]:
        """Whether the service accepts this client's credential, sending no
        export: True or False on V3 (a token is minted from an AppId and a
        UserKey, then checked); ``None`` on the legacy API, which documents
        no way to check a key but an export."""
        self.credentials.resolve()
        if not self.api.mints_tokens:
            return None
        try:
            answer = self._get(AUTH_PATH, "checking the credential")
        except AuthenticationError:
            return False
        if isinstance(answer.body, Mapping) and isinstance(answer.body.get("isAuthenticated"), bool):
            return bool(answer.body["isAuthenticated"])
        data = answer.data
        return bool(data.get("isAuthenticated")) if isinstance(data.get("isAuthenticated"), bool) else answer.ok

    def _get(self, path: str, what: str, limit: float = math.inf) -> Answer:
        """A GET of the API host, and the answers no endpoint can use refused."""
        try:
            answer = self._exchange("GET", path, what, limit=limit)
        except NetworkProblem as problem:
            raise ServiceError(f"{what}: the service could not be reached ({problem}); try again later") from None
        refuse_errors(answer, what, self.credentials.kind, self.credentials.refusal_hint())
        return answer


def _has_id(item: Any) -> bool:
    return isinstance(item, Mapping) and isinstance(item.get("id"), (str, int)) and not isinstance(item.get("id"), bool)
