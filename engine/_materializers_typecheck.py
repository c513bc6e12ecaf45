"""Checking a step's output value against its return annotation, before it is stored.

Only what ``isinstance`` can answer is checked: classes, ``Optional``/``Union`` of them,
``Literal`` values, and the origin class of generics (``list[int]`` checks ``list``, not the
items). ``Any``, type variables, strings, protocols and anything else exotic are accepted:
a check that cannot be answered never fails a step. As in PEP 484, ``float`` accepts an ``int``
and ``complex`` accepts both.
"""

from __future__ import annotations

import inspect
import types
import typing
from typing import Annotated, Any, Literal, TypeVar, Union

from .errors import StepOutputError

__all__ = ["check_output_type"]

_UNCHECKED: tuple[type[Any], ...] = (TypeVar, typing.ParamSpec, typing.ForwardRef, str)
_NUMERIC: dict[type[Any], tuple[type[Any], ...]] = {
    float: (int, float),
    complex: (int, float, complex),
}


def check_output_type(step: str, output: str, value: Any, annotation: Any) -> None:
    """Raise :class:`StepOutputError` if ``value`` does not match ``annotation``.

    ``annotation`` is the output's annotation with any ``Annotated[T, "name"]`` wrapper allowed;
    ``inspect.Parameter.empty`` means unannotated. ``None`` means the output must be ``None``.

    Raises:
        StepOutputError: "step 'train' output 'model': expected int, got str".
    """
    if _accepts(annotation, value):
        return
    raise StepOutputError(
        f"step {step!r} output {output!r}: expected {_describe(annotation)}, "
        f"got {_describe(type(value))}"
    )


def _accepts(annotation: Any, value: Any) -> bool:
    try:
        return _check(annotation, value)
    except Exception:
        # An annotation isinstance cannot answer (a non-runtime Protocol, a metaclass whose
        # __instancecheck__ raises, ...) is accepted, by this module's contract.
        return True


def _check(annotation: Any, value: Any) -> bool:
    if annotation is Any or annotation is object or annotation is inspect.Parameter.empty:
        return True
    if annotation is None or annotation is types.NoneType:
        return value is None
    if isinstance(annotation, _UNCHECKED):
        return True
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _check(annotation.__origin__, value)
    if origin is Union or origin is types.UnionType:
        return any(_check(arm, value) for arm in typing.get_args(annotation))
    if origin is Literal:
        return any(type(v) is type(value) and v == value for v in typing.get_args(annotation))
    if origin is not None:
        annotation = origin  # list[int] -> list; ClassVar etc. are not classes: accepted below
    if isinstance(annotation, type):
        return isinstance(value, _NUMERIC.get(annotation, annotation))
    supertype = getattr(annotation, "__supertype__", None)  # typing.NewType
    if supertype is not None:
        return _check(supertype, value)
    return True


def _describe(annotation: Any) -> str:
    if annotation is None or annotation is types.NoneType:
        return "None"
    origin = typing.get_origin(annotation)
    if origin is Annotated:
        return _describe(annotation.__origin__)
    if origin is Union or origin is types.UnionType:
        return " | ".join(_describe(arm) for arm in typing.get_args(annotation))
    if isinstance(annotation, type) and origin is None:
        return annotation.__qualname__
    return repr(annotation).replace("typing.", "")
