"""Turning ``evenflow run`` arguments into a pipeline and its parameters.

``FILE.py:PIPELINE`` is imported the way ``python FILE.py`` would see its siblings (the file's
directory goes first on ``sys.path``), under a module name made from the file's stem.
``-p key=value`` values are read as YAML scalars, so ``n=3`` is an int and ``name=Bob`` a str.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._pipeline import Pipeline


class CliError(Exception):
    """An error the CLI reports as one line, ``error: <message>``, exiting with ``code``."""

    def __init__(self, message: str, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def split_target(target: str) -> tuple[Path, str | None]:
    """``"path/to/file.py:name"`` -> ``(Path("path/to/file.py"), "name")``; the name is None
    when the target is a bare file."""
    path, sep, name = target.rpartition(":")
    if not sep or not name or "/" in name or "\\" in name:
        path, name = target, ""
    if not path:
        raise CliError(f"expected FILE.py:PIPELINE, got {target!r}")
    if name and not name.isidentifier():
        raise CliError(f"{name!r} is not a Python name (expected FILE.py:PIPELINE, got {target!r})")
    return Path(path), name or None


def _module_name(path: Path) -> str:
    """The file's stem, unless another module already owns that name (a file called
    ``random.py`` must not replace the standard library's ``random`` for the engine)."""
    stem = path.stem
    existing = sys.modules.get(stem)
    if stem.isidentifier() and (
        existing is None or getattr(existing, "__file__", None) == str(path)
    ):
        return stem
    safe = "".join(c if c.isalnum() else "_" for c in stem)
    return f"evenflow_file_{safe}"


def import_file(path: Path) -> ModuleType:
    """Import ``path`` as a module (its directory first on ``sys.path``).

    Raises:
        CliError: the file is missing or is not a ``.py`` file.
        Exception: whatever the module raised while it was imported (the caller reports it).
    """
    if not path.is_file():
        raise CliError(f"no such file: {path}")
    if path.suffix != ".py":
        raise CliError(f"{path} is not a Python file (expected FILE.py:PIPELINE)")
    path = path.resolve()
    name = _module_name(path)
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise CliError(f"cannot import {path}")
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module = importlib.util.module_from_spec(spec)
    # Runs record this file as their code location, so `runs resume` finds it from anywhere.
    module.__evenflow_file__ = str(path)  # type: ignore[attr-defined]
    # Registered before executing, like any import: dataclasses and pickling look it up there.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def find_pipeline(module: ModuleType, path: Path, name: str | None) -> Pipeline:
    """The :class:`Pipeline` called ``name`` in ``module`` (the only one if ``name`` is None).

    Raises:
        CliError: no such attribute, it is not a pipeline, or ``name`` is None and the module
            does not define exactly one pipeline.
    """
    from ._pipeline import Pipeline

    found = {k: v for k, v in vars(module).items() if isinstance(v, Pipeline)}
    known = ", ".join(sorted(found)) or "none"
    if name is None:
        if len(found) == 1:
            return next(iter(found.values()))
        raise CliError(f"{path} defines {len(found)} pipelines ({known}); use {path}:PIPELINE")
    if not hasattr(module, name):
        raise CliError(f"{path} has no attribute {name!r} (pipelines in it: {known})")
    obj = getattr(module, name)
    if not isinstance(obj, Pipeline):
        kind = type(obj).__name__
        raise CliError(
            f"{name!r} in {path} is a {kind}, not a pipeline (decorate it with @pipeline); "
            f"pipelines in it: {known}"
        )
    return obj


def parse_params(items: list[str]) -> dict[str, Any]:
    """``["n=3", "name=Bob"]`` -> ``{"n": 3, "name": "Bob"}`` (values read as YAML; a value
    YAML cannot read stays a string, an empty value is ``""``).

    Raises:
        CliError: an item is not ``key=value`` with a Python name as key, or a key repeats.
    """
    import yaml

    params: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise CliError(f"bad parameter {item!r}: expected -p key=value with key a Python name")
        if key in params:
            raise CliError(f"parameter {key!r} is given twice")
        value: Any = raw
        if raw.strip():
            try:
                value = yaml.safe_load(raw)
            except yaml.YAMLError:
                value = raw
        params[key] = value
    return params
