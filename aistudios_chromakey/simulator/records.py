"""What the servers saw: every request, and cheap counters about them."""

from __future__ import annotations

import json
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["RecordedRequest", "Recorder"]


@dataclass(frozen=True)
class RecordedRequest:
    """A request one of the simulator's servers received."""

    server: str  # "api", "download", "mirror" or "old"
    method: str
    path: str  # as sent: path and query
    headers: Dict[str, str]
    body: bytes
    time: float  # time.monotonic() on arrival
    client: Tuple[str, int]
    route: str = ""  # "export", "progress", "download", "token", "model", "dropdown", "auth", "moved" or "other"

    def json(self) -> Any:
        return json.loads(self.body.decode("utf-8"))


class Recorder:
    """Keeps the log; recording is O(1), queries scan."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.log: List[RecordedRequest] = []
        self._routes: Counter[str] = Counter()
        self._poll_times: List[float] = []

    def record(self, entry: RecordedRequest) -> None:
        with self.lock:
            self.log.append(entry)
            self._routes[entry.route] += 1
            if entry.route == "progress":
                self._poll_times.append(entry.time)

    def select(
        self, server: Optional[str] = None, path_prefix: str = "", route: Optional[str] = None
    ) -> List[RecordedRequest]:
        with self.lock:
            return [
                r
                for r in self.log
                if (server is None or r.server == server)
                and r.path.startswith(path_prefix)
                and (route is None or r.route == route)
            ]

    def stats(self, window: float = 1.0) -> Dict[str, Any]:
        """Requests per route, and the most polls that arrived within any
        ``window`` seconds (``peak_polls``)."""
        with self.lock:
            routes = dict(self._routes)
            times = list(self._poll_times)
        peak = first = 0
        for last, arrival in enumerate(times):  # arrivals are in order
            while arrival - times[first] > window:
                first += 1
            peak = max(peak, last - first + 1)
        return {"requests": sum(routes.values()), "routes": routes, "polls": len(times), "peak_polls": peak}
