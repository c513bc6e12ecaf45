"""What goes into a step's cache key and how long a cached result stays valid: :class:`CachePolicy`.

The key itself is computed in :mod:`engine._cache_key`; this module only validates and records
the policy.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from ._config_base import ConfigObject
from ._config_checks import (
    as_bool,
    as_number,
    as_seconds,
    as_str_tuple,
    invalid,
)
from .errors import ConfigurationError

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
