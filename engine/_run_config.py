"""Options for a run and its steps: ``PipelineRunConfiguration``, ``StepConfigurationUpdate``.

Both are read-only mappings of exactly the options that were set, so
``p.with_options(**PipelineRunConfiguration(run_name="x"))`` passes exactly ``run_name="x"``.
Plain dicts are accepted for the object-valued options and converted; files are read by
:mod:`engine._config_file`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from typing import Any, ClassVar, Self

from ._cache_policy import CachePolicy
from ._config_base import ConfigObject, to_jsonable
from ._config_checks import (
    as_bool,
    as_choice,
    as_dict,
    as_env,
    as_int,
    as_seconds,
    as_str,
    as_str_tuple,
    invalid,
    unknown_key,
)
from ._model_config import Model
from ._retry_config import StepRetryConfig
from ._schedule_config import Schedule
from ._settings import Settings, parse_settings
from .errors import ConfigurationError

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
