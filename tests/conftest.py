"""Fixtures: a fresh simulator of the service for each test, the tutorial's jobs."""

from __future__ import annotations

import copy
import signal
import socket
from typing import Any, Dict, Iterator, List

import pytest

from aistudios_chromakey._cli import TUTORIAL_JOBS
from aistudios_chromakey.simulator import Simulator

__all__ = ["SECRET", "TUTORIAL_JOBS", "default_signal_handling"]

#: A key distinctive enough to be found if it leaks anywhere.
SECRET = "sk-live-Zq8!SECRET-KEY-do-not-leak-4711"


def default_signal_handling() -> None:
    """For a child process, before it starts: the default reaction to Ctrl-C
    and SIGTERM, whatever this process was started with (a shell's background
    job ignores SIGINT, and its children would inherit that)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@pytest.fixture(autouse=True)
def short_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The library's waits between attempts, made short: the same code runs,
    without idle seconds. A test of a wait's length sets it back."""
    from aistudios_chromakey import _http as _transport
    from aistudios_chromakey import _http as download
    from aistudios_chromakey import _polling as polling

    monkeypatch.setattr(_transport, "BACKOFF_FACTOR", 0.01)
    monkeypatch.setattr(_transport, "IN_REQUEST_WAIT_MAX", 0.2)
    monkeypatch.setattr(download, "RETRY_PAUSE", 0.01)
    monkeypatch.setattr(polling, "FAILED_SECONDS", 0.3)


@pytest.fixture
def sim() -> Iterator[Simulator]:
    """The service and its download host on loopback; renders take 0.2 s."""
    with Simulator(SECRET, render_seconds=0.2) as simulator:
        yield simulator


@pytest.fixture
def jobs() -> List[Dict[str, Any]]:
    return copy.deepcopy(TUTORIAL_JOBS)


@pytest.fixture
def fast(sim: Simulator) -> Dict[str, Any]:
    """Keyword arguments pointing a call at the simulator with quick polling."""
    return {"base_url": sim.base_url, "poll_interval": 0.05}


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port held for the test, bound and never listening: a
    connection to it is refused, and no other test's server can take it."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]
