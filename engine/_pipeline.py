"""``@pipeline``: compile a body into a DAG and run it on the event log."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, TypeVar, overload

import anyio

from projections import cache_entries, cache_entries_of_pipeline

from . import _compile
from ._caching import RunCache
from ._code import code_location
from ._engine import Engine
from ._log import get_logger
from ._run import RunLoop
from ._run_hooks import PIPELINE_HOOKS, HookSet, check_hooks
from ._run_plan import RunPlan
from ._views import PipelineRunView, load_run_view_async
from .enums import ExecutionMode
from .errors import (
    ConfigurationError,
    PipelineDefinitionError,
    PipelineRunFailedError,
)

if TYPE_CHECKING:
    from ._lease import Lease
    from ._resume import RunPast

log = get_logger("evenflow.pipeline")

F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_MAX_CONCURRENCY = 64


@dataclass(frozen=True, slots=True)
class PipelineOptions:
    """Decorator options plus the per-run options ``with_options`` adds."""

    name: str | None = None
    enable_cache: bool | None = None
    cache_policy: Any = None
    enable_artifact_metadata: bool | None = None
    enable_step_logs: bool | None = None
    settings: Mapping[str, Any] | None = None
    tags: list[str] | None = None
    model: Any = None
    on_init: Any = None
    on_init_kwargs: Mapping[str, Any] | None = None
    on_success: Any = None
    on_failure: Any = None
    on_cleanup: Any = None
    environment: Mapping[str, str] | None = None
    secrets: list[str] | None = None
    execution_mode: ExecutionMode | str | None = None
    dynamic: bool = False
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    max_dynamic_steps: int | None = None
    retry: Any = None
    extra: Mapping[str, Any] | None = None
    # run options (with_options / PipelineRunConfiguration)
    run_name: str | None = None
    schedule: Any = None
    config_path: str | None = None
    steps: Mapping[str, Any] | None = None
    parameters: Mapping[str, Any] = field(default_factory=dict)
    raise_on_failure: bool = True


_DECORATOR_OPTIONS = frozenset(
    f.name
    for f in fields(PipelineOptions)
    if f.name not in ("run_name", "schedule", "config_path", "steps", "parameters")
)
_ALL_OPTIONS = frozenset(f.name for f in fields(PipelineOptions))


def _check(owner: str, options: Mapping[str, Any], allowed: frozenset[str]) -> None:
    unknown = set(options) - allowed
    if unknown:
        raise PipelineDefinitionError(
            f"{owner}: unknown option(s) {sorted(unknown)}; known: {sorted(allowed)}"
        )
    mode = options.get("execution_mode")
    if mode is not None:
        try:
            ExecutionMode(mode)
        except ValueError:
            raise PipelineDefinitionError(
                f"{owner}: execution_mode must be one of "
                f"{[m.value for m in ExecutionMode]}, got {mode!r}"
            ) from None
    conc = options.get("max_concurrency")
    if conc is not None and (not isinstance(conc, int) or conc < 1):
        raise PipelineDefinitionError(f"{owner}: max_concurrency must be an int >= 1")


def _format_run_name(template: str, now: dt.datetime) -> str:
    return template.replace("{date}", now.strftime("%Y_%m_%d")).replace(
        "{time}", now.strftime("%H_%M_%S_%f")
    )


class Pipeline:
    """A pipeline. Create one with :func:`pipeline`.

    Options come from four places; for each option the first that sets it wins: the call's
    arguments (parameters only), ``with_options(...)``, the YAML file of ``config_path``, the
    ``@pipeline(...)`` decorator (and ``configure``).
    """

    def __init__(
        self,
        func: Callable[..., Any],
        options: PipelineOptions,
        overrides: Mapping[str, Any] | None = None,
    ) -> None:
        self.entrypoint = func
        self.options = options
        self._overrides: dict[str, Any] = dict(overrides or {})
        self.hooks = _hooks_of(self.name, replace(options, **self._overrides))
        self._signature = inspect.signature(func)
        self.__doc__ = func.__doc__
        self.__name__ = getattr(func, "__name__", "pipeline")
        self.__wrapped__ = func

    @property
    def name(self) -> str:
        """The pipeline's name: ``name=`` if given, else the function's name."""
        return self.options.name or self.entrypoint.__name__

    # -- configuration ---------------------------------------------------------------------

    def with_options(self, **options: Any) -> Pipeline:
        """A copy with run options (``run_name``, ``enable_cache``, ``schedule``, ``tags``,
        ``steps``, ``config_path``, ``raise_on_failure``, ...). Accepts
        ``**PipelineRunConfiguration(...)``."""
        _check(f"pipeline {self.name!r}", options, _ALL_OPTIONS)
        set_options = {k: v for k, v in options.items() if v is not None}
        return Pipeline(self.entrypoint, self.options, {**self._overrides, **set_options})

    def configure(self, **options: Any) -> Pipeline:
        """Change the decorator-level options in place; returns the pipeline."""
        _check(f"pipeline {self.name!r}", options, _ALL_OPTIONS)
        self.options = replace(self.options, **options)
        self.hooks = _hooks_of(self.name, replace(self.options, **self._overrides))
        return self

    def _effective(self) -> tuple[PipelineOptions, dict[str, Any], dict[str, Any]]:
        """Options with ``with_options`` over the YAML file over the decorator; plus the YAML
        file's parameters and the merged per-step updates."""
        overrides = self._overrides
        config_path = overrides.get("config_path") or self.options.config_path
        from_file: dict[str, Any] = {}
        if config_path:
            from .config import PipelineRunConfiguration

            loaded = PipelineRunConfiguration.from_yaml(config_path)
            from_file = {k: loaded[k] for k in loaded}
        file_params = dict(from_file.pop("parameters", None) or {})
        from .config import StepConfigurationUpdate

        def update(value: Any) -> Any:
            if isinstance(value, StepConfigurationUpdate):
                return value
            return StepConfigurationUpdate(**dict(value))

        steps = {sid: update(u) for sid, u in (from_file.pop("steps", None) or {}).items()}
        for sid, raw in (overrides.get("steps") or {}).items():
            new = update(raw)
            steps[sid] = steps[sid].merged(new) if sid in steps else new  # key by key
        merged = {**from_file, **{k: v for k, v in overrides.items() if k != "steps"}}
        for key in ("environment", "settings", "extra"):  # mappings merge key by key
            layers = [getattr(self.options, key), from_file.get(key), overrides.get(key)]
            if layers[1] is not None or layers[2] is not None:
                merged[key] = {k: v for layer in layers if layer for k, v in layer.items()}
        if "execution_mode" in merged and merged["execution_mode"] is not None:
            merged["execution_mode"] = ExecutionMode(str(merged["execution_mode"]))
        unknown = set(merged) - _ALL_OPTIONS
        if unknown:
            raise ConfigurationError(
                f"pipeline {self.name!r}: option(s) {sorted(unknown)} from {config_path} "
                "cannot be used here"
            )
        return replace(self.options, **merged), file_params, steps

    # -- compiling -------------------------------------------------------------------------

    def _bind(
        self,
        args: tuple[Any, ...],
        params: Mapping[str, Any],
        options: PipelineOptions,
        file_params: Mapping[str, Any],
    ) -> dict[str, Any]:
        """Parameter values: the call's, else ``with_options``', else the YAML file's, else
        the function's defaults. A call and a file that disagree are an error."""
        owner = f"pipeline {self.name!r}"
        try:
            call = self._signature.bind_partial(*args, **params).arguments
            for key, value in file_params.items():
                if key in call and call[key] != value:
                    raise ConfigurationError(
                        f"{owner}: parameter {key!r} is {call[key]!r} in the call but "
                        f"{value!r} in the configuration file"
                    )
            bound = self._signature.bind(**{**file_params, **options.parameters, **call})
        except TypeError as exc:
            raise PipelineDefinitionError(f"{owner}: {exc}") from None
        bound.apply_defaults()
        values = dict(bound.arguments)
        for key, value in values.items():
            _compile.check_canonical(owner, key, value)
        return values

    def compile(self, *args: Any, **params: Any) -> RunPlan:
        """Compile the body with these parameters into a validated plan (no events yet)."""
        opts, file_params, step_updates = self._effective()
        values = self._bind(args, params, opts, file_params)
        compilation = _compile.Compilation(self.name)
        token = _compile.CURRENT.set(compilation)
        try:
            returned = self.entrypoint(**values)
        finally:
            _compile.CURRENT.reset(token)
        if inspect.isawaitable(returned):
            close = getattr(returned, "close", None)
            if close is not None:
                close()
            raise PipelineDefinitionError(
                f"pipeline {self.name!r}: an async body needs @pipeline(dynamic=True)"
            )
        compilation.validate()
        _apply_step_updates(self.name, compilation, step_updates)
        outputs = _outputs_of(self.name, returned)
        now = dt.datetime.now()
        template = opts.run_name or "{pipeline}-{date}-{time}"
        run_name = _format_run_name(template.replace("{pipeline}", self.name), now)
        mode = ExecutionMode(opts.execution_mode or ExecutionMode.CONTINUE_ON_FAILURE)
        code, root = code_location(self.entrypoint)
        return RunPlan(
            run_id=str(uuid.uuid4()),
            run_name=run_name,
            pipeline=self.name,
            invocations=compilation.invocations,
            parameters=values,
            outputs=outputs,
            execution_mode=mode,
            max_concurrency=opts.max_concurrency,
            code=code,
            code_root=root,
            tags=list(opts.tags or []),
            config=self._run_config(opts),
            hooks=_hooks_of(self.name, opts),
            on_init_kwargs=dict(opts.on_init_kwargs or {}),
            retry=opts.retry,
            environment=dict(opts.environment or {}),
            secrets=list(opts.secrets or []),
            enable_cache=self._run_level_cache(opts),
            cache_policy=opts.cache_policy,
            model=opts.model,
            enable_step_logs=opts.enable_step_logs,
        )

    def _run_level_cache(self, opts: PipelineOptions) -> bool | None:
        """enable_cache set for this run (with_options, PipelineRunConfiguration, YAML), as
        opposed to the decorator's value."""
        if "enable_cache" in self._overrides:
            return bool(self._overrides["enable_cache"])
        return opts.enable_cache if opts.enable_cache != self.options.enable_cache else None

    def _is_dynamic(self) -> bool:
        return bool(self._overrides.get("dynamic", self.options.dynamic))

    def _dynamic_plan(self, args: tuple[Any, ...], params: Mapping[str, Any]) -> RunPlan:
        """A dynamic run's plan: no steps yet (the body declares them as it runs)."""
        opts, file_params, step_updates = self._effective()
        if step_updates:
            raise ConfigurationError(
                f"pipeline {self.name!r}: steps configuration needs a static pipeline (a "
                "dynamic body declares its steps at run time)"
            )
        values = self._bind(args, params, opts, file_params)
        template = opts.run_name or "{pipeline}-{date}-{time}"
        run_name = _format_run_name(template.replace("{pipeline}", self.name), dt.datetime.now())
        mode = ExecutionMode(opts.execution_mode or ExecutionMode.STOP_ON_FAILURE)
        code, root = code_location(self.entrypoint)
        return RunPlan(
            run_id=str(uuid.uuid4()),
            run_name=run_name,
            pipeline=self.name,
            invocations={},
            parameters=values,
            outputs=[],
            execution_mode=mode,
            max_concurrency=opts.max_concurrency,
            code=code,
            code_root=root,
            tags=list(opts.tags or []),
            config=self._run_config(opts),
            dynamic=True,
            hooks=_hooks_of(self.name, opts),
            on_init_kwargs=dict(opts.on_init_kwargs or {}),
            retry=opts.retry,
            environment=dict(opts.environment or {}),
            secrets=list(opts.secrets or []),
            enable_cache=self._run_level_cache(opts),
            cache_policy=opts.cache_policy,
            model=opts.model,
            max_dynamic_steps=opts.max_dynamic_steps,
            enable_step_logs=opts.enable_step_logs,
        )

    def _run_config(self, opts: PipelineOptions) -> dict[str, Any]:
        from ._settings import validate_settings

        config: dict[str, Any] = {"max_concurrency": opts.max_concurrency}
        if opts.enable_cache is not None:
            config["enable_cache"] = opts.enable_cache
        if opts.settings:
            config["settings"] = validate_settings(opts.settings, owner=f"pipeline {self.name!r}")
            _note_docker(config["settings"])
        if opts.model is not None:
            to_dict = getattr(opts.model, "to_dict", None)
            config["model"] = to_dict() if to_dict is not None else str(opts.model)
        if opts.retry is not None:
            config["retry"] = opts.retry.to_dict()
        if opts.cache_policy is not None:
            config["cache_policy"] = opts.cache_policy.to_dict()
        if opts.environment:
            config["environment"] = dict(opts.environment)
        if opts.secrets:
            config["secrets"] = list(opts.secrets)
        if opts.extra:
            config["extra"] = dict(opts.extra)
        return config

    # -- running ---------------------------------------------------------------------------

    async def run_async(
        self, *args: Any, engine: Engine | None = None, **params: Any
    ) -> PipelineRunView:
        """Run inside an event loop and return the finished run's view.

        Raises:
            PipelineRunFailedError: the run failed (unless ``raise_on_failure=False``); its
                ``.run`` is the view and its ``__cause__`` the first step's exception.
        """
        plan = (
            self._dynamic_plan(args, params)
            if self._is_dynamic()
            else self.compile(*args, **params)
        )
        if engine is None:
            async with Engine.open() as opened:
                return await self._execute(opened, plan)
        return await self._execute(engine, plan)

    async def _resume(
        self, engine: Engine, past: RunPast, params: dict[str, Any], lease: Lease
    ) -> PipelineRunView:
        """Drive a run that did not finish to its end (see ``engine._resume``)."""
        from ._resume import check_same_steps

        created = past.created
        plan = self._dynamic_plan((), params) if created.dynamic else self.compile(**params)
        if not created.dynamic:
            check_same_steps(created, plan)
        plan.run_id, plan.run_name = past.run_id, created.run_name
        plan.execution_mode = ExecutionMode(created.execution_mode)
        # The caller gets the finished run's view, failed or not (the CLI exits 1 on failure).
        quiet = self.with_options(raise_on_failure=False)
        return await quiet._execute(engine, plan, past, lease)

    async def _execute(
        self,
        engine: Engine,
        plan: RunPlan,
        past: RunPast | None = None,
        lease: Lease | None = None,
    ) -> PipelineRunView:
        if past is None:
            plan.run_name = await _unique_run_name(engine, plan.run_name)
        if plan.dynamic:
            entries = await engine.store.run_read(cache_entries_of_pipeline, plan.pipeline)
        else:
            names = {inv.step.name for inv in plan.invocations.values()}
            entries = await engine.store.run_read(cache_entries, names) if names else {}
        cache = RunCache(
            str(engine.home.db),
            entries,
            engine.artifacts,
            engine.clock,
            run_enable=plan.enable_cache,
            policy=plan.cache_policy,
            pipeline_enable=self.options.enable_cache,
        )
        loop = RunLoop(engine, plan, cache)
        loop.past, loop.lease = past, lease
        if plan.dynamic:
            loop.body = (self.entrypoint, plan.parameters)
        outcome = await loop.execute()
        view = await load_run_view_async(engine, plan.run_id)
        raise_on_failure = self._overrides.get("raise_on_failure", self.options.raise_on_failure)
        if outcome.status == "cancelled" and raise_on_failure:
            raise PipelineRunFailedError(
                f"pipeline {self.name!r} run {plan.run_name!r} was {outcome.message}", view
            )
        if outcome.status == "failed" and raise_on_failure:
            raise PipelineRunFailedError(
                f"pipeline {self.name!r} run {plan.run_name!r} failed: "
                + (f"step {outcome.failed_step!r}" if outcome.failed_step else "the run")
                + f" raised {type(outcome.error).__name__}: {outcome.message}",
                view,
            ) from outcome.error
        return view

    def __call__(self, *args: Any, **params: Any) -> PipelineRunView:
        """Run synchronously (from a script) and return the finished run's view.

        With a schedule set (``with_options(schedule=...)`` or the configuration file), it
        registers the schedule instead of running, and returns its ``ScheduleView``.
        """
        schedule = self._overrides.get("schedule")
        if schedule is None and (self._overrides.get("config_path") or self.options.config_path):
            schedule = self._effective()[0].schedule
        if schedule is not None:
            return self.run(*args, schedule=schedule, **params)  # type: ignore[no-any-return]
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise PipelineDefinitionError(
                f"pipeline {self.name!r} was called inside a running event loop; use "
                f"`await {self.name}.run_async(...)` there"
            )
        return anyio.run(lambda: self.run_async(*args, **params), backend="asyncio")

    def run(self, *args: Any, schedule: Any = None, **params: Any) -> Any:
        """Same as calling the pipeline; with ``schedule=`` (here or in ``with_options``) it
        registers a schedule with these parameters instead, in ``$EVENFLOW_HOME``, and returns
        its ``ScheduleView``: ``evenflow serve`` (or ``await engine.serve()``) fires its runs.

        Raises:
            ScheduleError: the schedule's name is taken, or the pipeline cannot be imported
                again by a service (defined inside a function, say).
        """
        schedule = schedule or self._overrides.get("schedule") or self.options.schedule
        if schedule is None:
            return self(*args, **params)
        from ._schedules import register_sync

        return register_sync(self, schedule, args, params)

    def __repr__(self) -> str:
        return f"<pipeline {self.name}>"


def _hooks_of(name: str, options: PipelineOptions) -> HookSet:
    """The pipeline's hooks, checked now: a hook that cannot take its arguments fails here."""
    given = {kind: getattr(options, kind) for kind in PIPELINE_HOOKS}
    return check_hooks(f"pipeline {name!r}", given, PIPELINE_HOOKS, options.on_init_kwargs)


_DOCKER_NOTED: list[bool] = []


def _note_docker(settings: Mapping[str, Any]) -> None:
    """Say once per process that local execution does not build or use images."""
    if "docker" in settings and not _DOCKER_NOTED:
        _DOCKER_NOTED.append(True)
        log.warning(
            "docker_settings_ignored",
            detail="evenflow runs steps locally; DockerSettings are validated and recorded "
            "with the run, not used",
        )


def _apply_step_updates(
    pipeline: str, compilation: _compile.Compilation, updates: Mapping[str, Any]
) -> None:
    """``steps={invocation id: {...}}`` from with_options or the YAML file."""
    from ._settings import validate_settings

    for inv_id, update in updates.items():
        inv = compilation.invocations.get(inv_id)
        if inv is None:
            known = ", ".join(compilation.invocations) or "none"
            raise ConfigurationError(
                f"pipeline {pipeline!r}: steps configuration names {inv_id!r}, which is not a "
                f"step of this pipeline (steps: {known})"
            )
        fields = {k: update[k] for k in update if update[k] is not None}
        params = dict(fields.pop("parameters", None) or {})
        for key, value in params.items():
            if key not in inv.step.signature.inputs:
                raise ConfigurationError(
                    f"pipeline {pipeline!r}, step {inv_id!r}: no parameter named {key!r}"
                )
            if key in inv.inputs:
                raise ConfigurationError(
                    f"pipeline {pipeline!r}, step {inv_id!r}: {key!r} is fed by another step's "
                    "output and cannot be set as a parameter"
                )
            _compile.check_canonical(f"pipeline {pipeline!r}, step {inv_id!r}", key, value)
            inv.parameters[key] = value
        if "settings" in fields:
            validate_settings(fields["settings"], owner=f"step {inv_id!r}")
        if fields:
            inv.step = inv.step.with_options(**fields)


async def _unique_run_name(engine: Engine, name: str) -> str:
    candidate, n = name, 1
    while await engine.store.run_read(_name_taken, candidate):
        n += 1
        candidate = f"{name}_{n}"
    return candidate


def _name_taken(conn: Any, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM runs WHERE name = ?", (name,)).fetchone()
    return row is not None


def _outputs_of(pipeline: str, returned: Any) -> list[Any]:
    items = returned if isinstance(returned, tuple | list) else [returned]
    refs = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, _compile.StepOutput):
            if item.name:
                refs.append(item.ref())
            continue
        raise PipelineDefinitionError(
            f"pipeline {pipeline!r} returned a {type(item).__name__}; a pipeline body may only "
            "return step outputs"
        )
    return refs


@overload
def pipeline(func: F, /) -> Pipeline: ...


@overload
def pipeline(func: None = None, /, **options: Any) -> Callable[[F], Pipeline]: ...


def pipeline(func: Callable[..., Any] | None = None, /, **options: Any) -> Any:
    """Turn a function into a pipeline (``@pipeline`` or ``@pipeline(name=..., ...)``).

    Options: ``name, enable_cache, cache_policy, enable_artifact_metadata, enable_step_logs,
    settings, tags, model, on_init, on_init_kwargs, on_success, on_failure, on_cleanup,
    environment, secrets, execution_mode, dynamic, max_concurrency, retry``.
    """

    def decorate(f: Callable[..., Any]) -> Pipeline:
        _check(f"pipeline {getattr(f, '__name__', f)!r}", options, _DECORATOR_OPTIONS)
        return Pipeline(f, PipelineOptions(**options))

    if func is not None:
        return decorate(func)
    _check("@pipeline(...)", options, _DECORATOR_OPTIONS)
    return decorate
