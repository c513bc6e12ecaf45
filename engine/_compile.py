"""Compiling a static pipeline: call the body once, record each step call as an invocation.

Inside the body, a step call returns :class:`StepOutput` placeholders instead of running; passing
a placeholder (or a list of them) to another step call is a data edge, ``after=`` adds ordering
edges. Everything is validated here, before a single event is appended.
"""

from __future__ import annotations

import contextvars
import hashlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import msgspec

from events import InputRef, StepSpec

from ._external import ExternalArtifact
from .errors import ArtifactError, InvalidParameterError, PipelineDefinitionError

if TYPE_CHECKING:
    from ._step import BaseStep

_canonical = msgspec.msgpack.Encoder(order="deterministic")


@dataclass(frozen=True, slots=True)
class StepOutput:
    """A step's output inside a pipeline body: ``(invocation id, output name)``."""

    invocation_id: str
    name: str

    def __repr__(self) -> str:
        return f"StepOutput({self.invocation_id}.{self.name})"

    def ref(self) -> InputRef:
        return InputRef(self.invocation_id, self.name)


@dataclass(slots=True)
class Invocation:
    """One step call in a pipeline body."""

    id: str
    step: BaseStep
    inputs: dict[str, InputRef | list[InputRef]]
    parameters: dict[str, Any]
    after: list[str]

    def spec(self) -> StepSpec:
        step = self.step
        parameters = self.parameters
        if any(type(v) is ExternalArtifact for v in parameters.values()):
            parameters = {
                k: v.recorded() if type(v) is ExternalArtifact else v for k, v in parameters.items()
            }
        return StepSpec(
            id=self.id,
            name=step.name,
            source=step.source_path,
            code_hash=step.code_hash,
            inputs=self.inputs,
            parameters=parameters,
            after=self.after,
            outputs=[o.name for o in step.signature.outputs],
            is_async=step.signature.is_async,
            enable_cache=step.options.enable_cache,
            config=step.spec_config(),
        )

    def upstream(self) -> set[str]:
        """Invocation ids this one waits for (data and ``after=`` edges)."""
        ups = set(self.after)
        for ref in self.inputs.values():
            if isinstance(ref, list):
                ups.update(r.step for r in ref)
            else:
                ups.add(ref.step)
        return ups


def check_canonical(owner: str, name: str, value: Any) -> bytes:
    """The canonical encoding of a parameter; a clear error when it has none."""
    try:
        return _canonical.encode(value)
    except (TypeError, msgspec.EncodeError, OverflowError) as exc:
        raise InvalidParameterError(
            f"{owner}: parameter {name!r} has a value of type {type(value).__name__} that "
            f"cannot be encoded canonically ({exc}); use JSON types, datetime, UUID, Decimal, "
            "Enum, msgspec Structs or dataclasses"
        ) from None


def code_hash(func: Any) -> str:
    """Hash of a function's source with the decorator lines stripped."""
    try:
        lines, _ = inspect.getsourcelines(func)
    except (OSError, TypeError):
        code = getattr(func, "__code__", None)
        raw = code.co_code if code is not None else repr(func).encode()
        return hashlib.blake2b(raw, digest_size=16).hexdigest()
    return hashlib.blake2b("".join(strip_decorators(lines)).encode(), digest_size=16).hexdigest()


def strip_decorators(lines: list[str]) -> list[str]:
    """Source lines without the leading decorators (a multi-line one ends where its
    parentheses balance): ``@step`` and ``@step(enable_cache=True)`` give the same code."""
    lines = list(lines)
    while lines and lines[0].lstrip().startswith("@"):
        depth = 0
        while lines:
            line = lines.pop(0)
            depth += line.count("(") - line.count(")")
            if depth <= 0:
                break
    return lines


@dataclass(slots=True)
class Compilation:
    """Collects the invocations of one pipeline body call."""

    pipeline: str
    invocations: dict[str, Invocation] = field(default_factory=dict)
    _counts: dict[str, int] = field(default_factory=dict)
    _explicit: set[str] = field(default_factory=set)

    def new_id(self, base: str, explicit: str | None) -> str:
        if explicit is not None:
            if explicit in self.invocations or explicit in self._explicit:
                raise PipelineDefinitionError(
                    f"pipeline {self.pipeline!r}: duplicate step id {explicit!r}"
                )
            self._explicit.add(explicit)
            return explicit
        n = self._counts.get(base, 0) + 1
        self._counts[base] = n
        candidate = base if n == 1 else f"{base}_{n}"
        while candidate in self.invocations or candidate in self._explicit:
            n += 1
            self._counts[base] = n
            candidate = f"{base}_{n}"
        return candidate

    def add(
        self,
        step: BaseStep,
        args: Sequence[Any],
        kwargs: dict[str, Any],
        explicit_id: str | None,
        after: Any,
    ) -> Invocation:
        inv_id = self.new_id(step.name, explicit_id)
        owner = f"pipeline {self.pipeline!r}, step {inv_id!r}"
        inputs, parameters = bind_arguments(step, owner, args, kwargs)
        inv = Invocation(inv_id, step, inputs, parameters, normalize_after(owner, after))
        self.invocations[inv_id] = inv
        return inv

    def validate(self) -> None:
        """Every edge points at a known invocation (``after=`` targets included)."""
        for inv in self.invocations.values():
            for target in inv.after:
                if target not in self.invocations:
                    known = ", ".join(self.invocations) or "none"
                    raise PipelineDefinitionError(
                        f"pipeline {self.pipeline!r}, step {inv.id!r}: after={target!r} names no "
                        f"step of this pipeline (steps: {known})"
                    )


def normalize_after(owner: str, after: Any) -> list[str]:
    """``after=`` accepts an invocation id, a step output, or a list of either."""
    if after is None:
        return []
    items = after if isinstance(after, list | tuple | set) else [after]
    out: list[str] = []
    for item in items:
        if isinstance(item, StepOutput):
            out.append(item.invocation_id)
        elif isinstance(item, str):
            out.append(item)
        else:
            raise PipelineDefinitionError(
                f"{owner}: after= takes step ids or step outputs, not {type(item).__name__}"
            )
    return list(dict.fromkeys(out))


def _as_refs(value: Any) -> InputRef | list[InputRef] | None:
    if isinstance(value, StepOutput):
        return value.ref()
    if isinstance(value, list | tuple) and value and any(isinstance(v, StepOutput) for v in value):
        if not all(isinstance(v, StepOutput) for v in value):
            return None
        return [v.ref() for v in value]
    return None


def _contains_output(value: Any) -> bool:
    if isinstance(value, StepOutput):
        return True
    if isinstance(value, list | tuple | set):
        return any(_contains_output(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_output(v) for v in value.values())
    return False


def bind_arguments(
    step: BaseStep, owner: str, args: Sequence[Any], kwargs: dict[str, Any]
) -> tuple[dict[str, InputRef | list[InputRef]], dict[str, Any]]:
    """Split a step call's arguments into data inputs and constant parameters."""
    try:
        arguments = step.signature.bind(tuple(args), kwargs)
    except TypeError as exc:
        raise PipelineDefinitionError(f"{owner}: {exc}") from None
    inputs: dict[str, InputRef | list[InputRef]] = {}
    parameters: dict[str, Any] = {}
    for name, value in arguments.items():
        refs = _as_refs(value)
        if refs is not None:
            inputs[name] = refs
        elif _contains_output(value):
            raise PipelineDefinitionError(
                f"{owner}: input {name!r} mixes step outputs with other values; pass a step "
                "output, a list of step outputs, or a plain value"
            )
        elif isinstance(value, ExternalArtifact):
            try:
                value.content_hash()  # a value that cannot be stored fails here, at compile
            except ArtifactError as exc:
                raise InvalidParameterError(
                    f"{owner}: input {name!r} is an ExternalArtifact that cannot be stored: {exc}"
                ) from None
            parameters[name] = value
        else:
            check_canonical(owner, name, value)
            parameters[name] = value
    return inputs, parameters


CURRENT: contextvars.ContextVar[Compilation | None] = contextvars.ContextVar(
    "evenflow_compilation", default=None
)
