"""The field checks configuration classes share.

Each ``as_*`` function checks and normalizes one value and, when it is bad, raises the
:class:`~engine.errors.ConfigurationError` that :func:`invalid` builds: it names the class (or
file), the field and the value. :func:`unknown_key` words the error for an unknown keyword, with
a "did you mean" hint.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
import os
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import ConfigurationError


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
