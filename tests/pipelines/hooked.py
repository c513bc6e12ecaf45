"""Hooks referenced by import path (``"tests.pipelines.hooked.record_success"``); each call is
recorded in :data:`CALLS` as ``(name, detail)``."""

from __future__ import annotations

from typing import Any

import anyio.lowlevel

from engine import get_step_context

CALLS: list[tuple[str, Any]] = []


def _step_id() -> str | None:
    try:
        return get_step_context().invocation_id
    except RuntimeError:
        return None


def record_success() -> None:
    CALLS.append(("on_success", _step_id()))


def record_failure(exception: BaseException) -> None:
    CALLS.append(("on_failure", f"{type(exception).__name__}: {exception}"))


def record_failure_without_argument() -> None:
    CALLS.append(("on_failure", None))


async def record_cleanup_async() -> None:
    await anyio.lowlevel.checkpoint()
    CALLS.append(("on_cleanup", None))


async def init_state_async(base: int = 1, label: str = "state") -> dict[str, Any]:
    await anyio.lowlevel.checkpoint()
    CALLS.append(("on_init", base))
    return {"base": base, "label": label}


def explode(*_: Any) -> None:
    raise RuntimeError("hook exploded on purpose")
