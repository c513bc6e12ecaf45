"""Pipelines that a test kills with SIGKILL at a chosen point, then resumes.

Each step appends its name to ``$CRASHY_DIR/ran`` when it executes (so a test can count
executions across processes). A step named in ``$CRASHY_DIR/block`` touches
``$CRASHY_DIR/<step>.blocked`` and then waits until the ``block`` file is gone: the test kills the
process while it waits. Run as ``python crashy.py PIPELINE``.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from engine import pipeline, step
from engine.config import StepRetryConfig


def _dir() -> Path:
    return Path(os.environ["CRASHY_DIR"])


def _ran(name: str) -> None:
    with (_dir() / "ran").open("a") as f:
        f.write(name + "\n")


def _maybe_block(name: str) -> None:
    block = _dir() / "block"
    if block.exists() and block.read_text().strip() == name:
        (_dir() / f"{name}.blocked").touch()
        while block.exists():
            time.sleep(0.02)


@step
def first() -> int:
    _ran("first")
    return 1


@step
def middle(x: int) -> int:
    _ran("middle")
    _maybe_block("middle")
    return x + 1


@step
def last(x: int) -> int:
    _ran("last")
    return x * 10


@pipeline
def chain() -> None:
    last(middle(first()))


@step
def slow() -> int:
    _ran("slow")
    _maybe_block("slow")
    return 5


@pipeline(max_concurrency=1)
def queued() -> None:
    """``first`` runs alone; when it succeeds ``slow`` starts and ``last`` waits in the queue,
    ready but not started: a kill there lands between a success and the next step's start."""
    x = first()
    slow()
    last(x)


@step(retry=StepRetryConfig(max_retries=1, delay=2, backoff=1))
def flaky(x: int) -> int:
    _ran("flaky")
    if (_dir() / "ran").read_text().splitlines().count("flaky") == 1:
        raise RuntimeError("first attempt fails")
    return x + 100


@pipeline
def retrying() -> None:
    last(flaky(first()))


@step
def work(i: int) -> int:
    _ran(f"work{i}")
    _maybe_block(f"work{i}")
    return i * i


@step
def add_up(values: list[int]) -> int:
    _ran("add_up")
    return sum(values)


@pipeline(dynamic=True)
def fan(n: int = 4) -> None:
    """A dynamic fan-out; ``$CRASHY_SHAPE=other`` makes the body declare ``work_3`` with other
    parameters, so a resume sees a different step under a recorded id."""
    other = os.environ.get("CRASHY_SHAPE") == "other"
    squares = [work(i + 10 if other and i == 3 else i) for i in range(n)]
    add_up(squares)


if __name__ == "__main__":
    globals()[sys.argv[1]]()
