"""Stack settings (``docker``, ``resources``, ``executor``) and the checks config classes share.

Configuration objects are read-only value objects built on :class:`ConfigObject`: their
``__init__`` validates and normalizes each field, and every bad value raises
:class:`~engine.errors.ConfigurationError` naming the class, the field and the value. An unknown
keyword is a ``ConfigurationError`` too (never a bare ``TypeError``), with a "did you mean" hint.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
import math
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar, Self

from .errors import ConfigurationError

# -- shared checks ---------------------------------------------------------------------------


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def invalid(where: str, field: str, expected: str, value: object) -> ConfigurationError:
    """The error for ``field`` of ``where`` holding ``value`` instead of ``expected``."""
    return ConfigurationError(f"{where}: {field} must be {expected}, got {_short(value)}")


def unknown_key(where: str, key: object, allowed: Iterable[str], what: str = "field") -> str:
    """The message for an unknown ``key``, with the closest known names."""
    import difflib  # only on the error path

    names = sorted(allowed)
    message = f"{where}: unknown {what} {key!r}"
    if isinstance(key, str) and (close := difflib.get_close_matches(key, names, n=1)):
        message += f" (did you mean {close[0]!r}?)"
    return f"{message}; expected one of: {', '.join(names)}"


def as_bool(where: str, field: str, value: object) -> bool:
    """``value`` if it is a bool (``"yes"`` and ``1`` are refused)."""
    if not isinstance(value, bool):
        raise invalid(where, field, "true or false", value)
    return value


def as_str(where: str, field: str, value: object, *, path: bool = False) -> str:
    """A non-empty string (or, with ``path``, an ``os.PathLike``)."""
    if path and isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str) or not value.strip():
        raise invalid(where, field, "a non-empty string", value)
    return value


def as_opt_str(where: str, field: str, value: object, *, path: bool = False) -> str | None:
    """``None`` or a non-empty string."""
    return None if value is None else as_str(where, field, value, path=path)


def as_str_tuple(where: str, field: str, value: object) -> tuple[str, ...]:
    """A list (tuple, set) of non-empty strings; ``None`` is empty. A bare string is refused,
    since iterating it would yield its characters."""
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise invalid(where, field, "a list of strings", value)
    items = sorted(value, key=str) if isinstance(value, set | frozenset) else list(value)
    for item in items:
        if not isinstance(item, str) or not item:
            raise invalid(where, field, "a list of non-empty strings", value)
    return tuple(items)


def as_dict(where: str, field: str, value: object) -> dict[str, Any]:
    """A shallow copy of a mapping with string keys; ``None`` is empty."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise invalid(where, field, "a mapping", value)
    for key in value:
        if not isinstance(key, str):
            raise invalid(where, f"{field} key", "a string", key)
    return dict(value)


def as_env(where: str, field: str, value: object) -> dict[str, str]:
    """Environment variables: string names, scalar values converted with ``str``."""
    env = as_dict(where, field, value)
    for name, item in env.items():
        if not name or "=" in name or "\0" in name:
            raise invalid(where, f"{field} key", "a variable name", name)
        if not isinstance(item, str | int | float | bool):
            raise invalid(where, f"{field}[{name!r}]", "a string or number", item)
        env[name] = str(item)
    return env


def as_number(
    where: str,
    field: str,
    value: object,
    *,
    minimum: float | None = None,
    positive: bool = False,
    maximum: float | None = None,
) -> float:
    """A finite real number (not a bool) within the given bounds, as a float."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise invalid(where, field, "a finite number", value)
    if positive and value <= 0:
        raise invalid(where, field, "> 0", value)
    if minimum is not None and value < minimum:
        raise invalid(where, field, f">= {minimum:g}", value)
    if maximum is not None and value > maximum:
        raise invalid(where, field, f"<= {maximum:g}", value)
    return float(value)


def as_seconds(where: str, field: str, value: object, *, positive: bool = False) -> float:
    """A duration in seconds: a number or a ``datetime.timedelta``."""
    if isinstance(value, dt.timedelta):
        seconds = value.total_seconds()
        if seconds < 0 or (positive and seconds == 0):
            raise invalid(where, field, "a positive duration" if positive else ">= 0", value)
        return seconds
    return as_number(where, field, value, minimum=0, positive=positive)


def as_int(where: str, field: str, value: object, *, minimum: int) -> int:
    """An int (not a bool) ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(where, field, "an integer", value)
    if value < minimum:
        raise invalid(where, field, f">= {minimum}", value)
    return value


def as_choice(where: str, field: str, value: object, choices: Iterable[str]) -> str:
    """One of ``choices`` (an Enum member counts by its value; case-insensitive)."""
    options = tuple(choices)
    raw = value.value if isinstance(value, enum.Enum) else value
    if isinstance(raw, str) and raw.lower() in options:
        return raw.lower()
    raise invalid(where, field, "one of " + ", ".join(map(repr, options)), value)


def to_jsonable(value: Any) -> Any:
    """``value`` with tuples as lists, enums as values, datetimes as ISO strings and config
    objects as their ``to_dict()``, recursively: something msgspec (and JSON) can encode."""
    if isinstance(value, ConfigObject):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _rebuild(cls: type[ConfigObject], values: dict[str, Any]) -> ConfigObject:
    return cls(**values)


_DEFAULTS: dict[type[ConfigObject], dict[str, Any]] = {}


class ConfigObject:
    """Base of the read-only configuration values.

    A subclass declares its fields as annotations (their order is the ``repr``/``to_dict``
    order) and writes a keyword ``__init__`` that validates and calls ``self._set(...)``. This
    base turns unknown or missing keywords into :class:`ConfigurationError` and provides
    ``==``, ``hash``, ``repr``, ``replace``, ``to_dict`` and ``from_dict``. (Not dataclasses:
    generating their methods would cost ``import engine`` milliseconds per class.) Pickling and
    copying go through ``__init__`` again, so they re-validate.
    """

    _field_names: ClassVar[tuple[str, ...]] = ()
    _allowed: ClassVar[frozenset[str]] = frozenset()
    _positional: ClassVar[tuple[str, ...]] = ()
    _required: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._field_names = tuple(inspect.get_annotations(cls))
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        code = init.__code__
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        positional = names[1 : code.co_argcount]
        required_pos = positional[: len(positional) - len(init.__defaults__ or ())]
        kw_defaults = init.__kwdefaults__ or {}
        required_kw = tuple(n for n in names[code.co_argcount :] if n not in kw_defaults)
        cls._allowed = frozenset(names[1:])
        cls._positional = positional
        cls._required = required_pos + required_kw

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        for key in kwargs:
            if key not in cls._allowed:
                raise ConfigurationError(unknown_key(cls.__name__, key, cls._allowed))
        given = {*cls._positional[: len(args)], *kwargs}
        for name in cls._required:
            if name not in given:
                raise ConfigurationError(f"{cls.__name__}: {name} is required")
        return super().__new__(cls)

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._field_names}

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only; use .replace(...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only; use .replace(...)")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self), tuple(self._fields().items())))

    def replace(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` applied."""
        return type(self)(**{**self._fields(), **changes})

    def _non_default(self) -> dict[str, Any]:
        """The fields that differ from a default-constructed instance (all non-``None`` fields
        when the class has no default instance)."""
        cls = type(self)
        defaults = _DEFAULTS.get(cls)
        if defaults is None:
            try:
                defaults = cls()._fields()
            except ConfigurationError:  # a required field, or "exactly one of" (Schedule)
                defaults = dict(cls.__init__.__kwdefaults__ or {})
            _DEFAULTS[cls] = defaults
        return {
            name: value
            for name, value in self._fields().items()
            if value is not None
            and value != ()
            and (name not in defaults or defaults[name] != value)
        }

    def __repr__(self) -> str:
        body = ", ".join(f"{name}={value!r}" for name, value in self._non_default().items())
        return f"{type(self).__name__}({body})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self._fields()))

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-friendly (for the event log); ``from_dict`` reverses it."""
        return {name: to_jsonable(value) for name, value in self._fields().items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build (and validate) an instance from a mapping such as ``to_dict()``'s output.

        Raises:
            ConfigurationError: ``data`` is not a mapping, or has an unknown key or bad value.
        """
        if not isinstance(data, Mapping):
            raise invalid(cls.__name__, "data", "a mapping", data)
        return cls(**{str(key): value for key, value in data.items()})


# -- settings --------------------------------------------------------------------------------

_MEMORY_UNITS = {
    "KB": 10**3,
    "KiB": 1 << 10,
    "MB": 10**6,
    "MiB": 1 << 20,
    "GB": 10**9,
    "GiB": 1 << 30,
    "TB": 10**12,
    "TiB": 1 << 40,
    "PB": 10**15,
    "PiB": 1 << 50,
}
_MEMORY = re.compile(r"^([0-9]+)(" + "|".join(_MEMORY_UNITS) + r")$")
_BUILD_CONFIG_KEYS = frozenset({"build_options", "dockerignore"})
EXECUTOR_KINDS = ("thread", "async", "process")
"""``settings={"executor": {"kind": ...}}`` values the engine knows."""


class _StackSettings(ConfigObject):
    """Settings record only what differs from the defaults: the log stays small."""

    def to_dict(self) -> dict[str, Any]:
        """The fields that differ from the defaults, JSON-friendly (``from_dict`` reverses it)."""
        return {name: to_jsonable(value) for name, value in self._non_default().items()}


def _build_config(where: str, field: str, value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    config = as_dict(where, field, value)
    for key in config:
        if key not in _BUILD_CONFIG_KEYS:
            raise ConfigurationError(unknown_key(f"{where}.{field}", key, _BUILD_CONFIG_KEYS))
    return config


class DockerSettings(_StackSettings):
    """How ZenML would containerize a run; evenflow validates and records it with the run.

    The local executors run steps in this interpreter and say once that they ignore these
    settings. Fields and meanings are ZenML's (``requirements`` is a list of pip requirements or
    the path of a requirements file; ``skip_build`` needs ``parent_image``).
    """

    parent_image: str | None
    dockerfile: str | None
    build_context_root: str | None
    parent_image_build_config: dict[str, Any] | None
    skip_build: bool
    prevent_build_reuse: bool
    target_repository: str | None
    python_package_installer: str
    python_package_installer_args: dict[str, Any]
    replicate_local_python_environment: str | tuple[str, ...] | None
    requirements: str | tuple[str, ...] | None
    required_integrations: tuple[str, ...]
    install_stack_requirements: bool
    apt_packages: tuple[str, ...]
    environment: dict[str, str]
    user: str | None
    build_config: dict[str, Any] | None
    allow_including_files_in_images: bool
    allow_download_from_code_repository: bool
    allow_download_from_artifact_store: bool

    def __init__(
        self,
        *,
        parent_image: str | None = None,
        dockerfile: str | os.PathLike[str] | None = None,
        build_context_root: str | os.PathLike[str] | None = None,
        parent_image_build_config: Mapping[str, Any] | None = None,
        skip_build: bool = False,
        prevent_build_reuse: bool = False,
        target_repository: str | None = None,
        python_package_installer: str = "pip",
        python_package_installer_args: Mapping[str, Any] | None = None,
        replicate_local_python_environment: str | Iterable[str] | None = None,
        requirements: str | os.PathLike[str] | Iterable[str] | None = None,
        required_integrations: Iterable[str] | None = None,
        install_stack_requirements: bool = True,
        apt_packages: Iterable[str] | None = None,
        environment: Mapping[str, Any] | None = None,
        user: str | None = None,
        build_config: Mapping[str, Any] | None = None,
        allow_including_files_in_images: bool = True,
        allow_download_from_code_repository: bool = True,
        allow_download_from_artifact_store: bool = True,
    ) -> None:
        w = "DockerSettings"
        replicate: str | tuple[str, ...] | None = None
        if isinstance(replicate_local_python_environment, str | enum.Enum):
            replicate = as_choice(
                w,
                "replicate_local_python_environment",
                replicate_local_python_environment,
                ("pip_freeze", "poetry_export"),
            )
        elif replicate_local_python_environment is not None:
            replicate = as_str_tuple(
                w, "replicate_local_python_environment", replicate_local_python_environment
            )
        reqs: str | tuple[str, ...] | None = None
        if isinstance(requirements, str | os.PathLike):
            reqs = as_str(w, "requirements", requirements, path=True)
        elif requirements is not None:
            reqs = as_str_tuple(w, "requirements", requirements)
        self._set(
            parent_image=as_opt_str(w, "parent_image", parent_image),
            dockerfile=as_opt_str(w, "dockerfile", dockerfile, path=True),
            build_context_root=as_opt_str(w, "build_context_root", build_context_root, path=True),
            parent_image_build_config=_build_config(
                w, "parent_image_build_config", parent_image_build_config
            ),
            skip_build=as_bool(w, "skip_build", skip_build),
            prevent_build_reuse=as_bool(w, "prevent_build_reuse", prevent_build_reuse),
            target_repository=as_opt_str(w, "target_repository", target_repository),
            python_package_installer=as_choice(
                w, "python_package_installer", python_package_installer, ("pip", "uv")
            ),
            python_package_installer_args=as_dict(
                w, "python_package_installer_args", python_package_installer_args
            ),
            replicate_local_python_environment=replicate,
            requirements=reqs,
            required_integrations=as_str_tuple(w, "required_integrations", required_integrations),
            install_stack_requirements=as_bool(
                w, "install_stack_requirements", install_stack_requirements
            ),
            apt_packages=as_str_tuple(w, "apt_packages", apt_packages),
            environment=as_env(w, "environment", environment),
            user=as_opt_str(w, "user", user),
            build_config=_build_config(w, "build_config", build_config),
            allow_including_files_in_images=as_bool(
                w, "allow_including_files_in_images", allow_including_files_in_images
            ),
            allow_download_from_code_repository=as_bool(
                w, "allow_download_from_code_repository", allow_download_from_code_repository
            ),
            allow_download_from_artifact_store=as_bool(
                w, "allow_download_from_artifact_store", allow_download_from_artifact_store
            ),
        )
        if self.skip_build and self.parent_image is None:
            raise ConfigurationError(
                f"{w}: skip_build=True needs a parent_image to run the steps in, got none"
            )


class ResourceSettings(_StackSettings):
    """Hardware a step asks for (ZenML's fields); recorded with the run.

    ``memory`` is an integer with a unit, e.g. ``"4GB"`` or ``"512MiB"``.
    """

    cpu_count: float | None
    gpu_count: int | None
    memory: str | None
    accelerator: str | None
    accelerator_count: int | None
    instance_type: str | None

    def __init__(
        self,
        *,
        cpu_count: float | None = None,
        gpu_count: int | None = None,
        memory: str | None = None,
        accelerator: str | None = None,
        accelerator_count: int | None = None,
        instance_type: str | None = None,
    ) -> None:
        w = "ResourceSettings"
        if memory is not None and (not isinstance(memory, str) or not _MEMORY.match(memory)):
            raise invalid(w, "memory", "an integer with a unit such as '4GB' or '512MiB'", memory)
        self._set(
            cpu_count=None
            if cpu_count is None
            else as_number(w, "cpu_count", cpu_count, positive=True),
            gpu_count=None if gpu_count is None else as_int(w, "gpu_count", gpu_count, minimum=0),
            memory=memory,
            accelerator=as_opt_str(w, "accelerator", accelerator),
            accelerator_count=None
            if accelerator_count is None
            else as_int(w, "accelerator_count", accelerator_count, minimum=0),
            instance_type=as_opt_str(w, "instance_type", instance_type),
        )

    @property
    def empty(self) -> bool:
        """Whether no resource was requested."""
        return not self._non_default()

    def get_memory(self, unit: str = "GB") -> float | None:
        """The requested memory in ``unit`` (``"KB"``, ``"MiB"``, ``"GB"``, ...), or ``None``."""
        if unit not in _MEMORY_UNITS:
            raise invalid("ResourceSettings", "unit", "one of " + ", ".join(_MEMORY_UNITS), unit)
        match = _MEMORY.match(self.memory or "")
        if match is None:
            return None
        return int(match[1]) * _MEMORY_UNITS[match[2]] / _MEMORY_UNITS[unit]


class ExecutorSettings(_StackSettings):
    """Where a step runs: ``settings={"executor": {"kind": "process"}}``.

    ``kind`` is ``"thread"`` (sync steps' default), ``"async"`` (on the event loop; async steps'
    default) or ``"process"`` (a process pool; ``max_workers`` bounds it).
    """

    kind: str
    max_workers: int | None

    def __init__(self, *, kind: str, max_workers: int | None = None) -> None:
        w = "ExecutorSettings"
        self._set(
            kind=as_choice(w, "kind", kind, EXECUTOR_KINDS),
            max_workers=None
            if max_workers is None
            else as_int(w, "max_workers", max_workers, minimum=1),
        )


Settings = DockerSettings | ResourceSettings | ExecutorSettings
_SETTINGS_CLASSES: dict[str, type[Settings]] = {
    "docker": DockerSettings,
    "resources": ResourceSettings,
    "executor": ExecutorSettings,
}


def parse_settings(settings: Mapping[str, Any] | None, *, owner: str) -> dict[str, Settings]:
    """``settings`` with every value as its settings class (plain dicts are converted).

    Raises:
        ConfigurationError: an unknown key, a value of the wrong kind, or a bad field; the
            message names ``owner`` and the key.
    """
    if settings is None:
        return {}
    if not isinstance(settings, Mapping):
        raise invalid(
            owner, "settings", "a mapping such as {'docker': DockerSettings(...)}", settings
        )
    parsed: dict[str, Settings] = {}
    for key, value in settings.items():
        cls = _SETTINGS_CLASSES.get(key) if isinstance(key, str) else None
        if cls is None:
            raise ConfigurationError(unknown_key(owner, key, _SETTINGS_CLASSES, "settings key"))
        if isinstance(value, cls):
            parsed[key] = value
        elif isinstance(value, Mapping):
            try:
                parsed[key] = cls.from_dict(value)
            except ConfigurationError as exc:
                raise ConfigurationError(f"{owner}: settings[{key!r}]: {exc}") from exc
        else:
            raise invalid(owner, f"settings[{key!r}]", f"a {cls.__name__} or a dict", value)
    return parsed


def validate_settings(
    settings: Mapping[str, Any] | None, *, owner: str
) -> dict[str, dict[str, Any]]:
    """Validate ``settings`` (keys ``"docker"``, ``"resources"``, ``"executor"``; values the
    settings classes or plain dicts) and return them JSON-friendly, for the event log.

    Args:
        settings: The ``settings=`` a pipeline, step or run configuration was given.
        owner: Who was given them (e.g. ``"pipeline 'training'"``), for error messages.

    Raises:
        ConfigurationError: an unknown key, a value of the wrong kind, or a bad field.
    """
    return {key: value.to_dict() for key, value in parse_settings(settings, owner=owner).items()}
