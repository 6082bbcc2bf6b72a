"""A wall-clock bound for every request: requests bounds each read of the
socket, and an answer that trickles in a byte a second never times out. A
guard gives one request a deadline; the connection a request goes out on
registers with its thread's guard, and one watchdog thread shuts that
connection's socket down when the deadline passes, ending any read."""

from __future__ import annotations

import contextlib
import math
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, Dict, Iterator, Optional, Set

from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool


@dataclass(eq=False)
class Guard:
    """The wall-clock deadline of one request (see :func:`guarded`)."""

    deadline: float
    connection: Any = None
    fired: bool = False
    done: bool = False

    def reset(self, seconds: float) -> None:
        """Move the deadline to ``seconds`` from now, earlier or later (a body
        that has begun to flow answers to the stall bound, not the request's)."""
        deadline = time.monotonic() + seconds
        earlier, self.deadline = deadline < self.deadline, deadline
        if earlier:
            _watchdog.watch(self)  # the watchdog may be asleep until the old deadline

    def cut(self) -> None:
        """End the request now: shut its connection's socket down, which ends any read."""
        self.fired = True
        sock = getattr(self.connection, "sock", None)
        if sock is not None:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _Watchdog:
    """The one thread, ``aistudios-chromakey watchdog``, that cuts the requests
    whose time is up. It runs only while a guarded request does (the last
    guard to end stops it and waits for it); a forked child starts its own."""

    def __init__(self) -> None:
        self.wake = threading.Condition()
        self.guards: Set[Guard] = set()
        self.thread: Optional[threading.Thread] = None

    def watch(self, guard: Guard) -> None:
        with self.wake:
            self.guards.add(guard)
            if self.thread is None:
                self.thread = threading.Thread(target=self.run, name="aistudios-chromakey watchdog", daemon=True)
                self.thread.start()
            self.wake.notify()

    def forget(self, guard: Guard) -> None:
        with self.wake:
            self.guards.discard(guard)
            ending, self.thread = (None, self.thread) if self.guards else (self.thread, None)
            self.wake.notify()
        if ending is not None:
            ending.join()

    def run(self) -> None:
        me = threading.current_thread()
        with self.wake:
            while self.thread is me:
                now = time.monotonic()
                for guard in [guard for guard in self.guards if guard.deadline <= now]:
                    self.guards.discard(guard)
                    if not guard.done:  # ended, but not yet forgotten
                        guard.cut()
                # Until the next deadline: a guard that moves its own earlier wakes us (watch).
                self.wake.wait(min((guard.deadline - now for guard in self.guards), default=None))

    def after_fork(self) -> None:
        """In a forked child: the parent's thread did not come along."""
        self.wake, self.guards, self.thread = threading.Condition(), set(), None
        _by_thread.clear()


_watchdog = _Watchdog()
_by_thread: Dict[int, Guard] = {}  # the guard of each thread inside guarded()
if hasattr(os, "register_at_fork"):  # not on Windows, which has no fork
    os.register_at_fork(after_in_child=_watchdog.after_fork)


@contextlib.contextmanager
def guarded(seconds: float) -> Iterator[Guard]:
    """Bound what happens inside (one request, its answer read) to
    ``seconds`` of wall-clock time; past it, the connection is cut and the
    read in progress fails. ``guard.fired`` then tells why."""
    guard = _by_thread[threading.get_ident()] = Guard(time.monotonic() + max(seconds, 0.0))
    _watchdog.watch(guard)
    try:
        yield guard
    finally:
        guard.done = True
        _by_thread.pop(threading.get_ident(), None)
        _watchdog.forget(guard)


def time_left() -> float:
    """Seconds left to the guarded request this thread is making (infinite
    outside one; 0 once its guard has cut it)."""
    guard = _by_thread.get(threading.get_ident())
    if guard is None:
        return math.inf
    return 0.0 if guard.fired else max(0.0, guard.deadline - time.monotonic())


def cut_now(thread: int) -> None:
    """End at once the guarded request ``thread`` is making, if any (a batch
    that stops does not wait for its downloads' reads to time out)."""
    guard = _by_thread.get(thread)
    if guard is not None and not guard.done:
        guard.cut()


class _Registers:
    """A connection that tells its thread's guard it carries the request."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        guard = _by_thread.get(threading.get_ident())
        if guard is not None:
            if guard.fired:  # a retry after the deadline: no more time for it
                raise ConnectionAbortedError("the request's time is up")
            guard.connection = self
        return super().request(*args, **kwargs)  # type: ignore[misc]


def _guarded_pool(pool: type, connection: type) -> type:
    """``pool``, whose connections are ``connection``s that register with their guard."""
    return type(pool.__name__, (pool,), {"ConnectionCls": type(connection.__name__, (_Registers, connection), {})})


_GUARDED_POOLS = {
    "http": _guarded_pool(HTTPConnectionPool, HTTPConnection),
    "https": _guarded_pool(HTTPSConnectionPool, HTTPSConnection),
}


class GuardedAdapter(HTTPAdapter):
    """requests' adapter, with connections a guard can cut."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _GUARDED_POOLS

    def proxy_manager_for(self, *args: Any, **kwargs: Any) -> Any:
        manager = super().proxy_manager_for(*args, **kwargs)
        manager.pool_classes_by_scheme = _GUARDED_POOLS
        return manager
