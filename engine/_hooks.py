"""Hooks: resolving them, checking their signatures when they are defined, and calling them.

A hook is a function (sync or async) or the import path of one (``"pkg.mod.func"`` or
``"pkg.mod:func"``). :func:`check_hook` resolves it and checks, once, at definition time, that
its signature can take what it will be given:

========================  =========================================================
kind                      called with
========================  =========================================================
``on_init`` (pipeline)    exactly the ``on_init_kwargs`` as keyword arguments
``on_success``            nothing
``on_cleanup`` (pipeline) nothing
``on_start`` (step)       nothing
``on_failure``            the exception, if the hook has a parameter for it
``on_end`` (step)         the exception or ``None``, if the hook has a parameter for it
========================  =========================================================

For ``on_failure``/``on_end`` the exception goes to the first positional parameter (or
``*args``) when there is one, else to the only keyword-only parameter (whatever its name);
a hook with neither is called without it. Annotations are not checked. A signature that
cannot be read (some builtins) is trusted and called without the exception.

:func:`call_hook` runs sync hooks in a worker thread (anyio copies the caller's context, so
``get_step_context()`` works inside) and awaits async ones; it lets the hook's exception
propagate: the run loop records ``hook.failed`` and carries on.
"""

from __future__ import annotations

import enum
import functools
import inspect
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import anyio
import anyio.to_thread

from ._imports import import_object
from .errors import HookSignatureError


class HookKind(enum.StrEnum):
    """The moments a hook can fire at; the value is the event's ``hook`` field."""

    ON_INIT = "on_init"
    ON_SUCCESS = "on_success"
    ON_FAILURE = "on_failure"
    ON_CLEANUP = "on_cleanup"
    ON_START = "on_start"
    ON_END = "on_end"


PIPELINE_HOOK_KINDS = frozenset(
    {HookKind.ON_INIT, HookKind.ON_SUCCESS, HookKind.ON_FAILURE, HookKind.ON_CLEANUP}
)
"""Hooks a pipeline accepts."""

STEP_HOOK_KINDS = frozenset(
    {HookKind.ON_START, HookKind.ON_END, HookKind.ON_SUCCESS, HookKind.ON_FAILURE}
)
"""Hooks a step accepts."""

_NO_ARGS = frozenset({HookKind.ON_SUCCESS, HookKind.ON_CLEANUP, HookKind.ON_START})
_EXCEPTION_ARG = frozenset({HookKind.ON_FAILURE, HookKind.ON_END})
_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)?$")


@dataclass(frozen=True, slots=True)
class HookSpec:
    """A hook that passed :func:`check_hook`, with what is needed to call it.

    Attributes:
        func: The resolved callable.
        kind: When it fires.
        name: ``module:qualname``, the ``name`` field of its ``hook.*`` events.
        takes_exception: Whether it is given the exception (``on_failure``/``on_end`` only).
        exception_keyword: The keyword the exception is passed as, or ``None`` to pass it as
            the first positional argument.
        is_async: Whether it is awaited on the event loop rather than run in a thread.
        init_kwargs: The ``on_init_kwargs`` it was checked against (empty for other kinds).
    """

    func: Callable[..., Any]
    kind: HookKind
    name: str
    takes_exception: bool = False
    exception_keyword: str | None = None
    is_async: bool = False
    init_kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


def hook_name(hook: Callable[..., Any]) -> str:
    """``module:qualname`` of a hook (of the wrapped function for a ``functools.partial``, of
    the class for a callable instance)."""
    target: Any = hook
    while isinstance(target, functools.partial):
        target = target.func
    if not hasattr(target, "__qualname__"):
        target = type(target)
    module = getattr(target, "__module__", None) or "?"
    return f"{module}:{target.__qualname__}"


def _kind(kind: str) -> HookKind:
    try:
        return HookKind(kind)
    except ValueError:
        known = ", ".join(k.value for k in HookKind)
        raise ValueError(f"unknown hook kind {kind!r}; expected one of {known}") from None


def resolve_hook(hook: Callable[..., Any] | str, *, owner: str, kind: str) -> Callable[..., Any]:
    """The callable a hook refers to.

    Args:
        hook: A callable, or an import path ``"pkg.mod.func"`` / ``"pkg.mod:func"``.
        owner: Who the hook belongs to, as messages name it: ``"pipeline 'p'"`` or
            ``"step 's'"``.
        kind: The hook's kind (``"on_failure"``, ...).

    Raises:
        HookSignatureError: the path is malformed, cannot be imported, or names something
            that is not callable; or ``hook`` is neither a callable nor a string.
    """
    kind = _kind(kind).value
    if isinstance(hook, str):
        if not _PATH.match(hook) or ("." not in hook and ":" not in hook):
            raise HookSignatureError(
                f"{owner}: {kind} hook {hook!r} is not an import path like 'pkg.module:function'"
            )
        obj, error = import_object(hook)
        if error is not None:
            raise HookSignatureError(f"{owner}: {kind} hook {hook!r} cannot be imported ({error})")
        if not callable(obj):
            raise HookSignatureError(
                f"{owner}: {kind} hook {hook!r} is a {type(obj).__name__}, not a function"
            )
        return obj  # type: ignore[no-any-return]
    if not callable(hook):
        raise HookSignatureError(
            f"{owner}: {kind} hook must be a function or an import path, "
            f"got {type(hook).__name__} {hook!r}"
        )
    return hook


def _is_async(func: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(func):
        return True
    if inspect.isroutine(func) or inspect.isclass(func):
        return False
    return inspect.iscoroutinefunction(type(func).__call__)  # an instance's `async def __call__`


def _binds(sig: inspect.Signature, *args: Any, **kwargs: Any) -> bool:
    try:
        sig.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def _required(sig: inspect.Signature) -> str:
    names = [
        p.name
        for p in sig.parameters.values()
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    return ", ".join(names) or "nothing"


def _exception_slot(sig: inspect.Signature) -> tuple[bool, str | None] | None:
    """How an ``on_failure``/``on_end`` hook takes the exception: ``(takes, keyword)``;
    ``None`` when it can take neither the exception nor nothing."""
    marker = object()
    if _binds(sig, marker):
        return True, None
    keyword_only = [p for p in sig.parameters.values() if p.kind is p.KEYWORD_ONLY]
    required = [p for p in keyword_only if p.default is p.empty]
    candidates = required if required else keyword_only
    if len(candidates) == 1 and _binds(sig, **{candidates[0].name: marker}):
        return True, candidates[0].name
    if _binds(sig):
        return False, None
    return None


def check_hook(
    hook: Callable[..., Any] | str,
    *,
    owner: str,
    kind: str,
    init_kwargs: Mapping[str, Any] | None = None,
) -> HookSpec:
    """Resolve a hook and check that its signature accepts what it will be called with.

    Args:
        hook: The hook, or its import path.
        owner: ``"pipeline 'p'"`` or ``"step 's'"``, for messages.
        kind: When it fires (a :class:`HookKind` value).
        init_kwargs: For ``on_init`` only: the ``on_init_kwargs`` it will be called with.

    Returns:
        The checked :class:`HookSpec`.

    Raises:
        HookSignatureError: the hook cannot be resolved, or cannot accept its arguments (the
            message names the owner, the kind, the hook and what it cannot accept).
        ValueError: an unknown ``kind``, or ``init_kwargs`` for a kind other than ``on_init``.
    """
    hook_kind = _kind(kind)
    if init_kwargs is not None and hook_kind is not HookKind.ON_INIT:
        raise ValueError(f"init_kwargs only apply to on_init hooks, not {hook_kind.value}")
    func = resolve_hook(hook, owner=owner, kind=hook_kind)
    name = hook_name(func)
    is_async = _is_async(func)
    kwargs = MappingProxyType(dict(init_kwargs or {}))
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError):  # no signature to inspect (some builtins): trust it
        return HookSpec(func, hook_kind, name, is_async=is_async, init_kwargs=kwargs)
    where = f"{owner}: {hook_kind.value} hook {name!r}"
    if hook_kind is HookKind.ON_INIT:
        if not _binds(sig, **kwargs):
            given = ", ".join(sorted(kwargs)) or "no arguments"
            raise HookSignatureError(
                f"{where} is called with on_init_kwargs ({given}) but its signature {sig} "
                f"cannot accept them (it requires {_required(sig)})"
            )
        return HookSpec(func, hook_kind, name, is_async=is_async, init_kwargs=kwargs)
    if hook_kind in _NO_ARGS:
        if not _binds(sig):
            raise HookSignatureError(
                f"{where} is called with no arguments but its signature {sig} "
                f"requires {_required(sig)}"
            )
        return HookSpec(func, hook_kind, name, is_async=is_async)
    assert hook_kind in _EXCEPTION_ARG
    slot = _exception_slot(sig)
    if slot is None:
        given = "the exception" if hook_kind is HookKind.ON_FAILURE else "the exception or None"
        raise HookSignatureError(
            f"{where} is called with {given} or nothing, but its signature {sig} "
            f"cannot accept either (it requires {_required(sig)})"
        )
    takes, keyword = slot
    return HookSpec(func, hook_kind, name, takes, keyword, is_async)


async def call_hook(
    spec: HookSpec,
    *,
    exception: BaseException | None = None,
    kwargs: Mapping[str, Any] | None = None,
    limiter: anyio.CapacityLimiter | None = None,
) -> Any:
    """Call a checked hook and return what it returned.

    Sync hooks run in a worker thread under ``limiter`` (anyio's default limiter when
    ``None``) with the caller's context variables; async hooks are awaited on the loop. A
    sync hook's thread is not abandoned on cancellation: shield the call if it must finish.

    Args:
        spec: From :func:`check_hook`.
        exception: For ``on_failure``/``on_end``: passed only if the hook takes it.
        kwargs: For ``on_init``: the keyword arguments (default: the spec's ``init_kwargs``).
        limiter: The thread limiter for sync hooks (the run's, so hooks count against it).

    Raises:
        BaseException: whatever the hook raised, unchanged.
    """
    args: tuple[Any, ...] = ()
    call_kwargs: dict[str, Any] = {}
    if spec.kind is HookKind.ON_INIT:
        call_kwargs = dict(spec.init_kwargs if kwargs is None else kwargs)
    elif spec.takes_exception:
        if spec.exception_keyword is None:
            args = (exception,)
        else:
            call_kwargs = {spec.exception_keyword: exception}
    if spec.is_async:
        return await spec.func(*args, **call_kwargs)
    call = functools.partial(spec.func, *args, **call_kwargs) if args or call_kwargs else spec.func
    result = await anyio.to_thread.run_sync(call, limiter=limiter)
    if inspect.isawaitable(result):  # a sync wrapper that returned a coroutine
        result = await result
    return result


__all__ = [
    "PIPELINE_HOOK_KINDS",
    "STEP_HOOK_KINDS",
    "HookKind",
    "HookSpec",
    "call_hook",
    "check_hook",
    "hook_name",
    "resolve_hook",
]
