"""Module-level pieces the caching tests need: a ``cache_func`` (it must be importable) and
counters of step executions."""

from __future__ import annotations

from collections import Counter

EXECUTIONS: Counter[str] = Counter()
"""Step name -> how many times its body ran (tests reset it)."""

SALT = "one"
"""What :func:`salt` returns; a test changes it to change the cache keys that use it."""


def salt() -> str:
    """A ``CachePolicy(cache_func=...)``: its result joins the key."""
    return SALT


def unencodable() -> object:
    """A ``cache_func`` whose result can neither be a string nor be encoded."""
    return object()
