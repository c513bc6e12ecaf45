"""Step cache keys: pure functions, the same in every process whatever ``PYTHONHASHSEED`` is.

A key is BLAKE2b over one canonical msgpack document (msgspec, ``order="deterministic"``) of:
the engine's :data:`CACHE_VERSION`, the step name, the code fingerprint, the parameters, the
inputs, the environment, the secret *names*, the output materializers and ``cache_func``'s
result. :class:`~engine.config.CachePolicy` decides which of them take part.

The code fingerprint is :func:`engine._fingerprint.code_fingerprint` (its own module).

Inputs: with ``include_artifact_values`` (default) an input contributes its content hash; with
only ``include_artifact_ids`` it contributes its artifact id (an artifact without a content
hash falls back to its id when ids are allowed). This is ZenML's own rule, so ZenML's default
(both ``True``) uses content hashes only: ids differ on every save, and including them too would
miss the cache whenever an upstream step re-ran and produced the same bytes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from ._cache_typed import typed
from ._compile import check_canonical
from ._fingerprint import MAX_DEPTH, code_fingerprint
from .errors import ArtifactError, PipelineDefinitionError

if TYPE_CHECKING:
    from events import ArtifactRef

    from ._artifacts import ArtifactStore
    from .config import CachePolicy

__all__ = [
    "CACHE_VERSION",
    "MAX_DEPTH",
    "CacheKeyError",
    "CacheKeyInputs",
    "KeyTemplate",
    "code_fingerprint",
    "compute_cache_key",
    "input_content_hash",
    "inputs_from_refs",
    "is_expired",
]

CACHE_VERSION = "2"  # 2: parameters and referenced values keep their types (_cache_typed)
"""Bumped when the key's recipe or evenflow's execution semantics change (old keys then miss)."""

_canonical = msgspec.msgpack.Encoder(order="deterministic")
_ENCODE_ERRORS = (TypeError, ValueError, OverflowError, RecursionError, msgspec.MsgspecError)


class CacheKeyError(PipelineDefinitionError):
    """A cache key cannot be computed completely (an input that cannot be hashed, a failing
    ``cache_func``); the message names the step and the input."""


# -- keys ----------------------------------------------------------------------------------------

InputValue = str | list[str]
"""One input's identity in a key: a content hash (or an artifact id), a list of them for a
fan-in input (in the order the step receives them)."""


@dataclass(frozen=True, slots=True)
class CacheKeyInputs:
    """Everything a step invocation's cache key may cover (the policy picks what it does).

    Attributes:
        step: the step's name (``with_options(name=...)`` counts; the invocation id does not,
            so two invocations of one step with equal inputs share their result).
        code: :func:`code_fingerprint` of the step function.
        parameters: the invocation's constant arguments.
        input_hashes: input name -> content hash (a list for fan-in). See
            :func:`inputs_from_refs` and :func:`input_content_hash`.
        input_ids: input name -> artifact id (a list for fan-in); used when the policy leaves
            artifact values out, or for an input that has no content hash.
        environment: the step's ``environment`` (values included: they are not secret).
        secrets: the names of the step's secrets (never their values).
        materializers: output name -> materializer import path (``"*"`` for all outputs).
        cache_version: :data:`CACHE_VERSION`.
        extra: ``cache_func``'s result if the caller already has it; ``None`` lets
            :func:`compute_cache_key` call the policy's ``cache_func``.
    """

    step: str
    code: str = ""
    parameters: Mapping[str, Any] = field(default_factory=dict)
    input_hashes: Mapping[str, InputValue] = field(default_factory=dict)
    input_ids: Mapping[str, InputValue] = field(default_factory=dict)
    environment: Mapping[str, str] = field(default_factory=dict)
    secrets: Sequence[str] = ()
    materializers: Mapping[str, str] = field(default_factory=dict)
    cache_version: str = CACHE_VERSION
    extra: str | None = None


def inputs_from_refs(
    refs: Mapping[str, ArtifactRef | Sequence[ArtifactRef]],
) -> tuple[dict[str, InputValue], dict[str, InputValue]]:
    """``(input_hashes, input_ids)`` for :class:`CacheKeyInputs` from stored input artifacts."""
    hashes: dict[str, InputValue] = {}
    ids: dict[str, InputValue] = {}
    for name, ref in refs.items():
        if isinstance(ref, Sequence):
            hashes[name] = [r.content_hash for r in ref]
            ids[name] = [r.id for r in ref]
        else:
            hashes[name] = ref.content_hash
            ids[name] = ref.id
    return hashes, ids


def input_content_hash(store: ArtifactStore, step: str, input_name: str, value: Any) -> str:
    """The content hash of an input that is not an artifact yet (an external value): the hash
    :meth:`ArtifactStore.save` would give it.

    Raises:
        CacheKeyError: the value cannot be serialized; names the step and the input.
    """
    try:
        return store.hash_value(value)
    except ArtifactError as exc:
        raise CacheKeyError(
            f"step {step!r}: input {input_name!r} ({type(value).__name__}) cannot be hashed "
            f"for the cache key: {exc}; disable caching for this step, or use "
            "CachePolicy(include_artifact_values=False) to key on artifact ids"
        ) from exc


def _usable(value: InputValue | None) -> bool:
    if isinstance(value, list):
        return all(value)
    return bool(value)


def _inputs(
    step: str,
    input_hashes: Mapping[str, InputValue],
    input_ids: Mapping[str, InputValue],
    policy: CachePolicy | None,
    ignored: frozenset[str],
) -> Any:
    values = policy is None or policy.include_artifact_values
    ids = policy is None or policy.include_artifact_ids
    if not (values or ids):
        return sorted(n for n in {*input_hashes, *input_ids} if n not in ignored)
    out: dict[str, Any] = {}
    for name in sorted({*input_hashes, *input_ids} - ignored):
        content = input_hashes.get(name)
        if values and _usable(content):
            out[name] = ["hash", content]
            continue
        artifact_id = input_ids.get(name)
        if ids and _usable(artifact_id):
            out[name] = ["id", artifact_id]
            continue
        wanted = "content hash" if values else "artifact id"
        raise CacheKeyError(
            f"step {step!r}: input {name!r} has no {wanted} for the cache key"
            + ("" if ids else " and the cache policy excludes artifact ids")
        )
    return out


def _cache_func_value(step: str, extra: str | None, policy: CachePolicy | None) -> Any:
    if extra is not None:
        return extra
    func = None if policy is None else policy.resolve_cache_func()
    if func is None:
        return None
    assert policy is not None
    try:
        result = func()
    except Exception as exc:
        raise CacheKeyError(
            f"step {step!r}: cache_func {policy.cache_func} raised {type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(result, str):
        return result
    try:  # str() of an arbitrary object may hold its address: a new key in every process
        return _canonical.encode(result)
    except _ENCODE_ERRORS:
        raise CacheKeyError(
            f"step {step!r}: cache_func {policy.cache_func} must return a string, "
            f"got {type(result).__name__}"
        ) from None


def compute_cache_key(inputs: CacheKeyInputs, policy: CachePolicy | None) -> str:
    """The cache key of a step invocation, as a hex string.

    ``policy`` (``None`` is :meth:`CachePolicy.default`) selects the parts: code
    (``include_step_code``), parameters (``include_step_parameters``), inputs by content hash
    or artifact id (``include_artifact_values`` / ``include_artifact_ids``, see the module
    docstring), minus the names in ``ignore_fields`` / ``ignored_inputs`` (parameters and
    inputs alike), and ``cache_func``'s result.

    Raises:
        InvalidParameterError: a parameter has no canonical encoding (names step and parameter).
        CacheKeyError: an input lacks the hash or id the policy asks for, or ``cache_func``
            failed or returned something that is not a string.
        ConfigurationError: ``cache_func`` cannot be imported.
    """
    template = KeyTemplate(
        inputs.step,
        inputs.code,
        inputs.environment,
        inputs.secrets,
        inputs.materializers,
        policy,
        cache_version=inputs.cache_version,
    )
    return template.key(inputs.parameters, inputs.input_hashes, inputs.input_ids, inputs.extra)


_DOCUMENT_HEAD = b"\x9a"  # a msgpack array of the key document's ten parts


class KeyTemplate:
    """The cache keys of one step under one policy: the parts that are the same for all its
    invocations (name, code, environment, secrets, materializers), encoded once.

    A key hashes the canonical msgpack of a ten-part document (see :meth:`key`). An array's
    msgpack is its header followed by each part's, so the unchanging parts are encoded here
    once and each :meth:`key` encodes only the parameters, the inputs and ``cache_func``'s
    result: the bytes, and so the keys, are the ones one ``encode`` of the whole document gives
    (a test checks it).
    """

    __slots__ = ("_head", "_ignored", "_policy", "_step", "_tail")

    def __init__(
        self,
        step: str,
        code: str,
        environment: Mapping[str, str],
        secrets: Sequence[str],
        materializers: Mapping[str, str],
        policy: CachePolicy | None,
        *,
        cache_version: str = CACHE_VERSION,
    ) -> None:
        self._step = step
        self._policy = policy
        self._ignored = frozenset() if policy is None else policy.ignored_names
        encode = _canonical.encode
        self._head = b"".join(
            (
                _DOCUMENT_HEAD,
                encode("evenflow-cache-key"),
                encode(cache_version),
                encode(step),
                encode(code if policy is None or policy.include_step_code else None),
            )
        )
        self._tail = b"".join(
            (encode(dict(environment)), encode(sorted(set(secrets))), encode(dict(materializers)))
        )

    def key(
        self,
        parameters: Mapping[str, Any],
        input_hashes: Mapping[str, InputValue],
        input_ids: Mapping[str, InputValue],
        extra: str | None = None,
    ) -> str:
        """The key of an invocation with these parameters and inputs (``extra``: as
        :attr:`CacheKeyInputs.extra`). Raises as :func:`compute_cache_key`."""
        policy, ignored = self._policy, self._ignored
        params: dict[str, bytes] | None = None
        if policy is None or policy.include_step_parameters:
            owner = f"step {self._step!r}"
            params = {
                name: _typed_bytes(owner, name, value)
                for name, value in parameters.items()
                if name not in ignored
            }
        step, encode = self._step, _canonical.encode
        document = b"".join(
            (
                self._head,
                encode(params),
                encode(_inputs(step, input_hashes, input_ids, policy, ignored)),
                self._tail,
                encode(_cache_func_value(step, extra, policy)),
            )
        )
        return hashlib.blake2b(document, digest_size=32).hexdigest()


def _typed_bytes(owner: str, name: str, value: Any) -> bytes:
    """A parameter's part of the key: its canonical encoding with its types kept (see
    ``_cache_typed``); the clear error of :func:`check_canonical` when it has none."""
    try:
        return _canonical.encode(typed(value))
    except _ENCODE_ERRORS:
        return check_canonical(owner, name, value)  # raises InvalidParameterError


def is_expired(created_at: float, now: float, policy: CachePolicy | None) -> bool:
    """Whether a result cached at ``created_at`` is too old to reuse at ``now`` (epoch seconds).

    A result is valid for ``policy.effective_max_age_seconds`` (``None``: forever), up to and
    including that age, as ZenML's ``expires_after``. A result from the future (clock skew) is
    not expired.
    """
    max_age = None if policy is None else policy.effective_max_age_seconds
    return max_age is not None and now - created_at > max_age
