"""Stack settings: ``settings={"docker": ..., "resources": ..., "executor": ...}``.

:class:`DockerSettings`, :class:`ResourceSettings` and :class:`ExecutorSettings` are
:class:`~engine._config_base.ConfigObject` values that record only what differs from their
defaults. :func:`parse_settings` turns a ``settings=`` mapping (plain dicts allowed) into them;
:func:`validate_settings` gives the JSON-friendly form recorded in the event log.
"""

from __future__ import annotations

import enum
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ._config_base import ConfigObject, to_jsonable
from ._config_base import _rebuild as _rebuild  # pickles made before the split name it here
from ._config_checks import (
    as_bool,
    as_choice,
    as_dict,
    as_env,
    as_int,
    as_number,
    as_opt_str,
    as_str,
    as_str_tuple,
    invalid,
    unknown_key,
)
from .errors import ConfigurationError

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
