"""Hook resolution, definition-time signature checks, and calling hooks (sync and async)."""

from __future__ import annotations

import contextvars
import functools
import threading
from collections.abc import Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest

from engine._hooks import (
    PIPELINE_HOOK_KINDS,
    STEP_HOOK_KINDS,
    HookKind,
    HookSpec,
    call_hook,
    check_hook,
    hook_name,
    resolve_hook,
)
from engine.errors import HookSignatureError, PipelineDefinitionError

OWNER = "pipeline 'p'"
_VAR: contextvars.ContextVar[str] = contextvars.ContextVar("test_hooks_var", default="unset")


# -- hooks used below (module level, so import paths can name them) ---------------------------


def no_args() -> str:
    return "no_args"


def one_arg(exception: BaseException) -> BaseException:
    return exception


def optional_arg(exception: BaseException | None = None) -> BaseException | None:
    return exception


def keyword_only(*, error: BaseException) -> BaseException:
    return error


def keyword_only_optional(*, error: BaseException | None = None) -> BaseException | None:
    return error


def two_args(a: object, b: object) -> None:
    return None


def star_args(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


def only_kwargs(**kwargs: Any) -> dict[str, Any]:
    return kwargs


def init(a: int, b: str = "x") -> dict[str, Any]:
    return {"a": a, "b": b}


async def async_one_arg(exception: BaseException) -> str:
    await anyio.lowlevel.checkpoint()
    return f"async:{exception}"


async def async_no_args() -> str:
    return "async"


def read_var() -> tuple[str, str]:
    return _VAR.get(), threading.current_thread().name


class CallableHook:
    def __call__(self, exception: BaseException) -> str:
        return f"callable:{exception}"


class AsyncCallableHook:
    async def __call__(self) -> str:
        return "async-callable"


HERE = __name__


# -- resolution ---------------------------------------------------------------------------


def test_kinds() -> None:
    assert {k.value for k in PIPELINE_HOOK_KINDS} == {
        "on_init",
        "on_success",
        "on_failure",
        "on_cleanup",
    }
    assert {k.value for k in STEP_HOOK_KINDS} == {"on_start", "on_end", "on_success", "on_failure"}
    assert str(HookKind.ON_FAILURE) == "on_failure"
    assert isinstance(HookKind.ON_FAILURE, str)


def test_hook_name() -> None:
    assert hook_name(no_args) == f"{HERE}:no_args"
    assert hook_name(functools.partial(two_args, 1)) == f"{HERE}:two_args"
    assert hook_name(CallableHook()) == f"{HERE}:CallableHook"


@pytest.mark.parametrize("path", [f"{HERE}:no_args", f"{HERE}.no_args", "os.getcwd", "os:getcwd"])
def test_import_paths_resolve(path: str) -> None:
    func = resolve_hook(path, owner=OWNER, kind="on_success")
    assert callable(func)
    spec = check_hook(path, owner=OWNER, kind="on_success")
    assert spec.func is func


def test_import_path_of_nested_attribute() -> None:
    func = resolve_hook("os.path:join", owner=OWNER, kind="on_success")
    import os.path

    assert func is os.path.join


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("no_such_module_xyz.hook", "cannot be imported"),
        (f"{HERE}:missing_function", "cannot be imported"),
        ("os.missing_function", "cannot be imported"),
        ("nodots", "not an import path"),
        ("bad path!", "not an import path"),
        ("os:sep", "not a function"),
    ],
)
def test_bad_import_paths(path: str, reason: str) -> None:
    with pytest.raises(HookSignatureError, match=reason) as info:
        check_hook(path, owner="step 's'", kind="on_failure")
    message = str(info.value)
    assert "step 's'" in message
    assert "on_failure" in message
    assert repr(path) in message
    assert isinstance(info.value, PipelineDefinitionError)


def test_not_a_hook() -> None:
    with pytest.raises(HookSignatureError, match=r"pipeline 'p': on_cleanup hook must be"):
        check_hook(42, owner=OWNER, kind="on_cleanup")  # type: ignore[arg-type]


def test_unknown_kind_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="unknown hook kind"):
        check_hook(no_args, owner=OWNER, kind="on_whatever")
    with pytest.raises(ValueError, match="init_kwargs"):
        check_hook(no_args, owner=OWNER, kind="on_success", init_kwargs={})


# -- signature rules ----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["on_success", "on_cleanup", "on_start"])
def test_no_argument_kinds(kind: str) -> None:
    for ok in (no_args, optional_arg, star_args, only_kwargs, keyword_only_optional):
        spec = check_hook(ok, owner=OWNER, kind=kind)
        assert not spec.takes_exception
    for bad in (one_arg, keyword_only, two_args, init):
        with pytest.raises(HookSignatureError) as info:
            check_hook(bad, owner=OWNER, kind=kind)
        message = str(info.value)
        assert message.startswith(f"pipeline 'p': {kind} hook '{HERE}:{bad.__name__}'")
        assert "is called with no arguments" in message
        assert "requires" in message


@pytest.mark.parametrize("kind", ["on_failure", "on_end"])
@pytest.mark.parametrize(
    ("hook", "takes", "keyword"),
    [
        (no_args, False, None),
        (one_arg, True, None),
        (optional_arg, True, None),
        (keyword_only, True, "error"),
        (keyword_only_optional, True, "error"),
        (star_args, True, None),
        (only_kwargs, False, None),
        (CallableHook(), True, None),
        (functools.partial(two_args, 1), True, None),
    ],
)
def test_exception_kinds_accept(
    kind: str, hook: Callable[..., Any], takes: bool, keyword: str | None
) -> None:
    spec = check_hook(hook, owner="step 's'", kind=kind)
    assert (spec.takes_exception, spec.exception_keyword) == (takes, keyword)


@pytest.mark.parametrize("kind", ["on_failure", "on_end"])
def test_exception_kinds_reject(kind: str) -> None:
    def needs_kw(exception: BaseException, *, extra: int) -> None:
        return None

    def two_keywords(*, a: object, b: object) -> None:
        return None

    for bad in (two_args, needs_kw, two_keywords):
        with pytest.raises(HookSignatureError) as info:
            check_hook(bad, owner="step 's'", kind=kind)
        message = str(info.value)
        assert message.startswith(f"step 's': {kind} hook ")
        assert bad.__name__ in message
        assert "cannot accept either" in message


def test_on_init_binds_exactly_the_kwargs() -> None:
    spec = check_hook(init, owner=OWNER, kind="on_init", init_kwargs={"a": 1})
    assert dict(spec.init_kwargs) == {"a": 1}
    check_hook(init, owner=OWNER, kind="on_init", init_kwargs={"a": 1, "b": "y"})
    check_hook(no_args, owner=OWNER, kind="on_init")
    check_hook(only_kwargs, owner=OWNER, kind="on_init", init_kwargs={"anything": 1})
    with pytest.raises(HookSignatureError, match=r"on_init_kwargs \(no arguments\)") as info:
        check_hook(init, owner=OWNER, kind="on_init")
    assert "requires a" in str(info.value)
    with pytest.raises(HookSignatureError, match=r"on_init_kwargs \(a, zzz\)"):
        check_hook(init, owner=OWNER, kind="on_init", init_kwargs={"a": 1, "zzz": 2})
    with pytest.raises(HookSignatureError, match="pipeline 'p': on_init hook"):
        check_hook(no_args, owner=OWNER, kind="on_init", init_kwargs={"a": 1})


def test_init_kwargs_are_copied() -> None:
    kwargs = {"a": 1}
    spec = check_hook(init, owner=OWNER, kind="on_init", init_kwargs=kwargs)
    kwargs["a"] = 2
    assert spec.init_kwargs["a"] == 1


def test_async_detection() -> None:
    assert check_hook(async_one_arg, owner=OWNER, kind="on_failure").is_async
    assert check_hook(AsyncCallableHook(), owner=OWNER, kind="on_success").is_async
    assert check_hook(functools.partial(async_one_arg), owner=OWNER, kind="on_failure").is_async
    assert not check_hook(CallableHook(), owner=OWNER, kind="on_failure").is_async
    assert not check_hook(no_args, owner=OWNER, kind="on_success").is_async


def test_unreadable_signature_is_trusted() -> None:
    # Some builtins (``vars``, ``max``) have no signature inspect can read.
    spec = check_hook(vars, owner=OWNER, kind="on_success")
    assert isinstance(spec, HookSpec)


# -- calling ------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_call_passes_the_exception_only_when_taken() -> None:
    exc = ValueError("boom")
    calls: list[tuple[Any, ...]] = []

    def record(*args: Any, **kwargs: Any) -> None:
        calls.append((args, kwargs))

    def record_none() -> None:
        calls.append(("none",))

    def record_kw(*, err: BaseException) -> None:
        calls.append(({"err": err},))

    for hook in (record, record_none, record_kw):
        spec = check_hook(hook, owner=OWNER, kind="on_failure")
        assert await call_hook(spec, exception=exc) is None
    assert calls == [((exc,), {}), ("none",), ({"err": exc},)]
    end = check_hook(optional_arg, owner="step 's'", kind="on_end")
    assert await call_hook(end, exception=None) is None
    assert await call_hook(end, exception=exc) is exc
    # A no-argument kind never passes the exception, even when it is given.
    success = check_hook(star_args, owner=OWNER, kind="on_success")
    assert await call_hook(success, exception=exc) == ((), {})


@pytest.mark.anyio
async def test_sync_and_async_hooks_return_their_values() -> None:
    exc = RuntimeError("x")
    assert await call_hook(
        check_hook(async_one_arg, owner=OWNER, kind="on_failure"), exception=exc
    ) == ("async:x")
    assert await call_hook(check_hook(AsyncCallableHook(), owner=OWNER, kind="on_success")) == (
        "async-callable"
    )
    assert await call_hook(
        check_hook(CallableHook(), owner=OWNER, kind="on_failure"), exception=exc
    ) == ("callable:x")
    assert await call_hook(check_hook(f"{HERE}:no_args", owner=OWNER, kind="on_cleanup")) == (
        "no_args"
    )


@pytest.mark.anyio
async def test_on_init_kwargs() -> None:
    spec = check_hook(init, owner=OWNER, kind="on_init", init_kwargs={"a": 1})
    assert await call_hook(spec) == {"a": 1, "b": "x"}
    assert await call_hook(spec, kwargs={"a": 2, "b": "z"}) == {"a": 2, "b": "z"}


@pytest.mark.anyio
async def test_hook_exceptions_propagate() -> None:
    def fails() -> None:
        raise KeyError("nope")

    async def fails_async() -> None:
        raise OSError("disk")

    with pytest.raises(KeyError, match="nope"):
        await call_hook(check_hook(fails, owner=OWNER, kind="on_cleanup"))
    with pytest.raises(OSError, match="disk"):
        await call_hook(check_hook(fails_async, owner=OWNER, kind="on_cleanup"))


@pytest.mark.anyio
async def test_sync_hooks_run_in_a_thread_with_the_callers_context() -> None:
    token = _VAR.set("from-the-run")
    try:
        limiter = anyio.CapacityLimiter(1)
        value, thread = await call_hook(
            check_hook(read_var, owner=OWNER, kind="on_start"), limiter=limiter
        )
    finally:
        _VAR.reset(token)
    assert value == "from-the-run"
    assert thread != threading.current_thread().name
    assert limiter.borrowed_tokens == 0


@pytest.mark.anyio
async def test_async_hooks_run_on_the_loop_thread() -> None:
    async def where() -> str:
        return threading.current_thread().name

    assert await call_hook(check_hook(where, owner=OWNER, kind="on_success")) == (
        threading.current_thread().name
    )


@pytest.mark.anyio
async def test_sync_hooks_share_the_given_limiter() -> None:
    limiter = anyio.CapacityLimiter(1)
    active = 0
    peak = 0
    lock = threading.Lock()
    release = threading.Event()

    def busy() -> None:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        release.wait(2)
        with lock:
            active -= 1

    spec = check_hook(busy, owner=OWNER, kind="on_success")
    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(functools.partial(call_hook, spec, limiter=limiter))
        await anyio.sleep(0.05)
        release.set()
    assert peak == 1
