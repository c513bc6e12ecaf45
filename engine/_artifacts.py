"""The artifact store: step outputs as content-addressed files under ``$EVENFLOW_HOME/artifacts``.

Layout: ``<root>/<h[:2]>/<h>`` where ``h`` is the content hash, a file for the built-in
materializers (bytes protocol) or a directory for the others; ``<root>/.tmp`` holds writes in
progress. The hash is BLAKE2b over a header naming the materializer and the value's type, then
the bytes (or, for a directory, each relative path and file in sorted order). The header keeps
``"a"`` and ``b"a"`` apart, so equal bytes of different types never share a cache key.

Small values are not files: content of at most :data:`INLINE_MAX` bytes (from a built-in or other
bytes-protocol materializer) travels inside its reference as an RFC 2397 ``data:`` URI, so the
event log itself holds it. A no-op step's ``int`` then costs no file creation, no thread hop
and no later ``open`` to load it; the content hash is the same as if it had been written.

Invariants the concurrency relies on:

* A file or directory at ``<h[:2]>/<h>`` is complete: it is written under ``.tmp`` and moved
  into place with one ``os.replace``/``os.rename``. Two writers of the same hash write equal
  bytes, so whichever move lands last changes nothing.
* ``_known`` only ever holds hashes whose file this process has seen in place; a save of a
  known hash costs one ``stat`` (another process's ``gc`` may have removed the file: then it
  is written again) and no write. Files are deleted through :meth:`delete`, or noticed missing
  by a save, :meth:`load` or :meth:`exists`, which forget the hash.
* Set operations are atomic under the GIL, so no lock is needed; the materializer caches
  (:class:`~engine._materializers_select.Plans`) are safe for the same reason.
"""

from __future__ import annotations

import base64
import os
import random
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, cast

from events import ArtifactRef

from ._materializers import BaseMaterializer, LocalFiles, Unsupported, import_path
from ._materializers import uses_bytes_protocol as _uses_bytes
from ._materializers_builtin import BuiltInMaterializer
from ._materializers_extra import CloudpickleMaterializer, warn_pickled
from ._materializers_select import BytesCodec, Plan, Plans
from ._materializers_typecheck import check_output_type as check_output_type
from .errors import ArtifactError

__all__ = ["ArtifactStore", "check_output_type"]


_CACHE_ITEM = 64 * 1024
INLINE_MAX = 512
"""Largest content (bytes) kept inline in its reference instead of a file."""
DATA_URI = "data:;base64,"
_CACHE_BYTES = 32 * 1024 * 1024
_INLINE_VALUES_MAX = 4096  # loaded inline values kept (see ArtifactStore.load); then start over
_IMMUTABLE = frozenset({int, float, complex, bool, str, bytes, type(None)})
# Saved inline by BuiltInMaterializer, these load back as an equal value of the same exact type
# (msgpack, or UTF-8 text for str): the saved value itself can stand for the load.
_EXACT_ROUND_TRIP = frozenset({int, float, bool, str, type(None)})
_MISSING = object()


def _immutable(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` can never change: an exact built-in scalar, or a tuple or frozenset
    of such values (a few levels deep). Subclasses do not count: they may carry state."""
    kind = type(value)
    if kind in _IMMUTABLE:
        return True
    if (kind is tuple or kind is frozenset) and depth < 4:
        return all(_immutable(item, depth + 1) for item in value)
    return False


_VARIANT = 0b10 << 62  # RFC 9562's variant bits, atop the 62 random ones
# Where the ids' random bits come from: seeded from os.urandom, and again in a forked child
# (which would otherwise repeat its parent's ids). Uniqueness is all ids need of them, and
# one os.urandom call per id was most of an id's cost (a system call).
_random = random.Random(os.urandom(32))
os.register_at_fork(after_in_child=lambda: _random.seed(os.urandom(32)))


def _new_id() -> str:
    """A time-ordered UUID (version 7, RFC 9562) in hex: 48 bits of Unix time in milliseconds,
    12 bits of its fraction (so ids made one after another sort in that order), 62 random bits.

    Not a random UUID4: the ``artifacts`` table is keyed by id, and random ids put each new row
    on a random page of that index. A run storing 60 outputs in one commit then wrote about 60
    index pages to the WAL, half of all it wrote (W2); ids that grow with time all land on the
    index's last page or two. Run ids stay random, as their 8-character prefixes name runs.
    """
    ticks = time.time_ns() * 512 // 125_000  # the time in 1/4096ths of a millisecond
    high = (ticks >> 12) << 16 | 0x7000 | (ticks & 0xFFF)  # milliseconds, version 7, fraction
    return (high << 64 | _VARIANT | _random.getrandbits(62)).to_bytes(16, "big").hex()


def _describe(name: str | None, cls: type[Any]) -> str:
    what = f"a value of type {import_path(cls)}"
    return f"artifact {name!r} ({what})" if name is not None else what


class ArtifactStore:
    """Content-addressed storage for step outputs. Thread-safe; see the module docstring.

    Args:
        root: the artifacts directory (``$EVENFLOW_HOME/artifacts``); created on first write.
        materializers: extra materializer classes, chosen by their ``ASSOCIATED_TYPES`` along
            a value's MRO ahead of the built-ins (an explicit materializer still wins).
        fsync: flush each new file (and its directory) to disk before it is moved into place;
            pair it with the event log's ``durability="full"``.
        new_id: factory of artifact ids (by default :func:`_new_id`, a time-ordered UUID).
        inline_max: content up to this many bytes stays inline in its reference (0: never).
    """

    def __init__(
        self,
        root: Path,
        *,
        materializers: Iterable[type[BaseMaterializer]] = (),
        fsync: bool = False,
        new_id: Callable[[], str] = _new_id,
        inline_max: int = INLINE_MAX,
    ) -> None:
        self.root = Path(root)
        self._root = os.fspath(self.root)
        self._tmp = os.path.join(self._root, ".tmp")
        self._fsync = fsync
        self._inline_max = inline_max
        self._new_id = new_id
        self._files = LocalFiles()
        self._known: set[str] = set()
        # Small payloads just written or read, by content hash: a downstream step loading its
        # input decodes these bytes instead of reading the file (content-addressed, so a hit
        # is always the right bytes). Bounded by _CACHE_BYTES.
        self._recent: dict[str, bytes] = {}
        self._recent_size = 0
        self._recent_lock = threading.Lock()
        self._dirs: set[str] = set()
        # Immutable values decoded from inline refs, by (uri, materializer, type): a fan-out's
        # steps all load the same small input, and an immutable value can be shared safely.
        self._inline_values: dict[tuple[str, str, str], Any] = {}
        self._plans = Plans(materializers)
        self._auto = self._plans.auto  # the hot path reads it directly

    # -- saving ---------------------------------------------------------------------------------

    def save(
        self,
        value: Any,
        *,
        name: str,
        materializer: type[BaseMaterializer] | None = None,
        data_type: type[Any] | None = None,
    ) -> ArtifactRef:
        """Store ``value`` and return a new reference to it (a new id; a shared content hash).

        ``materializer`` (a step's ``output_materializers``) overrides the selection; it must
        handle ``type(value)`` or ``data_type`` (the output's annotation) if it lists
        ``ASSOCIATED_TYPES``.

        Raises:
            ArtifactError: the value cannot be serialized or written; the message names the
                artifact and the type.
        """
        ref = self._save(value, name, materializer, data_type, write=True)
        assert ref is not None
        return ref

    def save_if_known(
        self,
        value: Any,
        *,
        name: str,
        materializer: type[BaseMaterializer] | None = None,
        data_type: type[Any] | None = None,
    ) -> ArtifactRef | None:
        """Like :meth:`save` when the content is already stored (inline, or a file this store
        knows, checked with one ``stat``); None when saving would write a file, so the caller
        can do that off the event loop."""
        return self._save(value, name, materializer, data_type, write=False)

    def _save(
        self,
        value: Any,
        name: str,
        materializer: type[BaseMaterializer] | None,
        data_type: type[Any] | None,
        *,
        write: bool,
    ) -> ArtifactRef | None:
        cls = type(value)
        plan = self._auto.get(cls) if materializer is None else None
        if plan is None:
            plan = self._plans.plan(cls, materializer, data_type, _describe(name, cls))
        if plan.codec is None and not write:
            return None
        if plan.codec is not None:
            data, plan = self._to_bytes(plan, value, name)
            digest = self._digest(plan, data)
            size = len(data)
            if size <= self._inline_max and self._inline_max:  # 0: never, not even b""
                uri = DATA_URI + base64.b64encode(data).decode("ascii")
                if cls in _EXACT_ROUND_TRIP and plan.materializer is BuiltInMaterializer:
                    # The next step loads it (a chain): skip decoding what was just encoded.
                    self._keep_inline((uri, plan.materializer_path, plan.type_name), value)
            else:
                if digest in self._known and not os.path.exists(
                    os.path.join(self._root, digest[:2], digest)
                ):
                    self._forget(digest)  # removed behind our back (another process's gc)
                if digest not in self._known:
                    if not write:
                        return None
                    self._write_file(digest, data, name)
                self._remember(digest, data)
                uri = f"{digest[:2]}/{digest}"
        else:
            digest, size = self._save_dir(plan, value, name, keep=True)
            uri = f"{digest[:2]}/{digest}"
        return ArtifactRef(
            id=self._new_id(),
            name=name,
            content_hash=digest,
            uri=uri,
            materializer=plan.materializer_path,
            type_name=plan.type_name,
            size=size,
        )

    def hash_value(self, value: Any, *, materializer: type[BaseMaterializer] | None = None) -> str:
        """The content hash :meth:`save` would give ``value`` (for cache keys); writes nothing.

        Raises:
            ArtifactError: the value cannot be serialized; the message names its type.
        """
        plan = self._plans.plan(type(value), materializer, None, _describe(None, type(value)))
        if plan.codec is not None:
            data, plan = self._to_bytes(plan, value, None)
            return self._digest(plan, data)
        return self._save_dir(plan, value, None, keep=False)[0]

    def extract_metadata(
        self, value: Any, *, materializer: type[BaseMaterializer] | None = None
    ) -> dict[str, Any]:
        """The materializer's ``extract_metadata(value)`` for ``value``."""
        plan = self._plans.plan(type(value), materializer, None, _describe(None, type(value)))
        try:
            return dict(plan.materializer("", self._files).extract_metadata(value))
        except Exception as exc:
            raise ArtifactError(
                f"{import_path(plan.materializer)}.extract_metadata failed for "
                f"{_describe(None, type(value))}: {exc}"
            ) from exc

    def _to_bytes(
        self, plan: Plan, value: Any, name: str | None, *, warn: bool = True
    ) -> tuple[bytes, Plan]:
        assert plan.codec is not None
        try:
            if warn and plan.materializer is CloudpickleMaterializer:
                warn_pickled(type(value))
            return plan.codec._to_bytes(value), plan
        except Unsupported as exc:
            if plan.explicit:
                raise ArtifactError(
                    f"{_describe(name, type(value))}: materializer {plan.materializer_path} "
                    f"cannot store a {import_path(exc.type)}"
                ) from exc
            # A built-in met something it cannot represent (maybe nested): pickle the whole
            # value, and name the type that caused it.
            warn_pickled(exc.type, exc.reason)
            fallback = self._plans.plan(type(value), CloudpickleMaterializer)
            return self._to_bytes(fallback, value, name, warn=False)
        except Exception as exc:
            raise ArtifactError(
                f"{_describe(name, type(value))} cannot be serialized by "
                f"{plan.materializer_path}: {exc}"
            ) from exc

    @staticmethod
    def _digest(plan: Plan, data: bytes) -> str:
        hasher = plan.prefix.copy()
        hasher.update(data)
        return cast(str, hasher.hexdigest())

    def _ensure_dirs(self, digest: str) -> str:
        shard = digest[:2]
        if shard not in self._dirs:
            os.makedirs(os.path.join(self._root, shard), exist_ok=True)
            os.makedirs(self._tmp, exist_ok=True)
            self._dirs.add(shard)
        return os.path.join(self._root, shard)

    def _write_file(self, digest: str, data: bytes, name: str) -> None:
        path = os.path.join(self._root, digest[:2], digest)
        try:
            try:
                complete = os.stat(path).st_size == len(data)
            except FileNotFoundError:
                complete = False
            if not complete:
                shard = self._ensure_dirs(digest)
                tmp = os.path.join(self._tmp, f"{digest}.{uuid.uuid4().hex}")
                try:
                    with open(tmp, "xb") as f:
                        f.write(data)
                        if self._fsync:
                            f.flush()
                            os.fsync(f.fileno())
                    os.replace(tmp, path)
                except BaseException:
                    _remove(tmp)
                    raise
                if self._fsync:
                    _fsync_dir(shard)
        except OSError as exc:
            raise ArtifactError(f"artifact {name!r}: cannot write {path}: {exc}") from exc
        self._known.add(digest)

    def _save_dir(self, plan: Plan, value: Any, name: str | None, *, keep: bool) -> tuple[str, int]:
        tmp = os.path.join(self._tmp, uuid.uuid4().hex)
        try:
            os.makedirs(tmp)
            try:
                plan.materializer(tmp, self._files).save(value)
            except Exception as exc:
                raise ArtifactError(
                    f"{_describe(name, type(value))}: {plan.materializer_path}.save failed: {exc}"
                ) from exc
            digest, size = _hash_tree(plan.prefix.copy(), tmp)
            final = os.path.join(self._root, digest[:2], digest)
            # Not trusting ``_known`` alone: another process's gc may have removed the directory.
            if keep and not os.path.isdir(final):
                shard = self._ensure_dirs(digest)
                try:
                    os.rename(tmp, final)
                except OSError:
                    if not os.path.isdir(final):  # else a concurrent save put it there first
                        raise
                if self._fsync:
                    _fsync_dir(shard)
            if keep:
                self._known.add(digest)
            return digest, size
        except OSError as exc:
            raise ArtifactError(f"{_describe(name, type(value))}: cannot write: {exc}") from exc
        finally:
            if os.path.lexists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)  # best effort; .tmp is scratch space

    # -- loading --------------------------------------------------------------------------------

    def path_of(self, ref: ArtifactRef) -> Path:
        """The file or directory holding ``ref``'s content."""
        if ref.uri.startswith(DATA_URI):
            raise ArtifactError(f"artifact {ref.name!r} (id {ref.id}) is inline: it has no file")
        parts = ref.uri.split("/")
        if os.path.isabs(ref.uri) or ".." in parts or "\\" in ref.uri:
            raise ArtifactError(
                f"artifact {ref.name!r} (id {ref.id}) has an invalid uri {ref.uri!r}"
            )
        return self.root.joinpath(*parts)

    def exists(self, ref: ArtifactRef) -> bool:
        """Whether ``ref``'s content is on disk (a cache entry whose files are gone is a miss)."""
        if ref.uri.startswith(DATA_URI) or os.path.exists(self.path_of(ref)):
            return True
        self._forget(ref.content_hash)
        return False

    def in_memory(self, ref: ArtifactRef) -> bool:
        """Whether :meth:`load` of ``ref`` reads no file: its content is inline, or bytes this
        store wrote or read lately (content-addressed, and whose file it has seen). An event
        loop may then load it itself; any other load belongs on a thread."""
        if ref.uri.startswith(DATA_URI):
            return True
        digest = ref.content_hash
        return (
            digest in self._recent and digest in self._known and ref.uri == f"{digest[:2]}/{digest}"
        )

    def load(self, ref: ArtifactRef) -> Any:
        """The value ``ref`` points to.

        Raises:
            ArtifactError: the content is missing or unreadable, or its materializer or type
                cannot be imported; the message names the artifact, its id and its path.
        """
        inline = ref.uri.startswith(DATA_URI)
        if inline:
            key = (ref.uri, ref.materializer, ref.type_name)
            value = self._inline_values.get(key, _MISSING)
            if value is not _MISSING:
                return value
        label = f"artifact {ref.name!r} (id {ref.id})"
        materializer = self._plans.materializer(ref.materializer, label)
        data_type = self._plans.data_type(ref.type_name, materializer, label)
        # Bytes in memory are used only while the file is known to exist (written or read by
        # this store, and not found missing since): the hot path of a step loading its input.
        digest = ref.content_hash
        data = self._recent.get(digest)
        if inline or (
            data is not None
            and digest in self._known
            and ref.uri == f"{digest[:2]}/{digest}"
            and _uses_bytes(materializer)
        ):
            try:
                if inline:
                    data = base64.b64decode(ref.uri[len(DATA_URI) :], validate=True)
                assert data is not None
                codec = cast(BytesCodec, materializer("", self._files))
                value = codec._from_bytes(data, data_type)
            except Exception as exc:
                raise ArtifactError(
                    f"{label} cannot be loaded by {ref.materializer}: {exc}"
                ) from exc
            if inline and _immutable(value):
                self._keep_inline(key, value)
            return value
        path = self.path_of(ref)
        try:
            if _uses_bytes(materializer):
                with open(path, "rb") as f:
                    data = f.read()
                self._known.add(ref.content_hash)
                self._remember(ref.content_hash, data)
                codec = cast(BytesCodec, materializer("", self._files))
                return codec._from_bytes(data, data_type)
            if not os.path.isdir(path):
                raise FileNotFoundError(path)
            return materializer(os.fspath(path), self._files).load(data_type)
        except FileNotFoundError as exc:
            self._forget(ref.content_hash)
            raise ArtifactError(f"{label} is missing: {path}") from exc
        except Exception as exc:
            raise ArtifactError(
                f"{label} cannot be loaded from {path} by {ref.materializer}: {exc}"
            ) from exc

    def _keep_inline(self, key: tuple[str, str, str], value: Any) -> None:
        """Remember the value of an inline ref's ``(uri, materializer, type)`` for loads."""
        if len(self._inline_values) >= _INLINE_VALUES_MAX:
            self._inline_values.clear()
        self._inline_values[key] = value

    def _forget(self, digest: str) -> None:
        """Content found missing on disk: stop trusting any memory of it."""
        self._known.discard(digest)
        with self._recent_lock:
            if digest in self._recent:
                self._recent_size -= len(self._recent.pop(digest))

    def _remember(self, digest: str, data: bytes) -> None:
        size = len(data)
        if size > _CACHE_ITEM or digest in self._recent:
            return
        with self._recent_lock:  # sync steps save and load from worker threads
            recent = self._recent
            while recent and self._recent_size + size > _CACHE_BYTES:
                oldest = next(iter(recent))
                self._recent_size -= len(recent.pop(oldest))
            recent[digest] = data
            self._recent_size += size

    # -- deleting -------------------------------------------------------------------------------

    def delete(self, content_hash: str) -> bool:
        """Delete the content with this hash; False if there was none.

        Content is shared by every artifact with the same hash: the caller (retention) must
        know that no remaining artifact refers to it.
        """
        if len(content_hash) != 64 or content_hash.strip("0123456789abcdef"):
            raise ArtifactError(f"{content_hash!r} is not an artifact content hash")
        self._forget(content_hash)
        path = os.path.join(self._root, content_hash[:2], content_hash)
        try:
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
            else:
                os.remove(path)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise ArtifactError(f"cannot delete artifact content {path}: {exc}") from exc
        return True


def _hash_tree(hasher: Any, top: str) -> tuple[str, int]:
    """Hash a directory canonically: each entry's relative path (sorted), kind and bytes."""
    size = 0
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames.sort()
        rel_dir = os.path.relpath(dirpath, top).replace(os.sep, "/")
        hasher.update(b"D" + rel_dir.encode("utf-8", "surrogateescape") + b"\0")
        for filename in sorted(filenames):
            rel = f"{rel_dir}/{filename}".encode("utf-8", "surrogateescape")
            with open(os.path.join(dirpath, filename), "rb") as f:
                length = os.fstat(f.fileno()).st_size
                hasher.update(b"F" + rel + b"\0" + length.to_bytes(8, "big"))
                while chunk := f.read(1 << 20):
                    hasher.update(chunk)
            size += length
    return cast(str, hasher.hexdigest()), size


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def _fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
