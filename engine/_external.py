"""``ExternalArtifact``: a value handed to a step from outside the pipeline.

Its own module, importing nothing of the engine at import time: the compiler, the cache key and
the executor all look for it.
"""

from __future__ import annotations

from typing import Any


class ExternalArtifact:
    """A value handed to a step from outside the pipeline: ``train(data=ExternalArtifact(
    value=frame))`` in a pipeline body.

    The step receives ``value`` itself. What the log records (in ``run.created`` and the step's
    cache key) is its content hash, so a value whose content did not change is a cache hit;
    the value is stored as a version of an artifact named after the input when the step first
    runs. ``materializer``: as a step's ``output_materializers``.
    """

    __slots__ = ("_hash", "materializer", "value")

    def __init__(self, value: Any = None, *, materializer: Any = None) -> None:
        self.value = value
        self.materializer = materializer
        self._hash: str | None = None

    def content_hash(self) -> str:
        """The hash the artifact store gives the value (computed once; writes nothing).

        Raises:
            ArtifactError: the value cannot be serialized.
        """
        if self._hash is None:
            from ._artifacts import ArtifactStore
            from ._home import Home

            store = ArtifactStore(Home.resolve().artifacts)
            self._hash = store.hash_value(self.value, materializer=self.materializer)
        return self._hash

    def recorded(self) -> dict[str, str]:
        """What ``run.created`` records in its place: the content hash."""
        return {"external_artifact": self.content_hash()}

    def __repr__(self) -> str:
        return f"ExternalArtifact({type(self.value).__name__})"
