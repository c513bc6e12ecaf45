"""Built-in materializers for plain Python values, stored as msgpack with no pickle involved.

Containers keep their exact shape: msgpack has only arrays and maps, so tuples, sets,
frozensets, ints beyond 64 bits and dicts whose keys are not all ``str`` are written as msgpack
extension values (codes below, never renumbered) and rebuilt on load, nested values included.
Sets are written in a canonical order, so an equal set always gets the same content hash.

Named tuples are containers too: their fields are packed as above and the class is recorded
by import path. msgspec-typed values (Structs, dataclasses, enums, datetimes, UUIDs, decimals)
are encoded by msgspec and decoded with ``type=``; nested in a container they carry their
type's import path. A value any of these cannot represent raises :class:`Unsupported`, and the
store falls back to cloudpickle for the whole artifact.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import uuid
from typing import Any, ClassVar

import msgspec

from ._materializers import Unsupported, _BytesMaterializer, import_path, resolve_import_path

__all__ = [
    "BuiltInMaterializer",
    "BytesMaterializer",
    "BuiltInContainerMaterializer",
    "MsgspecMaterializer",
    "is_msgspec_typed",
    "is_named_tuple",
]

# msgpack extension codes: part of the artifact format, never renumbered or reused.
_EXT_TUPLE = 1
_EXT_SET = 2
_EXT_FROZENSET = 3
_EXT_DICT = 4  # a dict with non-str keys, as the flat array [k0, v0, k1, v1, ...]
_EXT_BIGINT = 5  # an int outside msgpack's range, as its decimal ASCII digits
_EXT_TYPED = 6  # [type import path, msgspec msgpack of the value]
_EXT_BYTEARRAY = 7
_EXT_NAMEDTUPLE = 8  # [type import path, [field values]]

_INT_MIN = -(2**63)
_INT_MAX = 2**64 - 1

_encode = msgspec.msgpack.encode

_TYPED_BASES: tuple[type[Any], ...] = (
    msgspec.Struct,
    enum.Enum,
    datetime.date,  # datetime.datetime included
    datetime.time,
    datetime.timedelta,
    uuid.UUID,
    decimal.Decimal,
)


_typed_cache: dict[type[Any], bool] = {}  # a memo of a pure function of the class


def is_msgspec_typed(cls: type[Any]) -> bool:
    """Whether msgspec can encode ``cls`` and decode it back by type, and it can be imported."""
    known = _typed_cache.get(cls)
    if known is None:
        known = _typed_cache[cls] = _is_msgspec_typed(cls)
    return known


def _is_msgspec_typed(cls: type[Any]) -> bool:
    if not _importable(cls):
        return False  # no import path to rebuild it from; cloudpickle stores it by value
    return issubclass(cls, _TYPED_BASES) or dataclasses.is_dataclass(cls)


def _importable(cls: type[Any]) -> bool:
    """Whether another process can import ``cls`` by the path recorded for it: not a class
    defined in a function, nor in a script run as ``__main__`` (``python flows.py``; another
    process's ``__main__`` is another program)."""
    return "<locals>" not in cls.__qualname__ and cls.__module__ != "__main__"


def is_named_tuple(cls: type[Any]) -> bool:
    """Whether ``cls`` is a named tuple class that can be imported (rebuilt with ``_make``)."""
    return issubclass(cls, tuple) and hasattr(cls, "_fields") and _importable(cls)


def _typed_bytes(value: Any) -> bytes:
    """msgspec's msgpack of a typed value, checked to decode back to the very same value.

    Decoding by type is not enough: a field typed ``Any`` (or a bare ``list``) comes back as
    plain data (a tuple as a list, a date as a string, a dataclass as a dict), and an aware
    datetime comes back in UTC. Such a value is :class:`Unsupported` here, so that it is
    stored by a materializer that keeps it whole.
    """
    cls = type(value)
    try:
        data = _encode(value)
        decoded = msgspec.msgpack.decode(data, type=cls)
    except (TypeError, ValueError, msgspec.MsgspecError) as exc:
        raise Unsupported(cls, f"msgspec cannot round-trip it: {exc}") from exc
    if not _same(decoded, value):
        raise Unsupported(cls, "msgspec does not give it back as it was (a field typed Any?)")
    return data


def _same(a: Any, b: Any, depth: int = 0) -> bool:
    """Whether ``a`` is ``b`` again: equal, of the same types all the way down, aware times
    at the same UTC offset."""
    cls = type(a)
    if cls is not type(b) or depth > 100:
        return False
    if cls is float:
        return bool(a == b or (a != a and b != b))  # NaN is NaN again
    if isinstance(a, datetime.datetime | datetime.time):
        return bool(a == b) and a.utcoffset() == b.utcoffset()
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(_same(x, y, depth + 1) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):  # keys in the same order, of the same types, values the same
        return (
            len(a) == len(b)
            and all(type(k) is type(j) and k == j for k, j in zip(a, b, strict=True))
            and all(_same(v, b[k], depth + 1) for k, v in a.items())
        )
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        return all(
            _same(getattr(a, f.name), getattr(b, f.name), depth + 1) for f in dataclasses.fields(a)
        )
    if isinstance(a, msgspec.Struct):
        return all(_same(getattr(a, f), getattr(b, f), depth + 1) for f in a.__struct_fields__)
    return bool(a == b)


def _pack(obj: Any) -> Any:
    """``obj`` rewritten so that msgspec's msgpack encodes it losslessly (see the docstring)."""
    cls = type(obj)
    if obj is None or cls is str or cls is float or cls is bool or cls is bytes:
        return obj
    if cls is int:
        return obj if _INT_MIN <= obj <= _INT_MAX else msgspec.msgpack.Ext(_EXT_BIGINT, b"%d" % obj)
    if cls is list:
        return [_pack(item) for item in obj]
    if cls is dict:
        if all(type(key) is str for key in obj):
            return {key: _pack(value) for key, value in obj.items()}
        flat: list[Any] = []
        for key, value in obj.items():
            flat.append(_pack(key))
            flat.append(_pack(value))
        return msgspec.msgpack.Ext(_EXT_DICT, _encode(flat))
    if cls is tuple:
        return msgspec.msgpack.Ext(_EXT_TUPLE, _encode([_pack(item) for item in obj]))
    if cls is set or cls is frozenset:
        # Set iteration order depends on hash randomization; sort the encoded items instead.
        items = sorted(_encode(_pack(item)) for item in obj)
        code = _EXT_SET if cls is set else _EXT_FROZENSET
        return msgspec.msgpack.Ext(code, _encode([msgspec.Raw(item) for item in items]))
    if cls is bytearray:
        return msgspec.msgpack.Ext(_EXT_BYTEARRAY, bytes(obj))
    if is_named_tuple(cls):
        fields = [_pack(item) for item in obj]
        return msgspec.msgpack.Ext(_EXT_NAMEDTUPLE, _encode([import_path(cls), fields]))
    if is_msgspec_typed(cls):
        return msgspec.msgpack.Ext(_EXT_TYPED, _encode([import_path(cls), _typed_bytes(obj)]))
    raise Unsupported(cls)


def _ext_hook(code: int, data: memoryview) -> Any:
    if code == _EXT_TUPLE:
        return tuple(_unpack(data))
    if code == _EXT_SET:
        return set(_unpack(data))
    if code == _EXT_FROZENSET:
        return frozenset(_unpack(data))
    if code == _EXT_DICT:
        flat = _unpack(data)
        return dict(zip(flat[::2], flat[1::2], strict=True))
    if code == _EXT_BIGINT:
        return int(bytes(data))
    if code == _EXT_BYTEARRAY:
        return bytearray(data)
    if code == _EXT_TYPED:
        path, raw = _unpack(data)
        cls = resolve_import_path(path)
        if not (isinstance(cls, type) and is_msgspec_typed(cls)):
            raise TypeError(f"{path!r} is not a msgspec-typed class")
        return msgspec.msgpack.decode(raw, type=cls)
    if code == _EXT_NAMEDTUPLE:
        path, fields = _unpack(data)
        cls = resolve_import_path(path)
        if not (isinstance(cls, type) and is_named_tuple(cls)):
            raise TypeError(f"{path!r} is not a named tuple class")
        return cls._make(fields)  # type: ignore[attr-defined]
    raise ValueError(f"unknown msgpack extension code {code}")


def _unpack(data: bytes | memoryview) -> Any:
    return msgspec.msgpack.decode(data, ext_hook=_ext_hook)


class BuiltInMaterializer(_BytesMaterializer):
    """``None``, ``bool``, ``int`` (any size), ``float`` as msgpack; ``str`` as UTF-8 text."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (type(None), bool, int, float, str)

    def _to_bytes(self, data: Any) -> bytes:
        if type(data) is str:
            return data.encode("utf-8", "surrogatepass")
        return _encode(_pack(data))

    def _from_bytes(self, data: bytes, data_type: type[Any]) -> Any:
        if data_type is str:
            return data.decode("utf-8", "surrogatepass")
        return _unpack(data)


class BytesMaterializer(_BytesMaterializer):
    """``bytes`` and ``bytearray``, stored as they are."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (bytes, bytearray)

    def _to_bytes(self, data: Any) -> bytes:
        return bytes(data)

    def _from_bytes(self, data: bytes, data_type: type[Any]) -> Any:
        return bytearray(data) if data_type is bytearray else data


class BuiltInContainerMaterializer(_BytesMaterializer):
    """``list``, ``tuple``, ``dict``, ``set``, ``frozenset`` and named tuples, as msgpack."""

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (list, tuple, dict, set, frozenset)

    def _to_bytes(self, data: Any) -> bytes:
        try:
            return _encode(_pack(data))
        except RecursionError as exc:
            raise Unsupported(type(data), "it is nested too deeply for msgpack") from exc
        except UnicodeEncodeError as exc:
            raise Unsupported(type(data), "it holds a str that is not valid UTF-8") from exc

    def _from_bytes(self, data: bytes, data_type: type[Any]) -> Any:
        return _unpack(data)


class MsgspecMaterializer(_BytesMaterializer):
    """msgspec Structs, dataclasses, enums, date/time values, UUIDs and decimals.

    The value is msgspec's msgpack; the type comes from the artifact's recorded type path and
    the value is rebuilt with ``msgspec.msgpack.decode(data, type=data_type)``. A value that
    would not decode back (a field holding a value its annotation rejects) is not stored this
    way: saving checks the decode first. Fields annotated ``Any`` come back as msgspec decodes
    them (a tuple there comes back as a list).
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = _TYPED_BASES

    def _to_bytes(self, data: Any) -> bytes:
        if not is_msgspec_typed(type(data)):
            raise Unsupported(type(data), "msgspec cannot rebuild it from an import path")
        return _typed_bytes(data)

    def _from_bytes(self, data: bytes, data_type: type[Any]) -> Any:
        return msgspec.msgpack.decode(data, type=data_type)
