"""How renders go: :class:`RenderPlan` (scripted by tests), the projects the
service holds, and the progress a render shows at a given moment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict, Optional

__all__ = ["CURVES", "Export", "Project", "RenderPlan", "progress_at"]


@dataclass
class RenderPlan:
    """How the simulator renders one export.

    :ivar seconds: how long the render takes; progress rises linearly.
    :ivar address_after_polls: polls at 100 % that still show no address
        (the tutorial keeps polling through them); ``None``: never any.
    :ivar url_field: the field naming the address; ``None`` for the flow's
        own (``url`` on legacy, ``downloadUrl`` on V3).
    :ivar progress_as_string: send progress as ``"42.0"`` rather than ``42.0``.
    :ivar fail_at: progress at which the render fails for good: this poll and
        every later one answer ``success: false``.
    :ivar fail_state: with ``fail_at``, the failure is told in V3's
        ``state`` (for example ``"failed"``) beside ``success: true``, no
        address, instead of ``success: false``.
    :ivar finish: ``False`` for a render stuck below 100 forever.
    :ivar filename: the last segment of the address's path, as sent (already
        percent-encoded where needed); default ``<key>.mp4``.
    :ivar size: the video's size in bytes; default the clip plus a little.
        Generated on demand: a 1 GiB video costs no memory.
    :ivar reject: refuse the export with this message (``success: false``).
    :ivar curve: how progress rises: ``"linear"``, ``"slow-start"`` (slow,
        then fast) or ``"uneven"`` (a leap, a long crawl, a final rush).
    :ivar link_ttl: seconds a signed video address stays valid; each progress
        answer signs a fresh one. ``None``: plain, unsigned addresses.
    :ivar flaky_polls: this many polls, from poll number ``flaky_from``
        (1 = the first), answer ``success: false`` with HTTP 200; then the
        render carries on as if nothing happened (a transient hiccup).
    :ivar flaky_from: the first flaky poll, counted from 1.
    """

    seconds: float = 1.0
    address_after_polls: Optional[int] = 0
    url_field: Optional[str] = None
    progress_as_string: bool = False
    fail_at: Optional[float] = None
    fail_state: Optional[str] = None
    finish: bool = True
    filename: Optional[str] = None
    size: Optional[int] = None
    reject: Optional[str] = None
    curve: str = "linear"
    link_ttl: Optional[float] = None
    flaky_polls: int = 0
    flaky_from: int = 1


CURVES: Dict[str, Callable[[float], float]] = {
    "linear": lambda x: x,
    "slow-start": lambda x: x * x,
    # Through (0, 0), (0.2, 0.6), (0.8, 0.9), (1, 1).
    "uneven": lambda x: 3 * x if x < 0.2 else 0.6 + (x - 0.2) * 0.5 if x < 0.8 else 0.9 + (x - 0.8) * 0.5,
}


@dataclass(frozen=True)
class Export:
    """An export the simulator accepted."""

    key: str
    api: str
    body: Dict[str, Any]
    accepted: float = 0.0  # time.monotonic() when accepted
    render_seconds: float = 0.0  # as planned; the render ends at accepted + render_seconds


@dataclass
class Project:
    """A project the service holds, and what its polls have seen."""

    key: str
    api: str
    body: Dict[str, Any]
    plan: RenderPlan
    created: float
    polls: int = 0
    polls_at_100: int = 0

    def is_flaky_poll(self) -> bool:
        """Whether the poll just counted is one of the plan's hiccups."""
        first = self.plan.flaky_from
        return first <= self.polls < first + self.plan.flaky_polls

    def render_end(self) -> float:
        """When the render stops running (finished or failed); inf if never."""
        if not self.plan.finish:
            return float("inf")
        share = 1.0 if self.plan.fail_at is None else self.plan.fail_at / 100
        return self.created + self.plan.seconds * share


def progress_at(plan: RenderPlan, elapsed: float) -> float:
    """The progress (0 to 100, one decimal) a render shows ``elapsed`` seconds in."""
    if not plan.finish:
        return min(99.0, round(elapsed * 10, 1))
    if plan.seconds <= 0 or elapsed >= plan.seconds:
        return 100.0
    return min(99.9, round(100 * CURVES[plan.curve](elapsed / plan.seconds), 1))
