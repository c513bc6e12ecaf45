"""Finding a pipeline again from the code location a run recorded.

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
import sys
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
