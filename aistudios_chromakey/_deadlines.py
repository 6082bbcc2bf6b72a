"""A wall-clock bound for every request.

requests bounds each read of the socket, not a request: an answer that
trickles in a byte a second never times out. A guard gives one request a
deadline; the connection a request goes out on registers itself with the
guard of its thread, and one watchdog thread shuts that connection's socket
down when the deadline passes, which ends any read in progress.
"""

from __future__ import annotations

import contextlib
import heapq
import math
import os
import socket
import threading
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


class Guard:
    """The wall-clock deadline of one request (see :func:`guarded`)."""

    def __init__(self, deadline: float):
        self.deadline = deadline
        self.connection: Any = None
        self.fired = False
        self.done = False

    def reset(self, seconds: float) -> None:
        """Move the deadline to ``seconds`` from now, earlier or later (a body
        that has begun to flow answers to the stall bound, not the request's)."""
        deadline = time.monotonic() + seconds
        earlier, self.deadline = deadline < self.deadline, deadline
        if earlier:
            _watchdog.watch(self)  # the watchdog may be asleep until the old deadline


class _Watchdog:
    """The one thread, named ``aistudios-chromakey watchdog``, that cuts the
    requests whose time is up. It runs only while a guarded request does:
    the last guard to end stops it and waits for it, so no call leaves it
    behind; a forked child starts its own (``os.register_at_fork``)."""

    def __init__(self) -> None:
        self._wake = threading.Condition()
        self._guards: List[Tuple[float, int, Guard]] = []
        self._thread: Optional[threading.Thread] = None

    def watch(self, guard: Guard) -> None:
        with self._wake:
            heapq.heappush(self._guards, (guard.deadline, id(guard), guard))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="aistudios-chromakey watchdog", daemon=True)
                self._thread.start()
            self._wake.notify()

    def forget(self, guard: Guard) -> None:
        with self._wake:
            self._guards = [item for item in self._guards if item[2] is not guard]
            heapq.heapify(self._guards)
            ending = self._thread if not self._guards else None
            if ending is not None:
                self._thread = None
            self._wake.notify()
        if ending is not None:
            ending.join()

    def _run(self) -> None:
        me = threading.current_thread()
        with self._wake:
            while self._thread is me:
                if not self._guards:
                    self._wake.wait()
                    continue
                deadline, key, guard = self._guards[0]
                now = time.monotonic()
                if guard.done:
                    heapq.heappop(self._guards)
                elif guard.deadline > deadline:  # moved since: look again then
                    heapq.heapreplace(self._guards, (guard.deadline, key, guard))
                elif now >= deadline:
                    heapq.heappop(self._guards)
                    _cut(guard)
                else:
                    self._wake.wait(deadline - now)

    def after_fork(self) -> None:
        """In a forked child: the parent's thread did not come along."""
        self._wake = threading.Condition()
        self._guards, self._thread = [], None
        _by_thread.clear()


def _cut(guard: Guard) -> None:
    sock = getattr(guard.connection, "sock", None)
    guard.fired = True
    if sock is not None:
        with contextlib.suppress(OSError):
            socket.socket.shutdown(sock, socket.SHUT_RDWR)


_watchdog = _Watchdog()
_current = threading.local()
_by_thread: Dict[int, Guard] = {}  # each thread's guard, for cut_now()
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_watchdog.after_fork)


@contextlib.contextmanager
def guarded(seconds: float) -> Iterator[Guard]:
    """Bound what happens inside (one request, its answer read) to
    ``seconds`` of wall-clock time; past it, the connection is cut and the
    read in progress fails. ``guard.fired`` then tells why."""
    guard = Guard(time.monotonic() + max(seconds, 0.0))
    _current.guard = _by_thread[threading.get_ident()] = guard
    _watchdog.watch(guard)
    try:
        yield guard
    finally:
        guard.done = True
        _current.guard = None
        _by_thread.pop(threading.get_ident(), None)
        _watchdog.forget(guard)


def time_left() -> float:
    """Seconds left to the guarded request this thread is making (infinite
    outside one; 0 once its guard has cut it)."""
    guard = getattr(_current, "guard", None)
    if guard is None:
        return math.inf
    return 0.0 if guard.fired else max(0.0, guard.deadline - time.monotonic())


def cut_now(thread: int) -> None:
    """End at once the guarded request ``thread`` is making, if any (a batch
    that stops does not wait for its downloads' reads to time out)."""
    guard = _by_thread.get(thread)
    if guard is not None and not guard.done:
        _cut(guard)


class _Registers:
    """A connection that tells its thread's guard it carries the request."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        guard = getattr(_current, "guard", None)
        if guard is not None:
            if guard.fired:  # a retry after the deadline: no more time for it
                raise ConnectionAbortedError("the request's time is up")
            guard.connection = self
        return super().request(*args, **kwargs)  # type: ignore[misc]


class _HTTPConnection(_Registers, HTTPConnection):
    pass


class _HTTPSConnection(_Registers, HTTPSConnection):
    pass


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_GUARDED_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class GuardedAdapter(HTTPAdapter):
    """requests' adapter, with connections a guard can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _GUARDED_POOLS

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(*args, **kwargs)
        manager.pool_classes_by_scheme = _GUARDED_POOLS
        return manager
