"""Values as a cache key encodes them: with the types their msgpack would lose made explicit.

msgspec's msgpack writes many types as plain data: a tuple as a list, an ``Enum`` as its value,
a ``Decimal``, ``UUID`` or ``date`` as a string, a dataclass or ``Struct`` as a map, an aware
datetime as a UTC timestamp (its offset gone). Two parameters that differ only so would share a
cache key, and a step given ``Mode.FAST`` would reuse the result computed for ``"fast"``.
:func:`typed` rewrites a value so that each of those types becomes a msgpack extension
(``Ext``) naming it, which no plain value can encode to; JSON-like values pass unchanged.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import sys
import uuid
from pathlib import Path
from typing import Any

import msgspec

from ._external import ExternalArtifact

_canonical = msgspec.msgpack.Encoder(order="deterministic")
_PLAIN = frozenset({str, int, float, bool, bytes, type(None)})

# Extension codes (part of the key: never renumber, only add).
_TUPLE, _SET, _FROZENSET, _DICT, _ENUM, _DATETIME, _DATE, _TIME = 1, 2, 3, 4, 5, 6, 7, 8
_DECIMAL, _UUID, _DATACLASS, _STRUCT, _TIMEDELTA, _EXTERNAL = 9, 10, 11, 12, 13, 14


def typed(value: Any) -> Any:
    """``value`` with its lossy types made explicit (see the module doc); what msgspec cannot
    encode at all is returned as it is, for the encoder to reject."""
    cls = type(value)
    if cls in _PLAIN:
        return value
    if cls is list:
        return [typed(item) for item in value]
    if cls is dict:
        if all(type(key) is str for key in value):
            return {key: typed(item) for key, item in value.items()}
        pairs = sorted(_canonical.encode([typed(k), typed(v)]) for k, v in value.items())
        return _ext(_DICT, [msgspec.Raw(pair) for pair in pairs])
    if cls is tuple:
        return _ext(_TUPLE, [typed(item) for item in value])
    if cls is set or cls is frozenset:
        items = sorted(_canonical.encode(typed(item)) for item in value)
        return _ext(_SET if cls is set else _FROZENSET, [msgspec.Raw(item) for item in items])
    if isinstance(value, enum.Enum):
        return _ext(_ENUM, [qualified_name(cls), typed(value.value)])
    if isinstance(value, datetime.datetime):  # before date: a datetime is a date
        return _ext(_DATETIME, value.isoformat())
    if isinstance(value, datetime.date):
        return _ext(_DATE, value.isoformat())
    if isinstance(value, datetime.time):
        return _ext(_TIME, value.isoformat())
    if isinstance(value, datetime.timedelta):
        return _ext(_TIMEDELTA, [value.days, value.seconds, value.microseconds])
    if isinstance(value, ExternalArtifact):  # by its content, as any input
        return _ext(_EXTERNAL, value.content_hash())
    if isinstance(value, decimal.Decimal):
        return _ext(_DECIMAL, str(value))
    if isinstance(value, uuid.UUID):
        return _ext(_UUID, value.bytes)
    if isinstance(value, msgspec.Struct):
        fields = {f: typed(getattr(value, f)) for f in value.__struct_fields__}
        return _ext(_STRUCT, [qualified_name(cls), fields])
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: typed(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return _ext(_DATACLASS, [qualified_name(cls), fields])
    return value


def _ext(code: int, payload: Any) -> msgspec.msgpack.Ext:
    return msgspec.msgpack.Ext(code, _canonical.encode(payload))


def qualified_name(obj: Any) -> str:
    """``module:qualname`` of a class or function (of ``obj``'s type for anything else), a
    script's module named by its file (see :func:`module_label`)."""
    module = module_label(getattr(obj, "__module__", None))
    return f"{module}:{getattr(obj, '__qualname__', type(obj).__name__)}"


def module_label(name: str | None) -> str | None:
    """A module's name, except that a script run as ``__main__`` (``python flows.py``), or
    loaded by ``evenflow run`` under a name of its own, is named by its file (``flows``), as
    importing it names it: its steps keep their cache keys whichever way it was started."""
    if name == "__main__" or (name or "").startswith("evenflow_file_"):
        module = sys.modules.get(name or "")
        file = getattr(module, "__evenflow_file__", None) or getattr(module, "__file__", None)
        if file:
            return Path(file).stem
    return name
