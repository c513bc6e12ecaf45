"""Configuration values, as ``zenml.config`` names them (``from engine.config import ...``).

``Schedule``, ``CachePolicy``, ``StepRetryConfig``, ``Model``, ``DockerSettings``,
``ResourceSettings`` are read-only value objects that validate in ``__init__``; ``to_dict()``
gives the JSON-friendly form recorded in the event log and ``from_dict()`` reverses it.
``PipelineRunConfiguration`` (and ``StepConfigurationUpdate``) are read-only mappings of the
options that were set, so ``p.with_options(**PipelineRunConfiguration(run_name="x"))`` passes
exactly ``run_name="x"``. Every invalid value raises :class:`~engine.errors.ConfigurationError`
naming the class (or file), the field and the value.

Importing this module imports neither croniter nor PyYAML; they are loaded when a cron expression
is validated or a file is read.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import os
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, Self

from ._settings import (
    EXECUTOR_KINDS,
    ConfigObject,
    DockerSettings,
    ExecutorSettings,
    ResourceSettings,
    Settings,
    as_bool,
    as_choice,
    as_dict,
    as_env,
    as_int,
    as_number,
    as_opt_str,
    as_seconds,
    as_str,
    as_str_tuple,
    invalid,
    parse_settings,
    to_jsonable,
    unknown_key,
    validate_settings,
)
from .errors import ConfigurationError

# -- Schedule --------------------------------------------------------------------------------


def _zone(name: str | None) -> dt.tzinfo | None:
    if name is None:
        return None
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    if isinstance(name, str) and name:
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            pass
    raise invalid("Schedule", "timezone", "an IANA time zone name such as 'Europe/Paris'", name)


def _local_zone() -> dt.tzinfo:
    """The machine's time zone with its DST rules: ``$TZ`` or ``/etc/localtime`` as an IANA
    zone when they name one, else the current UTC offset (which ignores DST changes)."""
    from zoneinfo import ZoneInfo

    link = os.path.realpath("/etc/localtime")
    for key in (os.environ.get("TZ", "").lstrip(":"), link.partition("/zoneinfo/")[2]):
        if key:
            try:
                return ZoneInfo(key)
            except (LookupError, ValueError, OSError):
                continue
    zone = dt.datetime.now().astimezone().tzinfo
    assert zone is not None  # astimezone() always returns an aware datetime
    return zone


def _utc(field: str, value: object, zone: dt.tzinfo | None) -> dt.datetime | None:
    """``value`` as an aware UTC datetime; a naive one is wall-clock time in ``zone``, or in the
    machine's local time zone when ``zone`` is ``None``."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise invalid("Schedule", field, "a datetime or an ISO-8601 string", value) from None
    if not isinstance(value, dt.datetime):
        raise invalid("Schedule", field, "a datetime", value)
    if value.utcoffset() is None:
        value = value.replace(tzinfo=zone) if zone is not None else value.astimezone()
    return value.astimezone(dt.UTC)


def _check_cron(expression: object) -> str:
    if not isinstance(expression, str) or not expression.strip():
        raise invalid("Schedule", "cron_expression", "a cron expression string", expression)
    expression = " ".join(expression.split())
    from croniter import CroniterBadDateError, CroniterError, croniter

    try:
        # One evaluation also catches expressions that parse but never fire ("0 0 31 2 *").
        croniter(expression, dt.datetime(2000, 1, 1, tzinfo=dt.UTC)).get_next(dt.datetime)
    except CroniterBadDateError:
        reason = "it never matches any date"
    except (CroniterError, ValueError, KeyError, IndexError) as exc:
        reason = str(exc) or type(exc).__name__
    else:
        return expression
    raise ConfigurationError(
        f"Schedule: cron_expression {expression!r} is not a valid cron expression ({reason})"
    )


class Schedule(ConfigObject):
    """When to run a pipeline: ``p.run(schedule=Schedule(cron_expression="0 2 * * *"))``.

    Exactly one of ``cron_expression``, ``interval_second`` or ``run_once_start_time`` is set.
    ``start_time``/``end_time`` bound a cron or interval schedule. Datetimes are stored as aware
    UTC; a naive one means wall-clock time in ``timezone``, or local time when ``timezone`` is
    ``None``. ``timezone`` (an IANA name; ``None`` means the machine's local zone) is also the zone
    the cron expression is evaluated in. ``interval_second`` is stored as float seconds.

    Attributes:
        cron_expression: A croniter expression (5 fields, optional seconds and year fields).
        start_time: No run before this instant.
        end_time: No run after this instant (must be after ``start_time``).
        interval_second: Seconds between runs (a number or a ``timedelta``; > 0).
        run_once_start_time: Run once, at this instant.
        catchup: Whether missed ticks are run when the scheduler comes back (all of them) or
            only the latest one.
        name: The schedule's name (default: chosen when it is registered).
        timezone: IANA time zone for cron evaluation and naive datetimes.
    """

    cron_expression: str | None
    start_time: dt.datetime | None
    end_time: dt.datetime | None
    interval_second: float | None
    run_once_start_time: dt.datetime | None
    catchup: bool
    name: str | None
    timezone: str | None

    def __init__(
        self,
        *,
        cron_expression: str | None = None,
        start_time: dt.datetime | str | None = None,
        end_time: dt.datetime | str | None = None,
        interval_second: float | dt.timedelta | None = None,
        run_once_start_time: dt.datetime | str | None = None,
        catchup: bool = False,
        name: str | None = None,
        timezone: str | None = None,
    ) -> None:
        zone = _zone(timezone)
        kinds = {
            "cron_expression": cron_expression,
            "interval_second": interval_second,
            "run_once_start_time": run_once_start_time,
        }
        chosen = {key: value for key, value in kinds.items() if value is not None}
        if len(chosen) != 1:
            got = ", ".join(f"{k}={v!r}" for k, v in chosen.items()) or "none of them"
            raise ConfigurationError(
                "Schedule: set exactly one of cron_expression, interval_second or "
                f"run_once_start_time; got {got}"
            )
        self._set(
            cron_expression=None if cron_expression is None else _check_cron(cron_expression),
            start_time=_utc("start_time", start_time, zone),
            end_time=_utc("end_time", end_time, zone),
            interval_second=None
            if interval_second is None
            else as_seconds("Schedule", "interval_second", interval_second, positive=True),
            run_once_start_time=_utc("run_once_start_time", run_once_start_time, zone),
            catchup=as_bool("Schedule", "catchup", catchup),
            name=as_opt_str("Schedule", "name", name),
            timezone=timezone,
        )
        if self.run_once_start_time is not None and (self.start_time or self.end_time):
            raise ConfigurationError(
                "Schedule: start_time/end_time do not apply to a run_once_start_time schedule, "
                f"got start_time={self.start_time!r}, end_time={self.end_time!r}"
            )
        if self.start_time and self.end_time and self.end_time <= self.start_time:
            raise ConfigurationError(
                f"Schedule: end_time ({self.end_time.isoformat()}) must be after "
                f"start_time ({self.start_time.isoformat()})"
            )

    @property
    def kind(self) -> str:
        """``"cron"``, ``"interval"`` or ``"once"``."""
        if self.cron_expression is not None:
            return "cron"
        return "interval" if self.interval_second is not None else "once"

    @property
    def tzinfo(self) -> dt.tzinfo:
        """The zone cron expressions are evaluated in: ``timezone``, else the machine's zone."""
        return _zone(self.timezone) or _local_zone()

    @property
    def utc_start_time(self) -> str | None:
        """``start_time`` as an ISO-8601 UTC string (ZenML's property)."""
        return None if self.start_time is None else self.start_time.isoformat()

    @property
    def utc_end_time(self) -> str | None:
        """``end_time`` as an ISO-8601 UTC string (ZenML's property)."""
        return None if self.end_time is None else self.end_time.isoformat()


# -- CachePolicy -----------------------------------------------------------------------------

_SECONDS_PER_DAY = 86_400.0
_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*(:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)?$")


def _cache_func_path(value: object) -> tuple[str, Callable[[], Any] | None]:
    where, field = "CachePolicy", "cache_func"
    if isinstance(value, str):
        if not _IMPORT_PATH.match(value) or ("." not in value and ":" not in value):
            raise invalid(where, field, "an import path like 'pkg.module:function'", value)
        return value, None
    if not callable(value):
        raise invalid(where, field, "a function or its import path", value)
    module = getattr(value, "__module__", None)
    qualname = getattr(value, "__qualname__", None)
    if not module or not isinstance(qualname, str) or "<" in qualname:
        # A lambda or a nested function cannot be found again from the log or another process.
        raise invalid(where, field, "a module-level function", value)
    import inspect

    try:
        inspect.signature(value).bind()
    except TypeError:
        raise invalid(where, field, "a function that takes no arguments", value) from None
    except ValueError:  # no signature to inspect (some builtins); trust the caller
        pass
    return f"{module}:{qualname}", value


def _import(path: str) -> Any:
    from ._imports import import_object

    obj, error = import_object(path)
    if error is not None:
        raise ConfigurationError(f"CachePolicy: cache_func {path!r} cannot be imported ({error})")
    return obj


class CachePolicy(ConfigObject):
    """What goes into a step's cache key, and how long a cached result stays valid.

    The seed's names and ZenML's are both accepted: ``max_age_days`` and ``expires_after``
    (seconds) say the same thing (both are kept, consistent; giving both with different values is
    an error); ``ignore_fields`` and ``ignored_inputs`` are merged into one sorted tuple of input
    names left out of the key, stored under both names. ``cache_func`` (a function without
    arguments returning a string that joins the key) is stored as its import path.
    """

    max_age_days: float | None
    expires_after: float | None
    ignore_fields: tuple[str, ...]
    ignored_inputs: tuple[str, ...]
    include_step_code: bool
    include_step_parameters: bool
    include_artifact_values: bool
    include_artifact_ids: bool
    cache_func: str | None

    def __init__(
        self,
        *,
        max_age_days: float | None = None,
        ignore_fields: Iterable[str] | None = None,
        expires_after: float | dt.timedelta | None = None,
        ignored_inputs: Iterable[str] | None = None,
        include_step_code: bool = True,
        include_step_parameters: bool = True,
        include_artifact_values: bool = True,
        include_artifact_ids: bool = True,
        cache_func: Callable[[], Any] | str | None = None,
    ) -> None:
        w = "CachePolicy"
        days = None if max_age_days is None else as_number(w, "max_age_days", max_age_days)
        if days is not None and days <= 0:
            raise invalid(w, "max_age_days", "> 0", max_age_days)
        seconds = (
            None
            if expires_after is None
            else as_seconds(w, "expires_after", expires_after, positive=True)
        )
        if days is not None and seconds is not None:
            if not math.isclose(days * _SECONDS_PER_DAY, seconds, rel_tol=1e-9):
                raise ConfigurationError(
                    f"{w}: max_age_days={max_age_days!r} ({days * _SECONDS_PER_DAY:g} s) and "
                    f"expires_after={expires_after!r} ({seconds:g} s) disagree; set only one"
                )
        elif days is not None:
            seconds = days * _SECONDS_PER_DAY
        elif seconds is not None:
            days = seconds / _SECONDS_PER_DAY
        ignored = tuple(
            sorted(
                {
                    *as_str_tuple(w, "ignore_fields", ignore_fields),
                    *as_str_tuple(w, "ignored_inputs", ignored_inputs),
                }
            )
        )
        path, func = (None, None) if cache_func is None else _cache_func_path(cache_func)
        self._set(
            max_age_days=days,
            expires_after=seconds,
            ignore_fields=ignored,
            ignored_inputs=ignored,
            include_step_code=as_bool(w, "include_step_code", include_step_code),
            include_step_parameters=as_bool(w, "include_step_parameters", include_step_parameters),
            include_artifact_values=as_bool(w, "include_artifact_values", include_artifact_values),
            include_artifact_ids=as_bool(w, "include_artifact_ids", include_artifact_ids),
            cache_func=path,
            _cache_func_obj=func,  # not a field: neither compared nor recorded
        )

    @classmethod
    def default(cls) -> CachePolicy:
        """Everything in the key, no expiry (ZenML's default policy)."""
        return cls()

    @classmethod
    def from_string(cls, value: str) -> CachePolicy:
        """``"default"`` -> :meth:`default` (ZenML accepts ``cache_policy="default"``)."""
        if isinstance(value, str) and value.lower() == "default":
            return cls.default()
        raise invalid("CachePolicy", "cache_policy", "a CachePolicy or 'default'", value)

    @property
    def effective_max_age_seconds(self) -> float | None:
        """How long a cached result may be reused, in seconds (``None``: forever)."""
        return self.expires_after

    @property
    def ignored_names(self) -> frozenset[str]:
        """Input names left out of the cache key (``ignore_fields`` + ``ignored_inputs``)."""
        return frozenset(self.ignore_fields)

    def resolve_cache_func(self) -> Callable[[], Any] | None:
        """The ``cache_func`` callable, imported from its path if needed.

        Raises:
            ConfigurationError: the path cannot be imported or names something not callable.
        """
        if self.cache_func is None:
            return None
        func: Callable[[], Any] | None = self.__dict__.get("_cache_func_obj")
        if func is None:
            obj = _import(self.cache_func)
            if not callable(obj):
                raise invalid("CachePolicy", "cache_func", "a callable", obj)
            func = obj
            object.__setattr__(self, "_cache_func_obj", func)
        return func


# -- StepRetryConfig -------------------------------------------------------------------------


class StepRetryConfig(ConfigObject):
    """How a failing step is retried: up to ``max_retries`` more attempts, the n-th after
    ``delay * backoff ** (n - 1)`` seconds, capped at ``max_delay``, randomized by up to
    ``jitter`` (a fraction of the delay, 0..1)."""

    max_retries: int
    delay: float
    backoff: float
    max_delay: float | None
    jitter: float

    def __init__(
        self,
        *,
        max_retries: int = 1,
        delay: float | dt.timedelta = 0,
        backoff: float = 1,
        max_delay: float | dt.timedelta | None = None,
        jitter: float = 0.0,
    ) -> None:
        w = "StepRetryConfig"
        self._set(
            max_retries=as_int(w, "max_retries", max_retries, minimum=0),
            delay=as_seconds(w, "delay", delay),
            backoff=as_number(w, "backoff", backoff, minimum=1),
            max_delay=None if max_delay is None else as_seconds(w, "max_delay", max_delay),
            jitter=as_number(w, "jitter", jitter, minimum=0, maximum=1),
        )
        if self.max_delay is not None and self.max_delay < self.delay:
            raise ConfigurationError(
                f"{w}: max_delay ({self.max_delay:g}) must be >= delay ({self.delay:g})"
            )


# -- Model -----------------------------------------------------------------------------------

MODEL_STAGES = ("none", "staging", "production", "archived", "latest")
"""Stage names a ``Model(version=...)`` may refer to (ZenML's ``ModelStages``)."""


def _model_version(value: object) -> str | int | None:
    raw = value.value if isinstance(value, enum.Enum) else value
    if raw is None:
        return None
    if isinstance(raw, int) and not isinstance(raw, bool):
        return as_int("Model", "version", raw, minimum=1)
    if isinstance(raw, str) and raw.strip():
        return raw.lower() if raw.lower() in MODEL_STAGES else raw
    raise invalid("Model", "version", "a version name, a number or a stage", value)


class Model(ConfigObject):
    """The model a run's outputs are linked to: ``Model(name="churn", version="production")``.

    ``version`` is a version name (``"{date}"``/``"{time}"`` placeholders allowed), a number, a
    stage (``"production"``, ``"staging"``, ``"latest"``, ...) or ``None`` (a new version).
    """

    name: str
    version: str | int | None
    tags: tuple[str, ...]
    description: str | None
    license: str | None
    audience: str | None
    use_cases: str | None
    limitations: str | None
    trade_offs: str | None
    ethics: str | None
    save_models_to_registry: bool

    def __init__(
        self,
        name: str,
        version: str | int | enum.Enum | None = None,
        *,
        tags: Iterable[str] | None = None,
        description: str | None = None,
        license: str | None = None,
        audience: str | None = None,
        use_cases: str | None = None,
        limitations: str | None = None,
        trade_offs: str | None = None,
        ethics: str | None = None,
        save_models_to_registry: bool = True,
    ) -> None:
        w = "Model"
        self._set(
            name=as_str(w, "name", name),
            version=_model_version(version),
            tags=as_str_tuple(w, "tags", tags),
            description=as_opt_str(w, "description", description),
            license=as_opt_str(w, "license", license),
            audience=as_opt_str(w, "audience", audience),
            use_cases=as_opt_str(w, "use_cases", use_cases),
            limitations=as_opt_str(w, "limitations", limitations),
            trade_offs=as_opt_str(w, "trade_offs", trade_offs),
            ethics=as_opt_str(w, "ethics", ethics),
            save_models_to_registry=as_bool(w, "save_models_to_registry", save_models_to_registry),
        )

    @property
    def version_stage(self) -> str | None:
        """The stage ``version`` names, if it names one."""
        return self.version if self.version in MODEL_STAGES else None

    @property
    def version_number(self) -> int | None:
        """``version`` if it is a number."""
        return self.version if isinstance(self.version, int) else None


# -- run configuration -----------------------------------------------------------------------

_Check = Callable[[str, str, Any], Any]
_EXECUTION_MODES = ("fail_fast", "stop_on_failure", "continue_on_failure")
_MERGED_MAPPINGS = frozenset({"parameters", "settings", "extra", "environment"})
_VERBATIM = frozenset({"parameters", "extra"})


def _object(cls: type[ConfigObject]) -> _Check:
    def check(where: str, field: str, value: Any) -> Any:
        if isinstance(value, cls):
            return value
        if isinstance(value, Mapping):
            try:
                return cls.from_dict(value)
            except ConfigurationError as exc:  # the message already names class and field
                raise ConfigurationError(f"{where}: {exc}") from exc
        raise invalid(where, field, f"a {cls.__name__} or a mapping", value)

    return check


def _cache_policy(where: str, field: str, value: Any) -> CachePolicy:
    if isinstance(value, str):
        return CachePolicy.from_string(value)
    policy: CachePolicy = _object(CachePolicy)(where, field, value)
    return policy


def _str_list(where: str, field: str, value: Any) -> list[str]:
    return list(as_str_tuple(where, field, value))


def _steps(where: str, field: str, value: Any) -> dict[str, StepConfigurationUpdate]:
    if not isinstance(value, Mapping):
        raise invalid(where, field, "a mapping of step invocation id to step options", value)
    steps: dict[str, StepConfigurationUpdate] = {}
    for step_id, update in value.items():
        if not isinstance(step_id, str) or not step_id:
            raise invalid(where, f"{field} key", "a step invocation id", step_id)
        if isinstance(update, StepConfigurationUpdate):
            steps[step_id] = update
        elif update is None or isinstance(update, Mapping):
            steps[step_id] = StepConfigurationUpdate._build(
                update or {}, f"{where}.{field}[{step_id!r}]"
            )
        else:
            raise invalid(
                where, f"{field}[{step_id!r}]", "a StepConfigurationUpdate or a mapping", update
            )
    return steps


def _rebuild_map(cls: type[_OptionMap], values: dict[str, Any]) -> _OptionMap:
    return cls(**values)


class _OptionMap(Mapping[str, Any]):
    """A read-only mapping of the options that were set (``None`` counts as not set).

    Reading an option that was not set as an attribute gives ``None``.
    """

    __slots__ = ("_values",)
    _checks: ClassVar[Mapping[str, _Check]]
    _values: dict[str, Any]

    def __init__(self, **fields: Any) -> None:
        self._init(fields, type(self).__name__)

    def _init(self, fields: Mapping[Any, Any], where: str) -> None:
        values: dict[str, Any] = {}
        for key, value in fields.items():
            check = self._checks.get(key) if isinstance(key, str) else None
            if check is None:
                raise ConfigurationError(unknown_key(where, key, self._checks))
            if value is not None:
                values[key] = check(where, key, value)
        object.__setattr__(self, "_values", values)

    @classmethod
    def _build(cls, fields: Mapping[Any, Any], where: str) -> Self:
        obj = cls.__new__(cls)
        obj._init(fields, where)
        return obj

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build (and validate) from a mapping, such as ``to_dict()``'s output.

        Raises:
            ConfigurationError: ``data`` is not a mapping, or has an unknown key or bad value.
        """
        if not isinstance(data, Mapping):
            raise invalid(cls.__name__, "data", "a mapping", data)
        return cls._build(data, cls.__name__)

    def __getattr__(self, name: str) -> Any:
        if name in type(self)._checks:
            return self._values.get(name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only; use .replace(...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only; use .replace(...)")

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, _OptionMap) or type(other) is not type(self):
            return NotImplemented
        return self._values == other._values

    def __repr__(self) -> str:
        body = ", ".join(f"{key}={value!r}" for key, value in self._values.items())
        return f"{type(self).__name__}({body})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_map, (type(self), dict(self._values)))

    def to_dict(self) -> dict[str, Any]:
        """The options that were set, for the event log: config objects as their ``to_dict()``;
        ``parameters`` and ``extra`` keep their values (msgspec encodes them canonically)."""
        return {
            key: dict(value) if key in _VERBATIM else to_jsonable(value)
            for key, value in self._values.items()
        }

    def replace(self, **fields: Any) -> Self:
        """A copy with ``fields`` changed (``None`` unsets an option)."""
        return type(self)(**{**self._values, **fields})

    def merged(self, other: Mapping[str, Any]) -> Self:
        """A copy updated with ``other``'s options: ``other`` wins, except that ``parameters``,
        ``settings``, ``extra``, ``environment`` and ``steps`` (per step id, recursively) are
        merged key by key."""
        update = other if type(other) is type(self) else type(self).from_dict(other)
        values = dict(self._values)
        for key, value in update.items():
            old = values.get(key)
            if old and key == "steps":
                values[key] = {
                    **old,
                    **{sid: old[sid].merged(u) if sid in old else u for sid, u in value.items()},
                }
            elif old and key in _MERGED_MAPPINGS:
                values[key] = {**old, **value}
            else:
                values[key] = value
        return type(self)(**values)


class StepConfigurationUpdate(_OptionMap):
    """Options for one step invocation in a run configuration (``steps: {id: {...}}``).

    A mapping of the options that were set, ready for ``step.with_options(**update)``. Options:
    ``parameters``, ``enable_cache``, ``enable_artifact_metadata``, ``enable_step_logs``,
    ``settings``, ``extra``, ``environment``, ``secrets``, ``retry``, ``cache_policy``,
    ``timeout`` (seconds) and ``model``.
    """

    __slots__ = ()
    parameters: dict[str, Any] | None
    enable_cache: bool | None
    enable_artifact_metadata: bool | None
    enable_step_logs: bool | None
    settings: dict[str, Settings] | None
    extra: dict[str, Any] | None
    environment: dict[str, str] | None
    secrets: list[str] | None
    retry: StepRetryConfig | None
    cache_policy: CachePolicy | None
    timeout: float | None
    model: Model | None

    _checks: ClassVar[Mapping[str, _Check]] = {
        "parameters": as_dict,
        "enable_cache": as_bool,
        "enable_artifact_metadata": as_bool,
        "enable_step_logs": as_bool,
        "settings": lambda where, field, value: parse_settings(value, owner=where),
        "extra": as_dict,
        "environment": as_env,
        "secrets": _str_list,
        "retry": _object(StepRetryConfig),
        "cache_policy": _cache_policy,
        "timeout": lambda where, field, value: as_seconds(where, field, value, positive=True),
        "model": _object(Model),
    }


class PipelineRunConfiguration(_OptionMap):
    """Options for a pipeline run, as code or a YAML file (:meth:`from_yaml`).

    A read-only mapping of exactly the options that were set, so
    ``p.with_options(**PipelineRunConfiguration(enable_cache=False, run_name="x"))`` passes
    ``enable_cache=False, run_name="x"`` and nothing else. Options: ``run_name``,
    ``enable_cache``, ``enable_artifact_metadata``, ``enable_step_logs``, ``parameters``,
    ``tags``, ``settings``, ``extra``, ``model``, ``schedule``, ``steps`` (invocation id ->
    :class:`StepConfigurationUpdate` or a dict), ``environment``, ``secrets``, ``config_path``,
    ``execution_mode``, ``cache_policy``, ``retry``, ``max_concurrency``. Plain dicts are accepted
    for the object-valued options and converted.

    Raises:
        ConfigurationError: an unknown option (named, with the closest known one) or a bad value.
    """

    __slots__ = ()
    run_name: str | None
    enable_cache: bool | None
    enable_artifact_metadata: bool | None
    enable_step_logs: bool | None
    parameters: dict[str, Any] | None
    tags: list[str] | None
    settings: dict[str, Settings] | None
    extra: dict[str, Any] | None
    model: Model | None
    schedule: Schedule | None
    steps: dict[str, StepConfigurationUpdate] | None
    environment: dict[str, str] | None
    secrets: list[str] | None
    config_path: str | None
    execution_mode: str | None
    cache_policy: CachePolicy | None
    retry: StepRetryConfig | None
    max_concurrency: int | None

    _checks: ClassVar[Mapping[str, _Check]] = {
        "run_name": as_str,
        "enable_cache": as_bool,
        "enable_artifact_metadata": as_bool,
        "enable_step_logs": as_bool,
        "parameters": as_dict,
        "tags": _str_list,
        "settings": lambda where, field, value: parse_settings(value, owner=where),
        "extra": as_dict,
        "model": _object(Model),
        "schedule": _object(Schedule),
        "steps": _steps,
        "environment": as_env,
        "secrets": _str_list,
        "config_path": lambda where, field, value: as_str(where, field, value, path=True),
        "execution_mode": lambda where, field, value: as_choice(
            where, field, value, _EXECUTION_MODES
        ),
        "cache_policy": _cache_policy,
        "retry": _object(StepRetryConfig),
        "max_concurrency": lambda where, field, value: as_int(where, field, value, minimum=1),
    }

    @classmethod
    def from_yaml(cls, path: str | os.PathLike[str]) -> PipelineRunConfiguration:
        """Load a run configuration file (the keys are this class's options, except
        ``config_path``; ``steps`` maps invocation ids to step options).

        Raises:
            ConfigurationError: the file cannot be read, is not valid YAML (file and line are
                named), or has an unknown key or bad value (file, step id and key are named).
        """
        from ._config_file import load_run_configuration

        return load_run_configuration(path)


__all__ = [
    "EXECUTOR_KINDS",
    "MODEL_STAGES",
    "CachePolicy",
    "DockerSettings",
    "ExecutorSettings",
    "Model",
    "PipelineRunConfiguration",
    "ResourceSettings",
    "Schedule",
    "StepConfigurationUpdate",
    "StepRetryConfig",
    "validate_settings",
]
