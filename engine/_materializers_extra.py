"""The numpy materializer (used only when a value is a numpy object) and the cloudpickle fallback.

numpy is never imported here at module level: a value that is a numpy array proves numpy is
already imported, and loading one imports it through the recorded type's import path.

cloudpickle stores anything, but the result loads only under compatible Python and library
versions, and loading a pickle runs code chosen by whoever wrote it: **only load artifacts
from a store you trust.** Each type stored this way is logged once per process.
"""

from __future__ import annotations

import importlib
import io
import pickle
import threading
import weakref
from typing import Any, ClassVar

import cloudpickle

from ._materializers import Unsupported, _BytesMaterializer, import_path

__all__ = ["CloudpickleMaterializer", "NumpyMaterializer", "warn_pickled"]


def _numpy() -> Any:
    # Imported by name: numpy is optional, and typing it would need it installed for mypy.
    return importlib.import_module("numpy")


class NumpyMaterializer(_BytesMaterializer):
    """numpy arrays and scalars, as ``.npy`` bytes written with ``allow_pickle=False``.

    Arrays of Python objects (``dtype=object``) would need pickle and fall back to cloudpickle.
    """

    # Resolved lazily by the selection (``numpy:ndarray``, ``numpy:generic``), never imported.
    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = ()

    def _to_bytes(self, data: Any) -> bytes:
        np = _numpy()

        buffer = io.BytesIO()
        try:
            np.save(buffer, np.asarray(data), allow_pickle=False)
        except ValueError as exc:  # object arrays
            raise Unsupported(type(data), "its dtype holds Python objects") from exc
        return buffer.getvalue()

    def _from_bytes(self, data: bytes, data_type: type[Any]) -> Any:
        np = _numpy()

        array = np.load(io.BytesIO(data), allow_pickle=False)
        if isinstance(data_type, type) and issubclass(data_type, np.generic):
            return array[()]  # a 0-d array's element is the numpy scalar
        return array


class CloudpickleMaterializer(_BytesMaterializer):
    """Anything else, with cloudpickle. Only load artifacts from a store you trust.

    The store uses it for values no other materializer handles, and logs a warning naming the
    type once per process (``artifact_pickled``).
    """

    ASSOCIATED_TYPES: ClassVar[tuple[type[Any], ...]] = (object,)

    def _to_bytes(self, data: Any) -> bytes:
        return bytes(cloudpickle.dumps(data, protocol=pickle.HIGHEST_PROTOCOL))

    def _from_bytes(self, data: bytes, data_type: type[Any]) -> Any:
        return pickle.loads(data)  # documented: only load artifacts from a store you trust

    def save(self, data: Any) -> None:
        """Pickle ``data`` into ``self.uri`` (warning once per type, like the store does)."""
        warn_pickled(type(data))
        super().save(data)


# Per process by contract ("warn once per type"), so this one piece of state is module level.
# Weak, so that classes created at run time can still be collected.
_warned: weakref.WeakSet[type[Any]] = weakref.WeakSet()
_warned_lock = threading.Lock()


def warn_pickled(cls: type[Any], reason: str = "no materializer handles it") -> None:
    """Log ``artifact_pickled`` for ``cls`` the first time this process pickles one."""
    with _warned_lock:
        if cls in _warned:
            return
        _warned.add(cls)
    import structlog  # only when there is something to say

    structlog.get_logger("evenflow.artifacts").warning(
        "artifact_pickled",
        type=import_path(cls),
        reason=reason,
        detail=(
            f"{cls.__qualname__} is stored with cloudpickle: it loads only under compatible "
            "Python and library versions, and loading a pickle runs code, so only load "
            "artifacts from a store you trust. A materializer given with "
            "output_materializers=... avoids this."
        ),
    )
