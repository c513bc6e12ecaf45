"""The fast argument binder agrees with ``inspect.Signature.bind`` on every call."""

from __future__ import annotations

import inspect
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from engine._signature import read_signature


def mixed(a: int, b: int = 2, *, c: int, d: int = 4) -> None: ...


def positional_only(a: int, /, b: int = 1) -> None: ...


def bare() -> None: ...


FUNCTIONS = [mixed, positional_only, bare]  # steps reject *args and **kwargs
NAMES = ["a", "b", "c", "d", "e", "rest", "extra"]


def reference(func: Any, args: list[int], kwargs: dict[str, int]) -> Any:
    try:
        bound = inspect.signature(func).bind(*args, **kwargs)
    except TypeError:
        return TypeError
    bound.apply_defaults()
    return list(bound.arguments.items())


@settings(max_examples=400)
@given(
    st.sampled_from(FUNCTIONS),
    st.lists(st.integers(), max_size=4),
    st.dictionaries(st.sampled_from(NAMES), st.integers()),
)
def test_bind_matches_inspect(func: Any, args: list[int], kwargs: dict[str, int]) -> None:
    sig = read_signature(func, func.__name__)
    try:
        got: Any = list(sig.bind(tuple(args), kwargs).items())
    except TypeError:
        got = TypeError
    assert got == reference(func, args, kwargs)
