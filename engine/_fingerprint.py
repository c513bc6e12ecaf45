"""Step code fingerprints: what of a step's code (and of what it uses) goes into its cache key.

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
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from ._cache_typed import qualified_name, typed
from ._compile import strip_decorators
from ._step import BaseStep

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
            own: Any = "".join(strip_decorators(lines) if strip else lines)
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
        parts: list[Any] = ["".join(lines) if lines is not None else qualified_name(cls)]
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
            return ["wrapped", qualified_name(type(obj)), self._code_object(wrapped, depth)]
        if isinstance(obj, types.BuiltinFunctionType):
            return ["lib", qualified_name(obj)]
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
        name = qualified_name(obj)
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
