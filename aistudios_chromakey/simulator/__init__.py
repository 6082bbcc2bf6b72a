"""A local simulator of the AI STUDIOS service, for tests and demos.

Standard library only, real HTTP on loopback. The API host speaks both
documented flows: the tutorial's legacy one (``POST /api/odin/simple/video``,
``GET /api/odin/editor/progress/<key>``, the address in ``data.url`` or
``data.videoUrl``) and V3 (a token minted at ``/api/odin/v3/auth/token``,
``data.projectId``, ``data.downloadUrl``, the model catalogue). A storage
host serves the videos as real, playable MP4 chroma-key clips, each distinct
by its project key; the old host (``https://aistudios.com``) only redirects.

Usage::

    from aistudios_chromakey import export_chromakeys
    from aistudios_chromakey.simulator import Simulator

    with Simulator() as sim:
        paths = export_chromakeys(jobs, sim.token, base_url=sim.base_url, poll_interval=0.2)
        assert paths[0].read_bytes() == sim.video(sim.exports[0].key)

:meth:`Simulator.plan` scripts the next renders (see :class:`RenderPlan`),
:meth:`Simulator.fault` the next misbehaving requests of a route (see
:class:`Fault`). The knobs of :class:`Settings` are constructor keywords and
attributes alike (``sim.integrity = "sha256"``: from now on, downloads carry
a checksum). Everything the servers saw is in :attr:`Simulator.log`, and
logged at DEBUG on the ``aistudios_chromakey.simulator`` logger.

Layout: ``service.py`` the API's logic, ``storage.py`` the download host,
``faults.py`` the misbehaviours, ``server.py`` the HTTP side, ``answer.py``
what it sends, ``settings.py`` the knobs.
"""

from __future__ import annotations

import dataclasses
import threading
from importlib import resources
from typing import Any, Dict, List, Optional

from .faults import Fault, FaultBook
from .server import RecordedRequest, Recorder, Router, Server
from .service import DEFAULT_CATALOGUE, Export, RenderPlan, Service
from .settings import Settings
from .storage import Storage

__all__ = [
    "DEFAULT_CATALOGUE",
    "DEFAULT_TOKEN",
    "Export",
    "Fault",
    "RecordedRequest",
    "RenderPlan",
    "Settings",
    "Simulator",
]

#: The API key the simulator accepts unless told otherwise.
DEFAULT_TOKEN = "sim-key"

_KNOBS = frozenset(field.name for field in dataclasses.fields(Settings))


class Simulator:
    """The service (API host), its storage (download host) and the old host, on loopback.

    :param token: the API key it accepts (also a ready V3 token).
    :param render_seconds: how long each render takes by default.
    :param url_field: the legacy flow's address field, ``"url"`` (the
        tutorial's) or ``"videoUrl"`` (the reference page's).
    :param host: the loopback address to listen on.
    :param port: the API server's port (0: any free one).
    :param catalogue: the V3 model catalogue (default :data:`DEFAULT_CATALOGUE`).
    :param knobs: any field of :class:`Settings` (``app_id``, ``user_key``,
        ``token_ttl``, ``error_shape``, ``integrity``, ``download_rate``...),
        each also an attribute of the simulator.
    """

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        render_seconds: float = 1.0,
        url_field: str = "url",
        host: str = "127.0.0.1",
        port: int = 0,
        catalogue: Optional[List[Dict[str, Any]]] = None,
        **knobs: Any,
    ) -> None:
        self.settings = Settings(token, **knobs)
        self.settings.check()
        self._host, self._port = host, port
        self._stopping = threading.Event()
        self._recorder = Recorder()
        clip = resources.files("aistudios_chromakey").joinpath("data/chromakey.mp4").read_bytes()
        self._storage = Storage(self.settings, clip)
        plan = RenderPlan(render_seconds, url_field=url_field)
        self._service = Service(self.settings, self._storage, catalogue, plan)
        self._faults = FaultBook()
        self._router = Router(self.settings, self._service, self._storage, self._faults)
        self._servers: Dict[str, Server] = {}
        self._threads: List[threading.Thread] = []

    def __getattr__(self, name: str) -> Any:
        if name in _KNOBS:  # the knobs are attributes too
            return getattr(self.settings, name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _KNOBS:
            setattr(self.settings, name, value)
            self.settings.check()
        else:
            super().__setattr__(name, value)

    # --- life cycle ---------------------------------------------------------

    def start(self) -> Simulator:
        for name, port in (("api", self._port), ("download", 0), ("mirror", 0), ("old", 0)):
            server = Server((self._host, port), name, self._router, self._recorder, self._stopping)
            self._servers[name] = server
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            thread.start()
            self._threads.append(thread)
        self._storage.url = self.download_url
        self._storage.mirror_url = self._servers["mirror"].url
        self._router.api_url = self.base_url
        return self

    def stop(self) -> None:
        self._stopping.set()
        # Shut the servers down side by side: each takes up to a poll interval.
        stoppers = [threading.Thread(target=server.shutdown) for server in self._servers.values()]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join()
        for server in self._servers.values():
            server.close_connections()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """The API host, for ``base_url=``."""
        return self._servers["api"].url

    @property
    def download_url(self) -> str:
        """The download (storage) host."""
        return self._servers["download"].url

    @property
    def old_base_url(self) -> str:
        """The old host: every request is redirected to :attr:`base_url`."""
        return self._servers["old"].url

    # --- scripting ----------------------------------------------------------

    def plan(self, *plans: RenderPlan, **changes: Any) -> None:
        """Script the next exports: each plan is used by one export, in order.
        Keyword arguments instead change the default plan of all later ones."""
        self._service.plan(list(plans), changes)

    def fault(self, route: str, kind: str, times: int = 1, **options: Any) -> None:
        """Make the next ``times`` requests to ``route`` (``"export"``,
        ``"progress"``, ``"download"``, ``"token"``, ``"model"``, ``"dropdown"``
        or ``"projects"``) misbehave; see :class:`Fault` for the kinds and their options."""
        self._faults.add(route, Fault(kind, times, **options))

    def purge(self, *keys: str) -> None:
        """Forget projects (all of them without ``keys``), as a service that
        keeps finished projects for a while: their progress is then "project
        not found" (an address already given still serves the video)."""
        with self._service.lock:
            for key in keys or list(self._service.projects):
                self._service.projects.pop(key, None)

    def replace_video(self, key: str, size: Optional[int] = None) -> None:
        """From now on, serve other bytes (and another ETag) for a project's
        video; ``size`` bytes long, by default as long as before."""
        self._storage.replace_video(key, size)

    # --- what it saw --------------------------------------------------------

    @property
    def log(self) -> List[RecordedRequest]:
        """Every request the servers received, in order of arrival."""
        return self._recorder.log

    @property
    def exports(self) -> List[Export]:
        """The exports it accepted, in order."""
        with self._service.lock:
            return list(self._service.exports)

    @property
    def tokens_minted(self) -> List[str]:
        """Every V3 access token the token endpoint issued, in order."""
        with self._service.lock:
            return list(self._service.tokens)

    def requests(self, server: Optional[str] = None, path_prefix: str = "") -> List[RecordedRequest]:
        """Recorded requests, optionally of one server and path prefix."""
        return self._recorder.select(server, path_prefix)

    def polls(self, key: Optional[str] = None) -> List[RecordedRequest]:
        """Progress requests, optionally for one project key."""
        polls = [r for r in self._recorder.select("api") if r.route == "progress"]
        return [r for r in polls if key is None or r.path.split("?")[0].rsplit("/", 1)[-1] == key]

    def stats(self, window: float = 1.0) -> Dict[str, Any]:
        """Cheap counters: ``requests`` (total), ``routes`` (per route name),
        ``polls``, and ``peak_polls``: the most polls within ``window`` s."""
        return self._recorder.stats(window)

    def max_in_flight(self) -> int:
        """The most renders that were running on the service at one moment
        (from the export's acceptance to the render's end)."""
        return self._service.max_in_flight()

    def video(self, key: str) -> bytes:
        """The exact bytes the download host serves for a project (now)."""
        return self._storage.video(key).read()
