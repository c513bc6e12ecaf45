"""Retry maths (property tests) and the injected clocks; nothing here sleeps for a delay."""

from __future__ import annotations

import math
import time

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine._retry import (
    DELAY_CEILING,
    Clock,
    FakeClock,
    SystemClock,
    due_at,
    effective_retry,
    retry_delay,
    should_retry,
)
from engine.config import StepRetryConfig

SETTINGS = settings(max_examples=200, deadline=None)

attempts = st.integers(min_value=1, max_value=2_000)
rands = st.floats(min_value=0.0, max_value=1.0, exclude_max=True)


@st.composite
def configs(draw: st.DrawFn, *, jitter: bool = True) -> StepRetryConfig:
    delay = draw(st.floats(min_value=0, max_value=1e4, allow_nan=False))
    capped = draw(st.booleans())
    max_delay = draw(st.floats(min_value=delay, max_value=1e6)) if capped else None
    return StepRetryConfig(
        max_retries=draw(st.integers(min_value=0, max_value=20)),
        delay=delay,
        backoff=draw(st.floats(min_value=1, max_value=100)),
        max_delay=max_delay,
        jitter=draw(st.floats(min_value=0, max_value=1)) if jitter else 0.0,
    )


def _cap(config: StepRetryConfig) -> float:
    return DELAY_CEILING if config.max_delay is None else min(config.max_delay, DELAY_CEILING)


def _base(config: StepRetryConfig, attempt: int) -> float:
    """The un-jittered delay, computed independently of the module (log space)."""
    if config.delay == 0:
        return 0.0
    log_delay = math.log(config.delay) + (attempt - 1) * math.log(config.backoff)
    return (
        _cap(config)
        if log_delay > math.log(_cap(config))
        else min(math.exp(log_delay), _cap(config))
    )


# -- attempts ------------------------------------------------------------------------------


@SETTINGS
@given(st.integers(min_value=0, max_value=50))
def test_max_retries_gives_that_many_extra_attempts(max_retries: int) -> None:
    config = StepRetryConfig(max_retries=max_retries)
    attempt = 1
    while should_retry(config, attempt):
        attempt += 1
    assert attempt == max_retries + 1  # total attempts made, the last one final


def test_should_retry_examples() -> None:
    config = StepRetryConfig(max_retries=2)
    assert [should_retry(config, a) for a in (1, 2, 3, 4)] == [True, True, False, False]
    assert not should_retry(None, 1)
    assert not should_retry(StepRetryConfig(max_retries=0), 1)


@pytest.mark.parametrize("attempt", [0, -1, 1.0, True, "1"])
def test_attempts_count_from_one(attempt: object) -> None:
    with pytest.raises(ValueError, match="attempt"):
        should_retry(StepRetryConfig(), attempt)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="attempt"):
        retry_delay(StepRetryConfig(), attempt, 0.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("rand", [-0.1, 1.0, 2.0, math.nan])
def test_rand_must_be_in_unit_interval(rand: float) -> None:
    with pytest.raises(ValueError, match="rand"):
        retry_delay(StepRetryConfig(delay=1, jitter=0.5), 1, rand)


def test_effective_retry_step_wins() -> None:
    step, pipe = StepRetryConfig(max_retries=5), StepRetryConfig(max_retries=1)
    assert effective_retry(step, pipe) is step
    assert effective_retry(None, pipe) is pipe
    assert effective_retry(step, None) is step
    assert effective_retry(None, None) is None


# -- delays --------------------------------------------------------------------------------


def test_delay_examples() -> None:
    config = StepRetryConfig(max_retries=5, delay=2, backoff=3, max_delay=50)
    assert [retry_delay(config, a, 0.0) for a in range(1, 6)] == [2, 6, 18, 50, 50]
    jittery = StepRetryConfig(delay=10, jitter=0.2)
    assert retry_delay(jittery, 1, 0.0) == pytest.approx(8.0)
    assert retry_delay(jittery, 1, 0.5) == pytest.approx(10.0)
    assert retry_delay(jittery, 1, 0.75) == pytest.approx(11.0)
    assert retry_delay(StepRetryConfig(), 1, 0.3) == 0.0


@SETTINGS
@given(configs(), attempts, rands)
def test_delay_within_jitter_bounds_and_caps(
    config: StepRetryConfig, attempt: int, rand: float
) -> None:
    delay = retry_delay(config, attempt, rand)
    base = _base(config, attempt)
    assert math.isfinite(delay)
    assert 0.0 <= delay <= _cap(config)
    if config.max_delay is not None:
        assert delay <= config.max_delay
    low, high = base * (1 - config.jitter), min(base * (1 + config.jitter), _cap(config))
    assert low * (1 - 1e-9) <= delay <= high * (1 + 1e-9)


@SETTINGS
@given(configs(jitter=False), st.integers(min_value=1, max_value=500), rands)
def test_delay_without_jitter_is_monotone_and_ignores_rand(
    config: StepRetryConfig, attempt: int, rand: float
) -> None:
    now = retry_delay(config, attempt, rand)
    assert now == retry_delay(config, attempt, 0.0)
    assert retry_delay(config, attempt + 1, rand) >= now
    assert now == pytest.approx(_base(config, attempt), rel=1e-9)


@SETTINGS
@given(configs(), attempts, st.floats(min_value=0, max_value=2e9), rands)
def test_due_at_is_now_plus_delay(
    config: StepRetryConfig, attempt: int, now: float, rand: float
) -> None:
    assert due_at(config, attempt, now, rand) == now + retry_delay(config, attempt, rand)
    assert due_at(config, attempt, now, rand) >= now


def test_huge_backoff_is_capped_not_overflowing() -> None:
    config = StepRetryConfig(max_retries=10_000, delay=1, backoff=10)
    assert retry_delay(config, 5_000, 0.0) == DELAY_CEILING
    capped = StepRetryConfig(max_retries=10_000, delay=1, backoff=10, max_delay=60, jitter=1)
    assert retry_delay(capped, 5_000, 0.999) == 60
    assert retry_delay(capped, 5_000, 0.0) == 0


# -- clocks --------------------------------------------------------------------------------


def test_clocks_satisfy_the_protocol() -> None:
    assert isinstance(SystemClock(), Clock)
    assert isinstance(FakeClock(), Clock)


@pytest.mark.anyio
async def test_system_clock_past_deadline_returns_at_once() -> None:
    clock = SystemClock()
    assert abs(clock.now() - time.time()) < 1
    with anyio.fail_after(1):
        await clock.sleep_until(clock.now() - 10)
        await clock.sleep_until(clock.now() + 0.01)


@pytest.mark.anyio
async def test_fake_clock_wakes_only_when_advanced() -> None:
    clock = FakeClock(start=100.0)
    woke: list[float] = []

    async def sleeper(deadline: float) -> None:
        await clock.sleep_until(deadline)
        woke.append(clock.now())

    async with anyio.create_task_group() as tg:
        tg.start_soon(sleeper, 110.0)
        await clock.wait_for_sleepers(1)
        assert clock.next_deadline() == 110.0
        clock.advance(5)
        await anyio.wait_all_tasks_blocked()
        assert woke == []
        clock.advance(5)
    assert woke == [110.0]
    assert clock.sleepers == 0


@pytest.mark.anyio
async def test_fake_clock_past_deadline_and_cancellation() -> None:
    clock = FakeClock(start=0.0)
    with anyio.fail_after(1):
        await clock.sleep_until(-5)  # already due
    with anyio.move_on_after(0.01):  # the real timeout cancels the fake sleep
        await clock.sleep_until(1_000)
    assert clock.sleepers == 0
    with pytest.raises(ValueError, match="back in time"):
        clock.advance(-1)
    clock.advance_to(50)
    clock.advance_to(10)
    assert clock.now() == 50


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(min_value=0.001, max_value=1_000), min_size=1, max_size=12), st.data())
def test_fake_clock_wakes_sleepers_in_deadline_order(
    deadlines: list[float], data: st.DataObject
) -> None:
    steps = data.draw(st.lists(st.floats(min_value=0, max_value=400), max_size=6))

    async def main() -> list[tuple[float, int]]:
        clock = FakeClock(start=0.0)
        order: list[tuple[float, int]] = []

        async def sleeper(i: int, deadline: float) -> None:
            await clock.sleep_until(deadline)
            assert clock.now() >= deadline
            order.append((deadline, i))

        async with anyio.create_task_group() as tg:
            for i, deadline in enumerate(deadlines):
                tg.start_soon(sleeper, i, deadline)
            await clock.wait_for_sleepers(len(deadlines))
            for step in steps:
                clock.advance(step)
                await anyio.wait_all_tasks_blocked()
                # Exactly the sleepers whose deadline passed have woken.
                assert len(order) == sum(d <= clock.now() for d in deadlines)
            clock.advance(1_000)
        return order

    order = anyio.run(main, backend="asyncio")
    assert order == sorted((d, i) for i, d in enumerate(deadlines))
