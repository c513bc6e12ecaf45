"""Recording where a pipeline's code is (:func:`code_location`), and finding it again.

``run.created.code`` is ``package.module:name`` for a pipeline imported as a module, or
``/abs/path/file.py:name`` for one loaded from a file (``evenflow run FILE.py:PIPELINE`` or a
script run as ``python file.py``). Resuming a run and firing a schedule both start here, so the
pipeline is found from any working directory: a module that is not installed (one beside the
script that imported it) is also looked for under the root directory the run recorded
(``code_root``), which is added at the end of ``sys.path`` only if the module is not found
otherwise.

A script is imported as a module, not run as ``__main__``: code under
``if __name__ == "__main__":`` does not execute, anything else at module level does.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._pipeline import Pipeline


def find_pipeline(code: str, root: str = "") -> Pipeline:
    """The :class:`Pipeline` at ``code`` (``root``: where its module was imported from).

    Raises:
        LookupError: ``code`` is malformed, or names something that is not a pipeline.
        Exception: whatever importing the module raised.
    """
    from ._pipeline import Pipeline

    location, sep, qualname = code.rpartition(":")
    if not sep or not location or not qualname:
        raise LookupError(f"{code!r} is not a code location (expected module:name or file.py:name)")
    if location.endswith(".py"):
        obj: Any = _from_file(Path(location), qualname)
    else:
        obj = _import(location, root)
        for part in qualname.split("."):
            obj = getattr(obj, part, None)
    if not isinstance(obj, Pipeline):
        raise LookupError(f"{code!r} is not a pipeline (found {type(obj).__name__})")
    return obj


def code_location(func: Callable[..., Any]) -> tuple[str, str]:
    """How to find ``func``'s pipeline again: ``module:qualname`` (with the folder its module
    was imported from, see :func:`_code_root`) or ``/abs/file.py:qualname`` (and "")."""
    return _location(func), _code_root(func)


def _location(func: Callable[..., Any]) -> str:
    module = func.__module__
    loaded_from = getattr(sys.modules.get(module), "__evenflow_file__", None)
    if loaded_from is not None:
        return f"{loaded_from}:{func.__qualname__}"
    if module == "__main__" or module not in sys.modules:
        try:
            return f"{Path(inspect.getfile(func)).resolve()}:{func.__qualname__}"
        except (OSError, TypeError):
            return f"{module}:{func.__qualname__}"
    return f"{module}:{func.__qualname__}"


def _code_root(func: Callable[..., Any]) -> str:
    """The directory the module of ``func`` was imported from: the parent of its top package
    (``/x`` for ``/x/pkg/mod.py`` imported as ``pkg.mod``), or "" when that cannot be told.

    Recorded with a ``module:name`` code location, so that a process whose path lacks it (the
    ``evenflow`` command resuming a run started by a script beside the module, a schedule
    service) can still import the module: see ``find_pipeline``.
    """
    module = sys.modules.get(func.__module__)
    file = getattr(module, "__file__", None)
    if not file or func.__module__ == "__main__" or hasattr(module, "__evenflow_file__"):
        return ""  # not a module found by name: the code location is its file
    path = Path(file).resolve()
    if path.name == "__init__.py":
        path = path.parent
    stem = path.with_suffix("")
    parts = func.__module__.split(".")
    if list(stem.parts[-len(parts) :]) != parts:
        return ""  # not laid out as its dotted name says (a zip, a custom importer)
    return str(stem.parents[len(parts) - 1])


def _import(module: str, root: str) -> Any:
    """Import ``module``; if neither it nor its package can be found, look under ``root`` too."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        missing = exc.name or ""
        ours = missing == module or module.startswith(missing + ".")
        if not (ours and root and Path(root).is_dir() and root not in sys.path):
            raise
    sys.path.append(root)  # last: it never shadows what the path already finds
    importlib.invalidate_caches()
    return importlib.import_module(module)


def _from_file(path: Path, qualname: str) -> Any:
    from ._cli_load import import_file

    resolved = str(path.resolve())
    for module in list(sys.modules.values()):  # loaded already (same process): reuse it
        if getattr(module, "__evenflow_file__", None) == resolved:
            break
    else:
        module = import_file(path)
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    return obj
