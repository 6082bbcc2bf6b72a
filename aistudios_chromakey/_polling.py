"""When to ask a render's progress again: the one poll policy, used by
``wait_for_video`` and by every life of a batch. With a fixed interval, that
interval (the tutorial's is 3 s). Adaptive (the default): the next poll is set
just after the finish estimated from the rate so far, within bounds, so a
render is polled a few times whatever its length.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from typing import Callable, Generator, Optional, Tuple

from ._answers import Progress
from ._jobs import is_number
from ._reports import ProgressEvent, RateLimited, RenderFailed, RenderTimeout, ServiceError

logger = logging.getLogger("aistudios_chromakey")

#: ``None``: adaptive polling. A number of seconds: that fixed interval.
DEFAULT_POLL_INTERVAL: Optional[float] = None
#: Seconds one render may take before :class:`RenderTimeout` (one hour).
DEFAULT_RENDER_TIMEOUT = 3600.0
#: Progress polls a client sends per second at most, whatever the batch's
#: concurrency: a service's rate limit is per account, not per job.
DEFAULT_POLLS_PER_SECOND = 50.0

ADAPTIVE_FIRST = 1.0  # the wait before the render's rate is known
ADAPTIVE_MIN, ADAPTIVE_MAX = 0.5, 15.0  # the bounds of any wait
_MARGIN = 0.1  # how long after the estimated finish to look

#: A render counts as failed only once the service has said so this many times in a row, over
#: at least this many seconds: one such answer may be a hiccup (an expired token answered with
#: HTTP 200, a restarting node), and giving up would pay for the render twice on a re-run.
FAILED_ANSWERS = 3
FAILED_SECONDS = 10.0
#: Seconds one poll may hold the thread that polls every render of a batch while others wait.
POLL_SECONDS = 10.0
#: The last look at a render whose poll was due before its deadline but whose turn came after it.
LAST_LOOK_SECONDS = 1.0
_RATE_LIMIT_PAUSE = 5.0  # when the service names no time


class PollClock:
    """When to poll one render next, from the progress it has shown."""

    def __init__(self, interval: Optional[float], started: float):
        self.interval = interval
        self.started = started
        self.last: Tuple[float, float] = (started, 0.0)  # (time, progress) at the last rise
        self.rate: Optional[float] = None  # percent per second, once known

    def next_wait(self, now: float, progress: float) -> float:
        """Seconds from ``now`` to the next poll, after one that showed ``progress``."""
        then, before = self.last
        rose = progress > before
        if rose and now - then >= ADAPTIVE_FIRST / 2:
            # A span long enough for a rate: latency and rounding do not dominate it.
            self.last = (now, progress)
            self.rate = (progress - before) / (now - then)
        if self.interval is not None:
            return self.interval
        if progress >= 100:  # done, and waiting for the address
            return ADAPTIVE_MIN
        if not rose:
            # No rise yet (queued, or stalled): look again, less often the longer it lasts.
            return min(ADAPTIVE_MAX, max(ADAPTIVE_FIRST, (now - then) / 2))
        if self.last != (now, progress):
            return ADAPTIVE_FIRST
        # Never longer than the render has run: a rate from its first seconds may be far off (a slow start).
        left = min(self.seconds_left(progress) or 0.0, now - self.started)
        return min(ADAPTIVE_MAX, max(ADAPTIVE_MIN, left + _MARGIN))

    def seconds_left(self, progress: float) -> Optional[float]:
        """The render's estimated time left, once a rate is known."""
        if self.rate is None or self.rate <= 0:
            return None
        return max(0.0, (100 - progress) / self.rate)


class Watch(PollClock):
    """One render being waited for (by ``who``, the prefix of its messages):
    when to poll it next, whether its failure persists, and its deadline."""

    def __init__(self, key: str, interval: Optional[float], timeout: Optional[float], now: float, who: str = ""):
        super().__init__(interval, now)
        self.project_key, self.who, self.timeout = key, who, timeout
        self.deadline = None if timeout is None else now + timeout
        self.progress = 0.0
        self.logged = -1  # the last tenth of progress logged
        self.failed_since: Optional[float] = None  # the first failed answer of those in a row
        self.failures = 0

    def answered(self, progress: Progress, now: float) -> float:
        """A good answer: seconds until the next poll. Each tenth of the
        render is logged at INFO, with the time it took and an estimate."""
        self.failed_since, self.failures = None, 0  # any failure seen so far was a hiccup
        self.progress = progress.progress
        wait = self.next_wait(now, progress.progress)
        tenth = min(int(progress.progress // 10), 10)
        if tenth > self.logged:
            self.logged = tenth
            left = self.seconds_left(progress.progress)
            state = f" ({progress.state})" if progress.state else ""
            estimate = f", about {left:.0f} s left" if left is not None and progress.progress < 100 else ""
            after = now - self.started
            logger.info("%sproject %s: %.0f%%%s after %.0f s%s", self.who, self.project_key, progress.progress, state,
                        after, estimate)  # fmt: skip
        return wait

    def failed(self, error: RenderFailed, now: float) -> float:
        """The service said the render failed: ``error`` once that persists,
        else seconds until the next look."""
        if self.failed_since is None:
            self.failed_since = now
        self.failures += 1
        if self.failures < FAILED_ANSWERS:
            return FAILED_SECONDS / max(FAILED_ANSWERS - 1, 1)
        if now - self.failed_since >= FAILED_SECONDS:
            raise error
        return self.failed_since + FAILED_SECONDS - now

    def time_left(self, now: float) -> float:
        """Seconds until the deadline (infinite without one): the bound of the next poll."""
        return math.inf if self.deadline is None else max(self.deadline - now, 0.0)

    def expired(self, now: float) -> Optional[RenderTimeout]:
        """The timeout error, once the deadline has passed."""
        if self.deadline is None or now < self.deadline:
            return None
        return RenderTimeout(
            f"{self.who}project {self.project_key}: not done after {self.timeout:g} s (progress {self.progress:g}%"
            + (", no video address yet" if self.progress >= 100 else "")
            + "). The render may still finish: wait for it again with the same project key, "
            "or run the same batch again."
        )

    def event(self, progress: Progress, position: Optional[int] = None) -> ProgressEvent:
        left = self.seconds_left(progress.progress)
        return ProgressEvent("progress", position, self.project_key, progress.progress, state=progress.state,
                             seconds_left=left)  # fmt: skip


class PollGate:
    """Spaces a client's polls at least ``1 / rate`` seconds apart."""

    def __init__(self, rate: Optional[float]):
        if rate is not None and (not is_number(rate) or rate <= 0):
            raise ValueError(f"max_polls_per_second must be a number > 0 or None (no cap), not {rate!r}")
        self.interval = 0.0 if rate is None else 1.0 / rate
        self.next = 0.0

    def wait(self) -> None:
        """Return when the next poll may go."""
        now = time.monotonic()
        if now < self.next:
            time.sleep(self.next - now)
            now = self.next
        self.next = now + self.interval


@dataclass
class RatePause:
    """One pause for everything a client sends, after an HTTP 429: the
    service's limit is per account, not per job."""

    until: float = 0.0  # time.monotonic() before which nothing is sent

    def extend(self, error: RateLimited) -> float:
        """Pause as long as ``error`` asks (at least a second); returns the seconds."""
        seconds = max(1.0, error.retry_after if error.retry_after is not None else _RATE_LIMIT_PAUSE)
        self.until = max(self.until, time.monotonic() + seconds)
        return seconds


def check_timing(poll_interval: Optional[float], timeout: Optional[float]) -> None:
    """Refuse nonsense before anything is sent or paid for."""
    if poll_interval is not None and (not is_number(poll_interval) or poll_interval <= 0):
        raise ValueError(f"poll_interval must be None (adaptive) or a number of seconds > 0, not {poll_interval!r}")
    if timeout is not None and (not is_number(timeout) or timeout <= 0):
        raise ValueError(f"timeout must be a number of seconds > 0 or None (no limit), not {timeout!r}")


def until_done(
    poll: Callable[[float], Progress],
    watch: Watch,
    pause: RatePause,
    report: Callable[[Progress], None],
    bound: Callable[[], float] = lambda: math.inf,
    doubt: Callable[[RenderFailed], None] = lambda error: None,
) -> Generator[float, None, str]:
    """Poll a render until progress reaches 100 and an address appears, and
    return the address; between polls, yield the ``time.monotonic()`` at
    which to poll next. ``poll(limit)`` asks once within ``limit`` seconds,
    capped by ``bound()`` (a poll cut there is asked again); ``report``
    hears each good answer, ``doubt`` each failure that does not yet
    persist. A rate limit pauses every request of the client. A poll due
    before the deadline whose turn came after it gets one last look.
    """
    who = watch.who
    owed = False  # the last wake-up was due before the deadline
    limited: Optional[RateLimited] = None  # the last answer, if it was a rate limit
    while True:
        now = time.monotonic()
        expired = watch.expired(now)
        if expired is not None and not owed:
            raise _late(expired, limited)
        if pause.until > now and expired is None:
            when = pause.until
        else:
            limit = LAST_LOOK_SECONDS if expired is not None else min(watch.time_left(now), bound())
            try:
                progress = poll(limit)
            except RateLimited as error:
                limited, when = error, time.monotonic() + pause.extend(error)
                logger.warning("%sproject %s: rate limited; polling again in %g s", who, watch.project_key, when - now)
            except RenderFailed as error:
                limited, when = None, time.monotonic() + watch.failed(error, time.monotonic())
                doubt(error)  # not yet a failure: one such answer may be a hiccup
                logger.warning("%s%s; looking again in %.1f s", who, error, when - time.monotonic())
            except ServiceError as error:
                if expired is None and limit < watch.time_left(now) and time.monotonic() - now >= limit:
                    logger.warning("%sa poll took over %g s; asking again", who, limit)
                    when = time.monotonic()
                else:  # a poll cut off by the deadline: the timeout is the news
                    expired = watch.expired(time.monotonic())
                    raise (error if expired is None else _late(expired, limited)) from None
            else:
                limited = None
                if not progress.done:  # first, so that the report carries the new estimate
                    when = now + watch.answered(progress, time.monotonic())
                report(progress)
                if progress.done:
                    assert progress.address is not None
                    return progress.address
        owed = watch.deadline is not None and when < watch.deadline
        yield when if watch.deadline is None else min(when, watch.deadline)


def _late(expired: RenderTimeout, limited: Optional[RateLimited]) -> Exception:
    """The error of a render whose deadline passed: a rate limit, if that is
    what the last poll got (the service, not the render, was the hold-up)."""
    if limited is None:
        return expired
    return RateLimited(f"{expired} Its last poll was refused: {limited}", retry_after=limited.retry_after)
