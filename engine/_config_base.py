"""The base of the read-only configuration values: :class:`ConfigObject`.

Configuration objects are read-only value objects built on :class:`ConfigObject`: their
``__init__`` validates and normalizes each field, and every bad value raises
:class:`~engine.errors.ConfigurationError` naming the class, the field and the value. An unknown
keyword is a ``ConfigurationError`` too (never a bare ``TypeError``), with a "did you mean" hint.
:func:`to_jsonable` gives the form recorded in the event log.
"""

from __future__ import annotations

import datetime as dt
import enum
import inspect
from collections.abc import Mapping
from typing import Any, ClassVar, Self

from ._config_checks import invalid, unknown_key
from .errors import ConfigurationError


def to_jsonable(value: Any) -> Any:
    """``value`` with tuples as lists, enums as values, datetimes as ISO strings and config
    objects as their ``to_dict()``, recursively: something msgspec (and JSON) can encode."""
    if isinstance(value, ConfigObject):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    return value


def _rebuild(cls: type[ConfigObject], values: dict[str, Any]) -> ConfigObject:
    return cls(**values)


_DEFAULTS: dict[type[ConfigObject], dict[str, Any]] = {}


class ConfigObject:
    """Base of the read-only configuration values.

    A subclass declares its fields as annotations (their order is the ``repr``/``to_dict``
    order) and writes a keyword ``__init__`` that validates and calls ``self._set(...)``. This
    base turns unknown or missing keywords into :class:`ConfigurationError` and provides
    ``==``, ``hash``, ``repr``, ``replace``, ``to_dict`` and ``from_dict``. (Not dataclasses:
    generating their methods would cost ``import engine`` milliseconds per class.) Pickling and
    copying go through ``__init__`` again, so they re-validate.
    """

    _field_names: ClassVar[tuple[str, ...]] = ()
    _allowed: ClassVar[frozenset[str]] = frozenset()
    _positional: ClassVar[tuple[str, ...]] = ()
    _required: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._field_names = tuple(inspect.get_annotations(cls))
        init = cls.__dict__.get("__init__")
        if init is None:
            return
        code = init.__code__
        names = code.co_varnames[: code.co_argcount + code.co_kwonlyargcount]
        positional = names[1 : code.co_argcount]
        required_pos = positional[: len(positional) - len(init.__defaults__ or ())]
        kw_defaults = init.__kwdefaults__ or {}
        required_kw = tuple(n for n in names[code.co_argcount :] if n not in kw_defaults)
        cls._allowed = frozenset(names[1:])
        cls._positional = positional
        cls._required = required_pos + required_kw

    def __new__(cls, *args: Any, **kwargs: Any) -> Self:
        for key in kwargs:
            if key not in cls._allowed:
                raise ConfigurationError(unknown_key(cls.__name__, key, cls._allowed))
        given = {*cls._positional[: len(args)], *kwargs}
        for name in cls._required:
            if name not in given:
                raise ConfigurationError(f"{cls.__name__}: {name} is required")
        return super().__new__(cls)

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self._field_names}

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only; use .replace(...)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is read-only; use .replace(...)")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return self._fields() == other._fields()

    def __hash__(self) -> int:
        return hash((type(self), tuple(self._fields().items())))

    def replace(self, **changes: Any) -> Self:
        """A validated copy with ``changes`` applied."""
        return type(self)(**{**self._fields(), **changes})

    def _non_default(self) -> dict[str, Any]:
        """The fields that differ from a default-constructed instance (all non-``None`` fields
        when the class has no default instance)."""
        cls = type(self)
        defaults = _DEFAULTS.get(cls)
        if defaults is None:
            try:
                defaults = cls()._fields()
            except ConfigurationError:  # a required field, or "exactly one of" (Schedule)
                defaults = dict(cls.__init__.__kwdefaults__ or {})
            _DEFAULTS[cls] = defaults
        return {
            name: value
            for name, value in self._fields().items()
            if value is not None
            and value != ()
            and (name not in defaults or defaults[name] != value)
        }

    def __repr__(self) -> str:
        body = ", ".join(f"{name}={value!r}" for name, value in self._non_default().items())
        return f"{type(self).__name__}({body})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), self._fields()))

    def to_dict(self) -> dict[str, Any]:
        """Every field, JSON-friendly (for the event log); ``from_dict`` reverses it."""
        return {name: to_jsonable(value) for name, value in self._fields().items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Build (and validate) an instance from a mapping such as ``to_dict()``'s output.

        Raises:
            ConfigurationError: ``data`` is not a mapping, or has an unknown key or bad value.
        """
        if not isinstance(data, Mapping):
            raise invalid(cls.__name__, "data", "a mapping", data)
        return cls(**{str(key): value for key, value in data.items()})
