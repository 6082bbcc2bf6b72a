"""The client: one configured connection to the service, with an HTTP session for the API
host and one per thread for the storage host, which never sees a credential."""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from pathlib import Path
from typing import Any, List, Mapping, Optional, Union
from urllib.parse import quote

import requests

from . import _access as access
from . import _answers as answers
from . import _http as http
from . import _polling as polling
from ._jobs import MAX_TEXT_LENGTH, Job, check_filename, check_job, safe_filename
from ._reports import AuthenticationError, ExportRejected, ProgressCallback, ServiceError
from ._version import VERSION

logger = logging.getLogger("aistudios_chromakey")

#: Seconds after a token request that got no answer before the next is sent.
MINT_PAUSE = 60.0
_NAMED_STATES = ("exporting", "exported", "complete")  # V3's states in the docs: running, and ready
_USER_AGENT = f"aistudios-chromakey/{VERSION} python-requests/{requests.__version__}"


class Client:
    """A configured connection to AI STUDIOS, whose methods are the
    tutorial's steps; a context manager that closes its connections.
    ``token``, ``api``, ``base_url``, ``app_id``, ``user_key``, ``session``
    and ``request_timeout`` are the settings ``help(aistudios_chromakey)``
    describes.

    :param max_text_length: the longest ``text`` a job may have (50,000
        characters, about an hour of speech, unless raised).
    :param max_polls_per_second: the most progress polls this client sends
        per second, however many renders a batch runs (``None``: no cap).
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
        request_timeout: http.RequestTimeout = http.DEFAULT_REQUEST_TIMEOUT,
        max_polls_per_second: Optional[float] = polling.DEFAULT_POLLS_PER_SECOND,
        max_text_length: int = MAX_TEXT_LENGTH,
    ):
        self.api = access.api_named(access.choose_api(api, token, app_id, user_key))
        self.base_url = access.service_address(self.api, base_url)
        self.request_timeout = http.check_request_timeout(request_timeout)
        self.credentials = access.Credentials(self.api, token, app_id, user_key)
        if not isinstance(max_text_length, int) or isinstance(max_text_length, bool) or max_text_length < 1:
            raise ValueError(f"max_text_length must be a whole number >= 1, not {max_text_length!r}")
        self.max_text_length = max_text_length
        self.pause = polling.RatePause()  # a rate limit on any request holds back every request of this client
        self._poll_gate = polling.PollGate(max_polls_per_second)
        self._models: Optional[List[answers.Model]] = None
        self._states_told: set[tuple[str, str]] = set()  # (project, unknown V3 state) already logged
        self._mint_failed: Optional[tuple[float, ServiceError]] = None  # when minting last failed, and how
        self._session = http.api_session(session)
        self._settings_from = session
        self._local = threading.local()
        self._storages: List[requests.Session] = []

    def close(self) -> None:
        """Close the client's connections."""
        for session in [self._session, *self._storages]:
            session.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def redact(self, text: str) -> str:
        """``text`` without any of this client's credentials."""
        return answers.redactor(self.credentials.secrets())(text)

    def _exchange(
        self, method: str, path: str, what: str, body: Optional[Mapping[str, Any]] = None, limit: float = math.inf
    ) -> answers.Answer:
        """One exchange with the API host, a refused minted token minted again once. A
        :class:`NetworkProblem` comes through: only the caller knows if a lost answer hides a render."""
        answer = self._request(method, path, what, body, limit)
        if answers.credential_refused(answer) and path != access.TOKEN_PATH and self.credentials.forget_token():
            logger.info("%s: the access token was refused; minting a new one", what)
            answer = self._request(method, path, what, body, limit)
        return answer

    def _request(
        self, method: str, path: str, what: str, body: Optional[Mapping[str, Any]], limit: float
    ) -> answers.Answer:
        headers = {"Content-Type": "application/json", "Accept": "application/json", "User-Agent": _USER_AGENT}
        if path != access.TOKEN_PATH:
            headers["Authorization"] = self.credentials.token or self._mint()
        seconds = min(http.request_seconds(self.request_timeout), limit)
        with http.guarded(seconds) as guard:
            try:
                response = self._session.request(
                    method,
                    self.base_url + path,
                    json=body,
                    headers=headers,
                    timeout=self.request_timeout,
                    allow_redirects=False,  # a credential never follows a redirect
                    auth=http.no_credentials,  # ours is the only one, in the header
                    stream=True,  # answers are read within a bound (_answers.py)
                )
                with response:
                    if 300 <= response.status_code < 400:
                        location = self.redact(response.headers.get("Location", "?"))
                        message = f"{what}: redirected to {location}; check base_url (the service may have moved)"
                        raise ServiceError(message, status=response.status_code)
                    return answers.read_answer(response, self.redact)
            except requests.RequestException as error:
                problem = http.NetworkProblem.of(error, seconds if guard.fired else None)
        raise problem  # outside the handler: no trace of the request, whose headers hold the credential

    def _mint(self) -> str:
        """Mint a V3 access token from the AppId and the UserKey."""
        what = "minting an access token"
        failed = self._mint_failed  # a token endpoint that just failed to answer is not asked by every job again
        if failed is not None and time.monotonic() - failed[0] < MINT_PAUSE:
            raise ServiceError(f"{failed[1]} (not asked again for {MINT_PAUSE:g} s)", unreachable=failed[1].unreachable)
        try:
            answer = self._exchange("POST", access.TOKEN_PATH, what, self.credentials.minting)
        except http.NetworkProblem as problem:
            error = ServiceError(f"{what}: the service could not be reached ({problem})", unreachable=problem.not_sent)
            self._mint_failed = (time.monotonic(), error)
            raise error from None
        self._mint_failed = None
        if answer.status in (400, 401, 403, 404) or (answer.body is not None and not answer.ok):
            raise AuthenticationError(f"{what}: the service refused the AppId and UserKey ({answer.detail})")
        answers.refuse_errors(answer, what, self.credentials.kind, self.credentials.refusal_hint())
        if not isinstance(answer.data.get("token"), str) or not answer.data["token"].strip():
            raise ServiceError(f"{what}: the answer carries no token ({answer.detail})", status=answer.status)
        token = self.credentials.minted(answer.data.get("token"))
        logger.info("minted a V3 access token")
        return token

    def request_export(self, job: Union[Mapping[str, Any], Job]) -> str:
        """Tutorial step 3, the export: see :func:`aistudios_chromakey.request_export`."""
        job = job if isinstance(job, Job) else check_job(job, self.api, max_text=self.max_text_length)
        what = "export request for " + ("the job" if job.position is None else f"job {job.position}")
        if self.api.mints_tokens and job.body.get("isExport") is False:
            logger.warning("%s: isExport is false: the service may keep it as a draft that never renders", what)
        body = {**self.api.defaults, **job.body}  # isExport: true on V3, unless the job says otherwise
        if not self.credentials.token:  # a token to mint is minted before anything of the export is sent
            self._mint()
        try:
            answer = self._exchange("POST", self.api.export_path, what, body)
        except ServiceError as error:
            # A redirect that asks for the request again elsewhere (a moved host) processed nothing; "303 See
            # Other" says it was processed, and an answer too large to read may hold an accepted project.
            if error.status in (301, 302, 307, 308):
                raise ExportRejected(f"{error} (nothing was exported)", moved=True) from None
            raise answers.uncertain(what, f"the answer could not be used ({error})") from None
        except http.NetworkProblem as problem:
            if problem.not_sent:
                message = f"{what}: could not reach {self.base_url}: {problem}; nothing was sent"
                raise ServiceError(message, unreachable=True) from None
            reason = f"the request was sent but no complete answer came back ({problem})"
            raise answers.uncertain(what, reason) from None
        if answer.status >= 500 or (answer.status < 300 and answer.body is None):  # the job may have been taken
            raise answers.uncertain(what, f"the service answered {answer.detail}")
        answers.refuse_errors(answer, what, self.credentials.kind, self.credentials.refusal_hint())
        if answer.status >= 400 or not answer.ok:
            raise ExportRejected(f"{what}: the service rejected it ({answer.detail})")
        key = answers.project_key(answer)
        if key is None:
            raise answers.uncertain(what, f"the answer carries no project key ({answer.detail})")
        logger.info("%s accepted: project key %s", what, key)
        return key

    def poll(self, project_key: str, *, limit: float = math.inf) -> answers.Progress:
        """Ask a render's progress once, within ``limit`` seconds; :class:`RenderFailed` for a failed or unknown one."""
        what = f"progress of project {project_key}"
        self._poll_gate.wait()
        answer = self._get(self.api.progress_path + quote(project_key, safe=""), what, limit)
        progress = answers.progress_of(answer, what, self.redact)
        state = progress.state
        if state and state.lower() not in _NAMED_STATES and (project_key, state) not in self._states_told:
            self._states_told.add((project_key, state))  # a state the docs do not name: logged once per render
            logger.info("project %s: the service says its state is %r", project_key, self.redact(state))
        logger.debug("project %s: progress %s, state %s", project_key, progress.progress, state)
        return progress

    def wait_for_video(
        self,
        project_key: str,
        *,
        poll_interval: Optional[float] = polling.DEFAULT_POLL_INTERVAL,
        timeout: Optional[float] = polling.DEFAULT_RENDER_TIMEOUT,
        on_progress: Optional[ProgressCallback] = None,
    ) -> str:
        """Tutorial step 4, the wait: see :func:`aistudios_chromakey.wait_for_video`."""
        if not isinstance(project_key, str) or not project_key.strip():
            raise ValueError(f"project_key must be a non-empty string, not {project_key!r}")
        polling.check_timing(poll_interval, timeout)
        watch = polling.Watch(project_key, poll_interval, timeout, time.monotonic())

        def report(progress: answers.Progress) -> None:
            if on_progress is not None:
                on_progress(watch.event(progress))

        polls = polling.until_done(lambda limit: self.poll(project_key, limit=limit), watch, self.pause, report)
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
        """Tutorial step 4, the download: see :func:`aistudios_chromakey.download_video`."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise ValueError(f"url must be an http(s) address, not {url!r}")
        name = check_filename(filename) if filename is not None else safe_filename(url, project_key)
        return self.save_video(url, Path(out_dir), name).path

    def save_video(
        self, url: str, folder: Path, name: str, *, progress: Optional[http.Progress] = None
    ) -> http.SavedVideo:
        """Download ``url`` into ``folder`` as ``name`` (or a free variant of it), with its size and SHA-256."""
        session = getattr(self._local, "storage", None)
        if session is None:  # one per thread: the batch downloads in several
            session = self._local.storage = http.storage_session(self._settings_from)
            self._storages.append(session)
        return http.save_video(session, url, folder, name, self.request_timeout, progress=progress)

    def models(self) -> List[answers.Model]:
        """:func:`aistudios_chromakey.list_models`, asked once per client: the page with clothes, else today's."""
        if not self.api.mints_tokens:
            raise ValueError("the legacy API documents no model catalogue: use api='v3'")
        if self._models is None:
            if not self.credentials.token:  # credentials that cannot mint a token stop here, whatever the pages say
                self._mint()
            problems = []
            for path in (access.MODEL_PATH, access.DROPDOWN_PATH):
                what = f"the model list at {path}"
                try:
                    self._models = answers.parse_catalogue(self._get(path, what), what)
                    break
                except (ServiceError, AuthenticationError) as error:
                    problems.append(str(error))
            else:
                raise ServiceError("the model catalogue: " + "; ".join(problems))
        return list(self._models)

    def projects(self) -> List[Mapping[str, Any]]:
        """V3: the account's exported projects, from a list under ``data``, ``projects`` or ``list``."""
        answer = self._get(access.PROJECTS_PATH, "the list of projects")
        found: Any = answer.body
        for _ in range(3):
            if isinstance(found, Mapping):
                found = next((found[k] for k in ("data", "projects", "list") if k in found), None)
        if answer.status >= 400 or not isinstance(found, list):
            raise ServiceError(f"the list of projects: not available ({answer.detail})", status=answer.status)
        return [item for item in found if isinstance(item, Mapping) and type(item.get("id")) in (str, int)]  # not bool

    def verify_credentials(self) -> Optional[bool]:
        """Whether the service accepts this client's credential, sending no export: True or False on
        V3; ``None`` on the legacy API, which documents no way to check a key but an export."""
        self.credentials.resolve()
        if not self.api.mints_tokens:
            return None
        try:
            answer = self._get(access.AUTH_PATH, "checking the credential")
        except AuthenticationError:
            return False
        accepted = answer.data.get("isAuthenticated")  # under data, or beside success
        return accepted if isinstance(accepted, bool) else answer.ok

    def _get(self, path: str, what: str, limit: float = math.inf) -> answers.Answer:
        """A GET of the API host, and the answers no endpoint can use refused."""
        try:
            answer = self._exchange("GET", path, what, limit=limit)
        except http.NetworkProblem as problem:
            raise ServiceError(f"{what}: the service could not be reached ({problem}); try again later") from None
        answers.refuse_errors(answer, what, self.credentials.kind, self.credentials.refusal_hint())
        return answer
