"""Resolving ``"pkg.module.func"`` / ``"pkg.module:func"`` strings (hooks, cache functions)."""

from __future__ import annotations

import importlib
from typing import Any


def import_object(path: str) -> tuple[Any, str | None]:
    """The object at ``path``, or ``(None, why it could not be imported)``.

    ``module:attr.attr`` names the module explicitly; a dotted path tries the longest module
    prefix first.
    """
    if ":" in path:
        module_name, _, attrs = path.partition(":")
        candidates = [(module_name, attrs.split("."))]
    else:
        parts = path.split(".")
        candidates = [(".".join(parts[:i]), parts[i:]) for i in range(len(parts) - 1, 0, -1)]
    first_error: str | None = None
    for module_name, attrs_list in candidates:
        try:
            obj: Any = importlib.import_module(module_name)
            for attr in attrs_list:
                obj = getattr(obj, attr)
        except (ImportError, AttributeError) as exc:
            # The longest module prefix is tried first; its error is the informative one.
            first_error = first_error or f"{type(exc).__name__}: {exc}"
            continue
        return obj, None
    return None, first_error
