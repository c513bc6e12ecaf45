"""``@step``: a function that becomes a node of a pipeline's DAG."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar, overload

from . import _compile
from ._cache_typed import qualified_name
from ._run_hooks import STEP_HOOKS, HookSet, check_hooks
from ._signature import StepSignature, read_signature
from .errors import PipelineDefinitionError

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, slots=True)
class StepOptions:
    """Everything ``@step(...)``, ``with_options`` and ``configure`` accept."""

    name: str | None = None
    enable_cache: bool | None = None
    cache_policy: Any = None
    retry: Any = None
    on_start: Any = None
    on_end: Any = None
    on_success: Any = None
    on_failure: Any = None
    environment: Mapping[str, str] | None = None
    secrets: list[str] | None = None
    settings: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] | None = None
    model: Any = None
    output_materializers: Any = None
    enable_step_logs: bool | None = None
    enable_artifact_metadata: bool | None = None
    timeout: float | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)


_OPTION_NAMES = frozenset(f.name for f in fields(StepOptions))


def _check_options(owner: str, options: Mapping[str, Any]) -> None:
    unknown = set(options) - _OPTION_NAMES
    if unknown:
        raise PipelineDefinitionError(
            f"{owner}: unknown step option(s) {sorted(unknown)}; "
            f"known options: {sorted(_OPTION_NAMES)}"
        )
    if options.get("settings"):
        from ._settings import validate_settings

        validate_settings(options["settings"], owner=owner)
    timeout = options.get("timeout")
    if timeout is not None and (not isinstance(timeout, int | float) or timeout <= 0):
        raise PipelineDefinitionError(f"{owner}: timeout must be a positive number of seconds")


class BaseStep:
    """A pipeline step. Create one with :func:`step`.

    Called inside a pipeline body, it records an invocation and returns its output
    placeholder(s); called anywhere else, it simply runs the function.
    """

    def __init__(self, func: Callable[..., Any], options: StepOptions) -> None:
        self.entrypoint = func
        self.options = options
        self.signature: StepSignature = read_signature(func, self.name)
        self.hooks: HookSet = _hooks_of(self.name, options)
        functools.update_wrapper(self, func)

    # -- identity --------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The step's name: ``name=`` if given, else the function's name."""
        return self.options.name or self.entrypoint.__name__

    @property
    def source_path(self) -> str:
        """``module:qualname`` of the step function."""
        func = self.entrypoint
        return f"{func.__module__}:{func.__qualname__}"

    @functools.cached_property
    def code_hash(self) -> str:
        """Hash of the function's source, decorator stripped."""
        return _compile.code_hash(self.entrypoint)

    def spec_config(self) -> dict[str, Any]:
        """The options recorded with each invocation in ``run.created`` (JSON-friendly)."""
        opts = self.options
        out: dict[str, Any] = {}
        if opts.settings:
            from ._settings import validate_settings

            out["settings"] = validate_settings(opts.settings, owner=f"step {self.name!r}")
        if opts.extra:
            out["extra"] = dict(opts.extra)
        if opts.environment:
            out["environment"] = dict(opts.environment)
        if opts.secrets:
            out["secrets"] = list(opts.secrets)
        if opts.timeout is not None:
            out["timeout"] = opts.timeout
        if opts.output_materializers is not None:
            mats = opts.output_materializers
            if isinstance(mats, Mapping):
                out["materializers"] = {k: _qualname(v) for k, v in mats.items()}
            else:
                out["materializers"] = {"*": _qualname(mats)}
        return out

    # -- configuration ---------------------------------------------------------------------

    def with_options(self, **options: Any) -> BaseStep:
        """A configured copy; the original step is unchanged."""
        _check_options(f"step {self.name!r}", options)
        clone = copy.copy(self)
        clone.options = replace(self.options, **options)
        clone.__dict__.pop("code_hash", None)
        if "name" in options:
            clone.signature = read_signature(self.entrypoint, clone.name)
        clone.hooks = _hooks_of(clone.name, clone.options)
        return clone

    def configure(self, **options: Any) -> BaseStep:
        """Change this step's options in place; returns the step."""
        _check_options(f"step {self.name!r}", options)
        self.options = replace(self.options, **options)
        self.hooks = _hooks_of(self.name, self.options)
        return self

    # -- calling ---------------------------------------------------------------------------

    def __call__(self, *args: Any, id: str | None = None, after: Any = None, **kwargs: Any) -> Any:
        compilation = _compile.CURRENT.get()
        if compilation is not None:
            if self.options.parameters:
                kwargs = {**self.options.parameters, **kwargs}
            inv = compilation.add(self, args, kwargs, id, after)
            outputs = self.signature.outputs
            handles = [_compile.StepOutput(inv.id, o.name) for o in outputs]
            if not handles:
                return _compile.StepOutput(inv.id, "")
            return handles[0] if len(handles) == 1 else tuple(handles)
        from ._dynamic import CURRENT as dynamic

        session = dynamic.get()
        if session is not None:
            return session.call(self, args, kwargs, id, after)
        for value in (*args, *kwargs.values()):
            if _compile._contains_output(value):
                raise PipelineDefinitionError(
                    f"step {self.name!r} was called outside any pipeline with a step output "
                    "as input; call it inside a @pipeline body"
                )
        return self.entrypoint(*args, **kwargs)

    def submit(self, *args: Any, id: str | None = None, after: Any = None, **kwargs: Any) -> Any:
        """In a dynamic pipeline body: declare the step and return its future (a handle with
        ``load()``/``result()``, awaitable in async bodies) without waiting."""
        from ._dynamic import CURRENT as dynamic

        session = dynamic.get()
        if session is None:
            raise PipelineDefinitionError(
                f"step {self.name!r}.submit() works only inside a @pipeline(dynamic=True) body"
            )
        return session.call(self, args, kwargs, id, after)

    def map(self, *args: Any, **kwargs: Any) -> list[Any]:
        """In a dynamic pipeline body: one invocation per item of the iterable arguments
        (zipped; wrap broadcast values in ``unmapped(...)``). Returns the list of handles."""
        from ._dynamic import CURRENT as dynamic

        session = dynamic.get()
        if session is None:
            raise PipelineDefinitionError(
                f"step {self.name!r}.map() works only inside a @pipeline(dynamic=True) body"
            )
        return session.map(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<step {self.name}>"


def _hooks_of(name: str, options: StepOptions) -> HookSet:
    """The step's hooks, checked now: a hook that cannot take its arguments fails here."""
    given = {kind: getattr(options, kind) for kind in STEP_HOOKS}
    return check_hooks(f"step {name!r}", given, STEP_HOOKS)


def _qualname(obj: Any) -> str:
    """A materializer's ``module:qualname``, a script's module named by its file (as the code
    fingerprint names it), so the cache key is the same however the script was started."""
    return obj if isinstance(obj, str) else qualified_name(obj)


@overload
def step(func: F, /) -> BaseStep: ...


@overload
def step(func: None = None, /, **options: Any) -> Callable[[F], BaseStep]: ...


def step(func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Turn a function into a pipeline step (``@step`` or ``@step(name=..., ...)``).

    Options: ``name, enable_cache, cache_policy, retry, on_start, on_end, on_success, on_failure,
    environment, secrets, settings, extra, model, output_materializers, enable_step_logs,
    enable_artifact_metadata, timeout``. Sync functions run in worker threads, ``async def``
    functions on the event loop.
    """

    def decorate(f: Callable[..., Any]) -> BaseStep:
        if not callable(f):
            raise PipelineDefinitionError(f"@step decorates a function, not {type(f).__name__}")
        _check_options(f"step {getattr(f, '__name__', f)!r}", options)
        return BaseStep(f, StepOptions(**options))

    if func is not None:
        return decorate(func)
    _check_options("@step(...)", options)
    return decorate
