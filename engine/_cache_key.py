"""Step cache keys: pure functions, the same in every process whatever ``PYTHONHASHSEED`` is.

A key is BLAKE2b over one canonical msgpack document (msgspec, ``order="deterministic"``) of:
the engine's :data:`CACHE_VERSION`, the step name, the code fingerprint, the parameters, the
inputs, the environment, the secret *names*, the output materializers and ``cache_func``'s
result. :class:`~engine.config.CachePolicy` decides which of them take part.

The code fingerprint (:func:`code_fingerprint`) covers the step's source with its decorator
lines stripped (``@step`` -> ``@step(enable_cache=True)`` keeps the key) and, recursively, what
the function uses: helper functions and classes of user code (their source), closure variables
and referenced globals (their canonical msgpack encoding) and default argument values. What a
referenced object contributes:

* a function or class defined in user code -> its source fingerprint, followed recursively
  (visited set, at most :data:`MAX_DEPTH` levels);
* a function or class of the standard library, of site-packages, or of evenflow itself ->
  ``module:qualname`` only (:data:`CACHE_VERSION` covers evenflow's own changes);
* a module -> nothing, except that a user module's attributes the code names
  (``helpers.clean`` in ``helpers.clean(x)``) are followed like globals;
* a value msgspec encodes canonically -> its encoding (and its type, as below);
* anything else -> its type only: ``module:qualname``, plus the type's fingerprint if it is
  user code. An open file, a lock or a client object is in the key by type, not by state.

A fingerprint is kept per function object for as long as every global and closure variable it
read is still bound to the same object: rebinding one while the process runs (``THRESHOLD =
0.9`` in a notebook, a long-lived app, ``evenflow serve``) gives the next run a new key. An
object changed in place (a referenced dict filled as a cache, a list appended to) keeps the key
it had: pass such values as parameters. Each function's and class's source is read once.

Inputs: with ``include_artifact_values`` (default) an input contributes its content hash; with
only ``include_artifact_ids`` it contributes its artifact id (an artifact without a content
hash falls back to its id when ids are allowed). This is ZenML's own rule, so ZenML's default
(both ``True``) uses content hashes only: ids differ on every save, and including them too would
miss the cache whenever an upstream step re-ran and produced the same bytes.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import os
import sys
import sysconfig
import types
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from ._cache_typed import module_label, typed
from ._compile import check_canonical
from ._step import BaseStep
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

MAX_DEPTH = 8
"""How many levels of referenced user code a fingerprint follows; deeper objects contribute
their ``module:qualname`` only."""

_canonical = msgspec.msgpack.Encoder(order="deterministic")
_ENCODE_ERRORS = (TypeError, ValueError, OverflowError, RecursionError, msgspec.MsgspecError)
_OWN_PACKAGES = frozenset({"engine", "events", "projections"})
_sources: weakref.WeakKeyDictionary[Any, list[str] | None] = weakref.WeakKeyDictionary()
# A binding a fingerprint read: (a namespace and a name, or a closure cell and None, the object).
_Binding = tuple[Any, str | None, Any]
_fingerprints: weakref.WeakKeyDictionary[Any, tuple[str, list[_Binding]]] = (
    weakref.WeakKeyDictionary()
)
_UNBOUND = object()


class CacheKeyError(PipelineDefinitionError):
    """A cache key cannot be computed completely (an input that cannot be hashed, a failing
    ``cache_func``); the message names the step and the input."""


# -- code fingerprints -------------------------------------------------------------------------


def code_fingerprint(func: Callable[..., Any]) -> str:
    """The fingerprint of a step function's code: its source without decorator lines, plus
    what it references (see the module docstring). Kept while what it read stays bound.

    Args:
        func: the step function (a :class:`~engine.BaseStep` is unwrapped to its function).

    Returns:
        A hex digest, equal across processes for unchanged code and referenced values.
    """
    try:
        result, bindings = _fingerprints[func]
        if _still_bound(bindings):
            return result
    except (KeyError, TypeError):  # TypeError: not weak-referenceable, computed each time
        pass
    target: Any = func.entrypoint if isinstance(func, BaseStep) else func
    if isinstance(target, types.MethodType):
        target = target.__func__
    walker = _Walker()
    if isinstance(target, types.FunctionType):
        result = walker.function(target, 0, strip=True)
    else:  # a class or a callable object: what referencing it would contribute
        result = _digest([walker.value(target, 0)])
    try:
        _fingerprints[func] = (result, walker.bindings)
    except TypeError:
        pass
    return result


def _still_bound(bindings: list[_Binding]) -> bool:
    """Whether every name a fingerprint read still names the object it named then."""
    for holder, name, obj in bindings:
        if name is None:  # a closure cell
            try:
                if holder.cell_contents is not obj:
                    return False
            except ValueError:  # emptied since
                return False
        elif holder.get(name, _UNBOUND) is not obj:
            return False
    return True


def _digest(parts: Sequence[Any]) -> str:
    return hashlib.blake2b(_canonical.encode(parts), digest_size=16).hexdigest()


def _is_function(obj: object) -> bool:
    return isinstance(obj, types.FunctionType)


def _qualname(obj: Any) -> str:
    module = module_label(getattr(obj, "__module__", None))
    return f"{module}:{getattr(obj, '__qualname__', type(obj).__name__)}"


@functools.lru_cache(maxsize=1024)
def _is_library(module_name: str | None) -> bool:
    """Whether a module is the standard library, site-packages or evenflow (not user code)."""
    if not module_name:
        return False
    top = module_name.partition(".")[0]
    if top in sys.stdlib_module_names or top in _OWN_PACKAGES:
        return True
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    if not isinstance(path, str):
        return False
    parts = os.path.normpath(path).split(os.sep)
    if "site-packages" in parts or "dist-packages" in parts:
        return True
    stdlib = sysconfig.get_paths()["stdlib"]
    return os.path.normpath(path).startswith(os.path.normpath(stdlib) + os.sep)


def _source_lines(obj: Any) -> list[str] | None:
    """``obj``'s source lines (None if it has none), read once per function or class."""
    try:
        return _sources[obj]
    except (KeyError, TypeError):  # TypeError: not weak-referenceable, read each time
        pass
    try:
        lines: list[str] | None = inspect.getsourcelines(obj)[0]
    except (OSError, TypeError):
        lines = None
    try:
        _sources[obj] = lines
    except TypeError:
        pass
    return lines


def _strip_decorators(lines: list[str]) -> list[str]:
    """The lines without the leading decorators (a multi-line one ends where its parentheses
    balance), as :func:`engine._compile.code_hash` strips them."""
    lines = list(lines)
    while lines and lines[0].lstrip().startswith("@"):
        depth = 0
        while lines:
            line = lines.pop(0)
            depth += line.count("(") - line.count(")")
            if depth <= 0:
                break
    return lines


def _const(value: Any) -> Any:
    """A code object's constant in canonical form (code objects recursively)."""
    if isinstance(value, types.CodeType):
        return ["code", _code_parts(value)]
    try:
        return _canonical.encode(value)
    except _ENCODE_ERRORS:
        return repr(value)  # complex, Ellipsis: deterministic reprs


def _code_parts(code: types.CodeType) -> list[Any]:
    """Bytecode and constants: the fallback when the source cannot be read (``exec``, REPL)."""
    return [
        code.co_code,
        [_const(c) for c in code.co_consts],
        list(code.co_names),
        list(code.co_varnames),
        list(code.co_freevars),
    ]


def _code_names(code: types.CodeType) -> list[str]:
    """Global and attribute names used by ``code`` and the code nested in it, in order."""
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names.extend(_code_names(const))
    return list(dict.fromkeys(names))


class _Walker:
    """One fingerprint computation; ``seen`` breaks reference cycles."""

    def __init__(self) -> None:
        self.seen: set[int] = set()
        self.bindings: list[_Binding] = []  # what the fingerprint read (see _still_bound)

    def function(self, func: types.FunctionType, depth: int, *, strip: bool = False) -> str:
        self.seen.add(id(func))
        lines = _source_lines(func)
        if lines is not None:
            own: Any = "".join(_strip_decorators(lines) if strip else lines)
        else:
            own = _code_parts(func.__code__)
        refs: list[Any] = []
        names = _code_names(func.__code__)
        scope = func.__globals__
        bindings = self.bindings
        for name in names:
            if name in scope:
                bound = scope[name]
                bindings.append((scope, name, bound))
                refs.append([name, self.value(bound, depth + 1, names)])
        cells = func.__closure__ or ()
        for name, cell in zip(func.__code__.co_freevars, cells, strict=False):
            try:
                content = cell.cell_contents
            except ValueError:  # an empty cell: a variable assigned later
                refs.append([name, "<empty>"])
                continue
            bindings.append((cell, None, content))
            refs.append([name, self.value(content, depth + 1, names)])
        defaults = [*(func.__defaults__ or ()), *sorted((func.__kwdefaults__ or {}).items())]
        refs.append(["<defaults>", [self.value(d, depth + 1) for d in defaults]])
        return _digest([own, refs])

    def cls(self, cls: type, depth: int) -> str:
        self.seen.add(id(cls))
        lines = _source_lines(cls)
        parts: list[Any] = ["".join(lines) if lines is not None else _qualname(cls)]
        parts.append([self.value(base, depth + 1) for base in cls.__bases__])
        for name, attr in vars(cls).items():
            for func in _methods(attr):
                if _is_function(func) and id(func) not in self.seen:
                    parts.append([name, self.function(func, depth + 1)])
        return _digest(parts)

    def value(self, obj: Any, depth: int, names: Sequence[str] = ()) -> Any:
        """What ``obj`` contributes to the fingerprint of the code that references it."""
        if isinstance(obj, types.ModuleType):
            return self._module(obj, depth, names)
        if isinstance(obj, types.MethodType):
            obj = obj.__func__
        if isinstance(obj, functools.partial):
            args = [self.value(a, depth) for a in (*obj.args, *sorted(obj.keywords.items()))]
            return ["partial", self.value(obj.func, depth), args]
        if _is_function(obj) or isinstance(obj, type):
            return self._code_object(obj, depth)
        wrapped = _wrapped(obj)  # a BaseStep, an lru_cache wrapper, ...
        if wrapped is not None:
            return ["wrapped", _qualname(type(obj)), self._code_object(wrapped, depth)]
        if isinstance(obj, types.BuiltinFunctionType):
            return ["lib", _qualname(obj)]
        kind = self._code_object(type(obj), depth)  # a user type's methods count too
        try:
            encoded = _canonical.encode(typed(obj))
        except _ENCODE_ERRORS:
            return self._structure(obj, kind, depth)
        return ["value", kind, hashlib.blake2b(encoded, digest_size=16).digest()]

    def _structure(self, obj: Any, kind: Any, depth: int) -> Any:
        """A value msgspec cannot encode as a whole: a path by its text, a container item by
        item (a list of helper functions, a dict holding a path); anything else by its type."""
        if isinstance(obj, os.PathLike):
            return ["path", kind, os.fspath(obj)]
        if depth > MAX_DEPTH:
            return ["type", kind]
        if isinstance(obj, list | tuple):
            return ["items", kind, [self.value(item, depth + 1) for item in obj]]
        if isinstance(obj, set | frozenset):
            items = [_digest([self.value(item, depth + 1)]) for item in obj]
            return ["items", kind, sorted(items)]
        if isinstance(obj, dict):
            pairs = [
                _digest([self.value(k, depth + 1), self.value(v, depth + 1)])
                for k, v in obj.items()
            ]
            return ["items", kind, sorted(pairs)]
        return ["type", kind]

    def _code_object(self, obj: Any, depth: int) -> Any:
        name = _qualname(obj)
        if _is_library(getattr(obj, "__module__", None)):
            return ["lib", name]
        if id(obj) in self.seen or depth > MAX_DEPTH:
            return ["ref", name]
        if isinstance(obj, type):
            return ["class", name, self.cls(obj, depth)]
        return ["function", name, self.function(obj, depth)]

    def _module(self, module: types.ModuleType, depth: int, names: Sequence[str]) -> Any:
        if _is_library(module.__name__) or id(module) in self.seen:
            return None
        self.seen.add(id(module))
        scope = vars(module)
        used = []
        for n in names:
            if n in scope:
                self.bindings.append((scope, n, scope[n]))
                used.append([n, self.value(scope[n], depth + 1)])
        self.seen.discard(id(module))  # another function may use other attributes of it
        return ["module", module.__name__, used]


def _methods(attr: Any) -> list[Any]:
    if isinstance(attr, staticmethod | classmethod):
        return [attr.__func__]
    if isinstance(attr, property):
        return [attr.fget, attr.fset, attr.fdel]
    return [attr]


def _wrapped(obj: Any) -> Any:
    """``obj.__wrapped__`` when ``functools.update_wrapper`` put it there; read from the
    instance ``__dict__`` so proxies and mocks answering any attribute are not asked."""
    try:
        found = object.__getattribute__(obj, "__dict__").get("__wrapped__")
    except (AttributeError, TypeError):
        return None
    return found if _is_function(found) or isinstance(found, type) else None


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
