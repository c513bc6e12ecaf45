"""Retry maths and the clock retries wait on.

Everything here is pure except the clocks. Attempts are numbered from 1: ``attempt`` is always
the number of the attempt that just *failed*, so with ``max_retries=2`` attempts 1 and 2 are
retried and attempt 3 is final (three attempts in all).

The delay before attempt ``n + 1`` (after attempt ``n`` failed) is::

    base   = min(delay * backoff ** (n - 1), max_delay or DELAY_CEILING)
    factor = 1 + jitter * (2 * rand - 1)          # rand in [0, 1) -> factor in [1-j, 1+j)
    result = clamp(base * factor, 0, max_delay or DELAY_CEILING)

``rand`` is passed in (the run loop draws ``random.random()``; tests choose it), so the maths
has no hidden randomness. Jitter can push a delay below ``max_delay`` but never above it.

The clock is injected too: due times recorded in ``step.retry_scheduled`` are wall-clock epoch
seconds (so a restarted process can rebuild its timers from the log), and waiting goes through
:meth:`Clock.sleep_until`, which :class:`FakeClock` implements without sleeping at all.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import anyio
import anyio.lowlevel

if TYPE_CHECKING:
    from .config import StepRetryConfig

DELAY_CEILING = 7 * 86_400.0
"""No retry waits longer than a week, even without ``max_delay``: a due time must stay a finite,
encodable timestamp however large ``backoff ** attempt`` grows."""


def effective_retry(
    step_retry: StepRetryConfig | None, pipeline_retry: StepRetryConfig | None
) -> StepRetryConfig | None:
    """The retry configuration that applies to a step: its own, else the pipeline's.

    The step's configuration replaces the pipeline's as a whole (fields are not merged), as
    ZenML does with step-level settings that override pipeline-level ones.
    """
    return step_retry if step_retry is not None else pipeline_retry


def _check_attempt(attempt: int) -> None:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 1:
        raise ValueError(f"attempt must be an int >= 1 (attempts count from 1), got {attempt!r}")


def should_retry(config: StepRetryConfig | None, attempt: int) -> bool:
    """Whether the step gets another attempt after attempt number ``attempt`` failed.

    Args:
        config: The step's effective retry configuration; ``None`` means no retries.
        attempt: The 1-based number of the attempt that just failed.

    Returns:
        ``True`` while ``attempt <= config.max_retries``: ``max_retries=2`` allows three
        attempts in all.

    Raises:
        ValueError: ``attempt`` is not an int >= 1.
    """
    _check_attempt(attempt)
    return config is not None and attempt <= config.max_retries


def retry_delay(config: StepRetryConfig, attempt: int, rand: float) -> float:
    """Seconds to wait after attempt ``attempt`` failed, before the next one starts.

    Args:
        config: The retry configuration.
        attempt: The 1-based number of the attempt that just failed.
        rand: A uniform draw from ``[0, 1)`` choosing the jitter factor linearly:
            ``0`` gives ``1 - jitter``, ``0.5`` gives exactly ``1``, values near ``1`` give
            nearly ``1 + jitter``. Ignored when ``jitter`` is 0.

    Returns:
        A finite delay ``>= 0``: the backed-off delay, capped at ``max_delay`` (or
        :data:`DELAY_CEILING`), scaled by the jitter factor, and capped again so jitter never
        exceeds ``max_delay``.

    Raises:
        ValueError: ``attempt`` is not an int >= 1, or ``rand`` is outside ``[0, 1)``.
    """
    _check_attempt(attempt)
    if not 0.0 <= rand < 1.0:
        raise ValueError(f"rand must be in [0, 1), got {rand!r}")
    cap = DELAY_CEILING if config.max_delay is None else min(config.max_delay, DELAY_CEILING)
    if config.delay <= 0:
        return 0.0
    try:
        base = config.delay * config.backoff ** (attempt - 1)
    except OverflowError:  # backoff ** attempt beyond float range; a tiny delay may not be
        exponent = math.log(config.delay) + (attempt - 1) * math.log(config.backoff)
        base = math.inf if exponent > math.log(cap) else math.exp(exponent)
    base = min(base, cap)
    if config.jitter:
        base *= 1.0 + config.jitter * (2.0 * rand - 1.0)
    return min(max(base, 0.0), cap)


def due_at(config: StepRetryConfig, attempt: int, now: float, rand: float) -> float:
    """When the next attempt is due: ``now + retry_delay(config, attempt, rand)``.

    Args:
        config: The retry configuration.
        attempt: The 1-based number of the attempt that just failed.
        now: The current time from :meth:`Clock.now` (epoch seconds).
        rand: The jitter draw, as for :func:`retry_delay`.

    Returns:
        The due time in the clock's timescale, for ``step.retry_scheduled.due_at``.
    """
    return now + retry_delay(config, attempt, rand)


# -- clocks ------------------------------------------------------------------------------------


@runtime_checkable
class Clock(Protocol):
    """Where the engine reads the time and waits for a deadline.

    ``now()`` is wall-clock time in epoch seconds: due times are written to the event log and
    must mean the same instant to another process or after a restart.
    """

    def now(self) -> float:
        """The current time, epoch seconds."""
        ...

    async def sleep_until(self, deadline: float) -> None:
        """Return once ``now() >= deadline`` (at once if it already is); cancellable."""
        ...


class SystemClock:
    """The real clock: :func:`time.time` and :func:`anyio.sleep`."""

    __slots__ = ()

    def now(self) -> float:
        """The current time, epoch seconds."""
        return time.time()

    async def sleep_until(self, deadline: float) -> None:
        """Sleep until the wall clock reaches ``deadline``.

        Re-checks after waking, so a wall clock set back while sleeping still waits the full
        time; a clock set forward wakes early at the next check, which is what a due time means.
        """
        remaining = deadline - time.time()
        if remaining <= 0:
            await anyio.lowlevel.checkpoint()
            return
        while remaining > 0:
            await anyio.sleep(remaining)
            remaining = deadline - time.time()


@dataclass(order=True, slots=True)
class _Sleeper:
    deadline: float
    seq: int
    event: anyio.Event = field(compare=False)


class FakeClock:
    """A clock for tests: time moves only when :meth:`advance` says so; nothing really sleeps.

    Sleepers wait on their own :class:`anyio.Event`; :meth:`advance` sets the events of every
    sleeper whose deadline has passed, earliest deadline first (ties in the order they started
    sleeping), so the woken tasks are scheduled in deadline order. Use it from the event loop's
    thread only.

    Args:
        start: The initial time, epoch seconds.
    """

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._now = float(start)
        self._heap: list[_Sleeper] = []
        self._seq = itertools.count()
        self._changed: anyio.Event | None = None  # created on first wait, inside the loop

    def now(self) -> float:
        """The fake current time."""
        return self._now

    @property
    def sleepers(self) -> int:
        """How many tasks are waiting in :meth:`sleep_until`."""
        return len(self._heap)

    def next_deadline(self) -> float | None:
        """The earliest deadline anyone waits for, or ``None``."""
        return self._heap[0].deadline if self._heap else None

    async def sleep_until(self, deadline: float) -> None:
        """Wait until :meth:`advance` moves the time to ``deadline`` or past it."""
        if deadline <= self._now:
            await anyio.lowlevel.checkpoint()
            return
        sleeper = _Sleeper(deadline, next(self._seq), anyio.Event())
        heapq.heappush(self._heap, sleeper)
        self._notify()
        try:
            await sleeper.event.wait()
        finally:
            if not sleeper.event.is_set():  # cancelled while waiting: forget the sleeper
                self._heap.remove(sleeper)
                heapq.heapify(self._heap)
                self._notify()

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` and wake every sleeper whose deadline passed.

        Raises:
            ValueError: ``seconds`` is negative (time never goes back).
        """
        if seconds < 0:
            raise ValueError(f"a FakeClock cannot go back in time (advance({seconds!r}))")
        self._now += seconds
        woke = False
        while self._heap and self._heap[0].deadline <= self._now:
            heapq.heappop(self._heap).event.set()
            woke = True
        if woke:
            self._notify()

    def advance_to(self, when: float) -> None:
        """Move time forward to ``when`` (no-op if it is already later)."""
        self.advance(max(0.0, when - self._now))

    async def wait_for_sleepers(self, count: int) -> None:
        """Wait until at least ``count`` tasks are sleeping (a test's readiness handshake)."""
        while len(self._heap) < count:
            if self._changed is None:
                self._changed = anyio.Event()
            await self._changed.wait()

    def _notify(self) -> None:
        # One event per change: waiters in wait_for_sleepers wake and re-check their condition.
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()


__all__ = [
    "DELAY_CEILING",
    "Clock",
    "FakeClock",
    "SystemClock",
    "due_at",
    "effective_retry",
    "retry_delay",
    "should_retry",
]
