"""Firing hooks from a run: validated specs per step and pipeline, and one firing as events.

Each firing appends ``hook.started``, calls the hook (sync hooks in a worker thread, async ones
on the loop, with the step or pipeline context set), then appends ``hook.succeeded`` or
``hook.failed`` with the error text. A hook that raises is recorded and logged; only the caller
decides whether that changes anything (it does for ``on_init`` alone).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio

from events import AnyEvent, HookFailed, HookStarted, HookSucceeded

from ._context import _RUN, _STEP, RunContext, StepContext
from ._hooks import HookSpec, call_hook, check_hook
from ._log import get_logger

log = get_logger("evenflow.hooks")

STEP_HOOKS = ("on_start", "on_end", "on_success", "on_failure")
PIPELINE_HOOKS = ("on_init", "on_success", "on_failure", "on_cleanup")


@dataclass(frozen=True, slots=True)
class HookSet:
    """The checked hooks of one step or pipeline, by kind (absent kinds are missing)."""

    specs: Mapping[str, HookSpec]

    def get(self, kind: str) -> HookSpec | None:
        return self.specs.get(kind)

    def __bool__(self) -> bool:
        return bool(self.specs)


EMPTY = HookSet({})


def check_hooks(
    owner: str,
    options: Mapping[str, Any],
    kinds: Sequence[str],
    init_kwargs: Mapping[str, Any] | None = None,
) -> HookSet:
    """Validate the hooks among ``options`` (raises ``HookSignatureError`` naming the owner)."""
    specs: dict[str, HookSpec] = {}
    for kind in kinds:
        hook = options.get(kind)
        if hook is None:
            continue
        kwargs = (init_kwargs or {}) if kind == "on_init" else None
        specs[kind] = check_hook(hook, owner=owner, kind=kind, init_kwargs=kwargs)
    return HookSet(specs) if specs else EMPTY


Append = Callable[[Sequence[AnyEvent]], Awaitable[None]]


async def fire(
    append: Append,
    spec: HookSpec,
    *,
    run: RunContext,
    step_ctx: StepContext | None = None,
    exception: BaseException | None = None,
    limiter: Any = None,
) -> tuple[Any, BaseException | None]:
    """Fire one hook; returns ``(its return value, None)`` or ``(None, what it raised)``."""
    step = step_ctx.invocation_id if step_ctx is not None else None
    kind = spec.kind.value
    await append([HookStarted(hook=kind, name=spec.name, step=step)])
    run_token = _RUN.set(run)
    step_token = _STEP.set(step_ctx)
    try:
        result = await call_hook(spec, exception=exception, limiter=limiter)
    except anyio.get_cancelled_exc_class():
        # Cut short (the run was cancelled, or its hooks' deadline passed): still an outcome.
        with anyio.CancelScope(shield=True):
            error = "cancelled before it returned"
            await append([HookFailed(hook=kind, name=spec.name, step=step, error=error)])
        raise
    except (Exception, SystemExit) as exc:  # sys.exit() in a hook is the hook's failure
        error = f"{type(exc).__name__}: {exc}"
        log.warning("hook_failed", run_id=run.run_id, step=step, hook=kind, error=error)
        await append([HookFailed(hook=kind, name=spec.name, step=step, error=error)])
        return None, exc
    finally:
        _STEP.reset(step_token)
        _RUN.reset(run_token)
    await append([HookSucceeded(hook=kind, name=spec.name, step=step)])
    return result, None
