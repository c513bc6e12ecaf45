"""The materializer contract, ZenML-compatible, and the import paths that name things in events.

A materializer turns one Python value into files and back. Two protocols exist:

* **Directory** (ZenML's): ``save(data)`` writes any files under ``self.uri``, a directory the
  materializer owns, and ``load(data_type)`` reads them back. Every user materializer works so.
* **Bytes** (private, for the built-ins): a materializer that defines ``_to_bytes(data) -> bytes``
  and ``_from_bytes(data, data_type)`` is stored as a single file, with no directory and no
  materializer instance per value. :class:`_BytesMaterializer` also implements the directory
  protocol on top of it, so a built-in still works where ZenML code calls ``save``/``load``.

Events name a materializer and a value's type by import path, ``"module:QualName"``
(:func:`import_path`); :func:`resolve_import_path` turns one back into the object.
"""

from __future__ import annotations

import builtins
import importlib
import os
import shutil
import types
from collections.abc import Iterator
from typing import IO, Any, ClassVar

__all__ = [
    "BaseMaterializer",
    "LocalFiles",
    "Unsupported",
    "import_path",
    "resolve_import_path",
    "uses_bytes_protocol",
]


class Unsupported(Exception):  # a signal between modules, never shown to users
    """Raised by a built-in ``_to_bytes`` for a value it cannot represent faithfully.

    The store then falls back to cloudpickle. ``type`` is the offending (possibly nested) type;
    ``reason`` says why, for the warning.
    """

    def __init__(self, type_: type[Any], reason: str = "no materializer handles it") -> None:
        super().__init__(f"{import_path(type_)}: {reason}")
        self.type = type_
        self.reason = reason


class LocalFiles:
    """The ``artifact_store`` a materializer receives: ZenML's file API over the local disk.

    ZenML materializers write ``with self.artifact_store.open(os.path.join(self.uri, "x"), "w")``;
    plain ``open`` works just as well here, since artifacts always live on the local disk.
    """

    def open(self, path: str, mode: str = "r") -> IO[Any]:
        """Open ``path`` as :func:`open` does."""
        return builtins.open(path, mode)

    def exists(self, path: str) -> bool:
        """Whether ``path`` exists."""
        return os.path.exists(path)

    def isdir(self, path: str) -> bool:
        """Whether ``path`` is a directory."""
        return os.path.isdir(path)

    def listdir(self, path: str) -> list[str]:
        """The names in directory ``path``."""
        return os.listdir(path)

    def makedirs(self, path: str) -> None:
        """Create ``path`` and its parents; an existing directory is fine."""
        os.makedirs(path, exist_ok=True)

    def mkdir(self, path: str) -> None:
        """Create the directory ``path``; an existing directory is fine."""
        os.makedirs(path, exist_ok=True)

    def remove(self, path: str) -> None:
        """Delete the file ``path``."""
        os.remove(path)

    def rmtree(self, path: str) -> None:
        """Delete the directory ``path`` and everything under it."""
        shutil.rmtree(path)

    def copyfile(self, src: str, dst: str, overwrite: bool = False) -> None:
        """Copy the file ``src`` to ``dst``, refusing to overwrite unless ``overwrite``."""
        if not overwrite and os.path.exists(dst):
            raise FileExistsError(dst)
        shutil.copyfile(src, dst)

    def size(self, path: str) -> int:
        """The size of file ``path`` in bytes."""
        return os.path.getsize(path)

    def walk(self, top: str) -> Iterator[tuple[str, list[str], list[str]]]:
        """:func:`os.walk` over ``top``."""
        return os.walk(top)


class BaseMaterializer:
    """Base class of every materializer, compatible with ZenML's ``BaseMaterializer``.

    Subclass it, list the types you handle in ``ASSOCIATED_TYPES``, and write ``save``/``load``
    against files under ``self.uri`` (a directory the store created for this artifact alone)::

        class TextMaterializer(BaseMaterializer):
            ASSOCIATED_TYPES = (Text,)

            def save(self, data: Text) -> None:
                with open(os.path.join(self.uri, "data.txt"), "w") as f:
                    f.write(data.body)

            def load(self, data_type: type[Text]) -> Text:
                with open(os.path.join(self.uri, "data.txt")) as f:
                    return data_type(f.read())

    Pass it to a step with ``output_materializers=TextMaterializer`` (or a dict per output).
    The artifact's content hash covers the directory's relative paths and file bytes, so
    ``save`` should write the same bytes for equal values.
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = ()
    ASSOCIATED_ARTIFACT_TYPE: ClassVar[str] = "data"

    def __init__(self, uri: str, artifact_store: object | None = None) -> None:
        """Bind the materializer to the directory ``uri`` (and ZenML's ``artifact_store``)."""
        self.uri = uri
        self.artifact_store: Any = artifact_store if artifact_store is not None else LocalFiles()

    def load(self, data_type: type[Any]) -> Any:
        """Read the value stored under ``self.uri``; ``data_type`` is the type that was saved."""
        raise NotImplementedError(f"{type(self).__qualname__} does not implement load()")

    def save(self, data: Any) -> None:
        """Write ``data`` as files under ``self.uri``."""
        raise NotImplementedError(f"{type(self).__qualname__} does not implement save()")

    def extract_metadata(self, data: Any) -> dict[str, Any]:
        """Metadata to record with the artifact (none by default)."""
        return {}


class _BytesMaterializer(BaseMaterializer):
    """A materializer stored as one file of bytes; see the module docstring."""

    FILENAME: ClassVar[str] = "data"

    def _to_bytes(self, data: Any) -> bytes:
        raise NotImplementedError

    def _from_bytes(self, data: bytes, data_type: type[Any]) -> Any:
        raise NotImplementedError

    def save(self, data: Any) -> None:
        """Write ``data`` as one file under ``self.uri`` (ZenML's directory protocol)."""
        with open(os.path.join(self.uri, self.FILENAME), "wb") as f:
            f.write(self._to_bytes(data))

    def load(self, data_type: type[Any]) -> Any:
        """Read the file :meth:`save` wrote."""
        with open(os.path.join(self.uri, self.FILENAME), "rb") as f:
            return self._from_bytes(f.read(), data_type)


_bytes_protocol_cache: dict[type[BaseMaterializer], bool] = {}  # memo of a pure function


def uses_bytes_protocol(cls: type[BaseMaterializer]) -> bool:
    """Whether the store may keep ``cls``'s artifacts as a single file.

    True when ``cls`` has ``_to_bytes`` and ``_from_bytes`` and no class below the one that
    defines ``_to_bytes`` overrides ``save`` or ``load`` (a user subclass of a built-in that
    rewrites ``save`` means the directory protocol).
    """
    if not (
        callable(getattr(cls, "_to_bytes", None)) and callable(getattr(cls, "_from_bytes", None))
    ):
        return False
    for klass in cls.__mro__:
        if "_to_bytes" in vars(klass):
            return True
        if "save" in vars(klass) or "load" in vars(klass):
            return False
    return False  # pragma: no cover - the getattr above found _to_bytes in the MRO


# Types that live in ``builtins`` by qualname but are not attributes of it.
_HIDDEN_BUILTINS: dict[str, type[Any]] = {
    "NoneType": types.NoneType,
    "ellipsis": types.EllipsisType,
    "NotImplementedType": types.NotImplementedType,
}


def import_path(obj: Any) -> str:
    """``"module:QualName"`` of a class or function (``"builtins:int"``)."""
    return f"{obj.__module__}:{obj.__qualname__}"


def resolve_import_path(path: str) -> Any:
    """The object an :func:`import_path` string names, importing its module if needed.

    Raises:
        ImportError: the module cannot be imported.
        AttributeError: the module has no such attribute (or the path is malformed).
    """
    module_name, sep, qualname = path.partition(":")
    if not sep or not module_name or not qualname:
        raise AttributeError(f"malformed import path {path!r} (expected 'module:QualName')")
    if module_name == "builtins" and qualname in _HIDDEN_BUILTINS:
        return _HIDDEN_BUILTINS[qualname]
    if "<locals>" in qualname:
        raise AttributeError(f"{path!r} was defined inside a function and cannot be imported")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj
