"""The one bridge from synchronous code (the Client, the CLI, ``p.run(schedule=...)``) into the
async engine.

:func:`run_sync` runs a coroutine function on a fresh event loop: in this thread when none runs
here, else in a helper thread (so the synchronous API also works inside async apps and
notebooks), with the caller's context variables. :func:`with_engine` does that with the home's
engine open.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from ._engine import Engine
    from ._home import Home

T = TypeVar("T")


def run_sync(fn: Callable[[], Awaitable[T]]) -> T:
    """``fn()`` run to completion on a new event loop; its result, or what it raised."""
    import anyio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return anyio.run(fn, backend="asyncio")
    results: list[T] = []
    errors: list[BaseException] = []
    context = contextvars.copy_context()

    def target() -> None:
        try:
            results.append(context.run(anyio.run, fn))
        except BaseException as exc:  # re-raised in the caller's thread below
            errors.append(exc)

    thread = threading.Thread(target=target, name="evenflow-sync")
    thread.start()
    thread.join()
    if errors:
        raise errors[0]
    return results[0]


def with_engine(home: Home, work: Callable[[Engine], Awaitable[T]]) -> T:
    """Open ``home``'s engine (which also brings its projections up to the log), run
    ``work(engine)`` and return its result, from synchronous code."""
    from ._engine import Engine

    async def main() -> T:
        async with Engine.open(home.root) as engine:
            return await work(engine)

    return run_sync(main)
