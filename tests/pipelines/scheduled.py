"""Pipelines the schedule tests register (imported again by the schedule service)."""

from __future__ import annotations

from engine import pipeline, step


@step
def greet(name: str) -> str:
    return f"hello {name}"


@pipeline
def nightly(name: str = "night") -> None:
    greet(name=name)


@pipeline
def needs_name(name: str) -> None:
    greet(name=name)


@step
def nap(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


@pipeline
def sleepy(seconds: float = 60.0) -> None:
    nap(seconds=seconds)
