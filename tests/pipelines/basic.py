"""Small pipelines used as fixtures by the tests."""

from __future__ import annotations

import time
from typing import Annotated

import anyio

from engine import pipeline, step


@step
def make_number(value: int = 3) -> int:
    return value


@step
def add_one(x: int) -> int:
    return x + 1


@step
def total(values: list[int]) -> int:
    return sum(values)


@step
def split(x: int) -> tuple[Annotated[int, "half"], Annotated[int, "rest"]]:
    return x // 2, x - x // 2


@step
def boom(x: int) -> int:
    raise ValueError(f"boom on {x}")


@step
def sleep_sync(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


@step
async def sleep_async(seconds: float) -> float:
    await anyio.sleep(seconds)
    return seconds


@step
def count(values: list[float]) -> int:
    return len(values)


@pipeline
def chain(start: int = 1) -> Annotated[int, "result"]:
    a = make_number(value=start)
    b = add_one(a)
    return add_one(b)


@pipeline
def fan(n: int = 5) -> int:
    source = make_number(value=1)
    outs = [add_one(source) for _ in range(n)]
    return total(outs)


@pipeline
def halves() -> None:
    half, rest = split(make_number(value=7))
    total([half, rest])


@pipeline(execution_mode="continue_on_failure")
def failing_continue() -> None:
    source = make_number(value=1)
    bad = boom(source)
    add_one(bad)
    add_one(source, id="independent")


@pipeline
def sleepers_sync(n: int = 20) -> None:
    count([sleep_sync(0.5) for _ in range(n)])


@pipeline
def sleepers_async(n: int = 20) -> None:
    count([sleep_async(0.5) for _ in range(n)])
