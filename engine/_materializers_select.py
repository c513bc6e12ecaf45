"""Which materializer stores a value of a given type.

In order: a materializer given explicitly (a step's ``output_materializers``) always wins; then
the most specific registered one along the type's MRO (materializers passed to the store first,
then the built-ins); then msgspec for dataclasses, the container materializer for named
tuples; then cloudpickle.

The built-ins for plain values claim their types *exactly*: a subclass of ``dict`` or ``int``
may carry state or invariants that rebuilding it from a plain ``dict`` or ``int`` would lose, so
it is pickled instead (enums, named tuples and bools are stored faithfully by their own rules).
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple, Protocol, cast

from ._materializers import BaseMaterializer, LocalFiles, import_path, resolve_import_path
from ._materializers import uses_bytes_protocol as _uses_bytes
from ._materializers_builtin import (
    _TYPED_BASES,
    BuiltInContainerMaterializer,
    BuiltInMaterializer,
    BytesMaterializer,
    MsgspecMaterializer,
    is_named_tuple,
)
from ._materializers_extra import CloudpickleMaterializer, NumpyMaterializer
from .errors import ArtifactError

__all__ = [
    "BUILTIN_MATERIALIZERS",
    "BytesCodec",
    "Plan",
    "Plans",
    "registry_of",
    "select_materializer",
]

HASH_VERSION = b"evenflow-artifact/1"


class _Entry(NamedTuple):
    materializer: type[BaseMaterializer]
    exact: bool  # claims only this very type, not its subclasses


def _builtin_entries() -> dict[str, _Entry]:
    entries: dict[str, _Entry] = {}
    for materializer in (BuiltInMaterializer, BytesMaterializer, BuiltInContainerMaterializer):
        for cls in materializer.ASSOCIATED_TYPES:
            entries[import_path(cls)] = _Entry(materializer, exact=True)
    for cls in _TYPED_BASES:
        entries[import_path(cls)] = _Entry(MsgspecMaterializer, exact=False)
    # Keyed by name so that numpy need not be imported to know about it.
    entries["numpy:ndarray"] = _Entry(NumpyMaterializer, exact=True)
    entries["numpy:generic"] = _Entry(NumpyMaterializer, exact=False)
    return entries


_BUILTINS: Mapping[str, _Entry] = _builtin_entries()

BUILTIN_MATERIALIZERS: tuple[type[BaseMaterializer], ...] = (
    BuiltInMaterializer,
    BytesMaterializer,
    BuiltInContainerMaterializer,
    MsgspecMaterializer,
    NumpyMaterializer,
    CloudpickleMaterializer,
)
"""Every built-in materializer class."""


def registry_of(
    materializers: Iterable[type[BaseMaterializer]],
) -> dict[type[Any], type[BaseMaterializer]]:
    """A type -> materializer registry from materializer classes' ``ASSOCIATED_TYPES``."""
    registry: dict[type[Any], type[BaseMaterializer]] = {}
    for materializer in materializers:
        for cls in materializer.ASSOCIATED_TYPES:
            registry[cls] = materializer
    return registry


def select_materializer(
    cls: type[Any], registry: Mapping[type[Any], type[BaseMaterializer]] | None = None
) -> type[BaseMaterializer]:
    """The materializer for values of type ``cls`` (see the module docstring for the order).

    ``registry`` holds extra materializers (type -> materializer), preferred over the built-ins
    at the same point of the MRO.
    """
    for klass in cls.__mro__:
        if registry and klass in registry:
            return registry[klass]
        entry = _BUILTINS.get(import_path(klass))
        if entry is not None and (klass is cls or not entry.exact):
            return entry.materializer
    if dataclasses.is_dataclass(cls):
        return MsgspecMaterializer
    if is_named_tuple(cls):
        return BuiltInContainerMaterializer
    return CloudpickleMaterializer


class BytesCodec(Protocol):
    """The private bytes protocol (see :mod:`engine._materializers`)."""

    def _to_bytes(self, data: Any) -> bytes: ...
    def _from_bytes(self, data: bytes, data_type: type[Any]) -> Any: ...


class Plan(NamedTuple):
    """How values of one type are stored by one materializer (computed once per pair)."""

    materializer: type[BaseMaterializer]
    materializer_path: str
    type_name: str
    codec: BytesCodec | None  # None: the directory protocol
    prefix: Any  # a blake2b primed with the hash header; copied per value, never updated
    explicit: bool


class Plans:
    """The store's materializer bookkeeping, both ways, cached: which materializer saves a type
    (:meth:`plan`), and which materializer and type an artifact's import paths name
    (:meth:`materializer`, :meth:`data_type`).

    Every cache maps a key to a value that never changes, so a race only computes it twice;
    dict operations are atomic under the GIL, so no lock is needed.
    """

    def __init__(self, materializers: Iterable[type[BaseMaterializer]] = ()) -> None:
        self.registry = registry_of(materializers)
        self.auto: dict[type[Any], Plan] = {}
        self._explicit: dict[tuple[type[BaseMaterializer], type[Any]], Plan] = {}
        self._types: dict[str, type[Any]] = {}
        self._by_path: dict[str, type[BaseMaterializer]] = {
            import_path(m): m for m in (*BUILTIN_MATERIALIZERS, *self.registry.values())
        }

    def plan(
        self,
        cls: type[Any],
        materializer: type[BaseMaterializer] | None = None,
        data_type: type[Any] | None = None,
        what: str = "",
    ) -> Plan:
        """The plan for saving a ``cls`` value, with ``materializer`` if one was given.

        Raises:
            ArtifactError: ``materializer`` lists ``ASSOCIATED_TYPES`` and handles neither
                ``cls`` nor ``data_type``; ``what`` starts the message.
        """
        if materializer is None:
            plan = self.auto.get(cls)
            if plan is None:
                selected = select_materializer(cls, self.registry)
                plan = self.auto[cls] = self._make(selected, cls, explicit=False)
            return plan
        handled = materializer.ASSOCIATED_TYPES
        candidates = [c for c in (cls, data_type) if isinstance(c, type)]
        if handled and not any(issubclass(c, handled) for c in candidates):
            names = ", ".join(t.__qualname__ for t in handled)
            raise ArtifactError(
                f"{what}: materializer {import_path(materializer)} handles only {names}"
            )
        plan = self._explicit.get((materializer, cls))
        if plan is None:
            plan = self._explicit[materializer, cls] = self._make(materializer, cls, True)
        return plan

    def _make(self, materializer: type[BaseMaterializer], cls: type[Any], explicit: bool) -> Plan:
        path, type_name = import_path(materializer), import_path(cls)
        self._by_path.setdefault(path, materializer)
        self._types.setdefault(type_name, cls)  # lets this process load types it cannot import
        header = b"\0".join((HASH_VERSION, path.encode(), type_name.encode(), b""))
        codec = None
        if _uses_bytes(materializer):
            codec = cast(BytesCodec, materializer("", LocalFiles()))
        prefix = hashlib.blake2b(header, digest_size=32)
        return Plan(materializer, path, type_name, codec, prefix, explicit)

    def materializer(self, path: str, what: str) -> type[BaseMaterializer]:
        """The materializer class an artifact's import path names.

        Raises:
            ArtifactError: it cannot be imported or is not a materializer.
        """
        materializer = self._by_path.get(path)
        if materializer is None:
            try:
                found = resolve_import_path(path)
            except Exception as exc:
                raise ArtifactError(
                    f"{what}: cannot import its materializer {path!r}: {exc}"
                ) from exc
            if not (isinstance(found, type) and issubclass(found, BaseMaterializer)):
                raise ArtifactError(f"{what}: {path!r} is not a materializer")
            materializer = self._by_path[path] = found
        return materializer

    def data_type(
        self, type_name: str, materializer: type[BaseMaterializer], what: str
    ) -> type[Any]:
        """The type an artifact's ``type_name`` names (``object`` for an unimportable pickle).

        Raises:
            ArtifactError: it cannot be imported (and the materializer needs it).
        """
        data_type = self._types.get(type_name)
        if data_type is None:
            try:
                found = resolve_import_path(type_name)
                if not isinstance(found, type):
                    raise TypeError(f"{type_name!r} is not a class")
            except Exception as exc:
                if issubclass(materializer, CloudpickleMaterializer):
                    return object  # a pickle carries its own classes
                raise ArtifactError(f"{what}: cannot import its type {type_name!r}: {exc}") from exc
            data_type = self._types[type_name] = found
        return data_type
