"""What a step function takes and returns, read once from its signature and annotations."""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .errors import PipelineDefinitionError


@dataclass(frozen=True, slots=True)
class OutputSpec:
    """A declared output: its artifact name and its annotation (``Any`` when unannotated)."""

    name: str
    annotation: Any


@dataclass(frozen=True, slots=True)
class StepSignature:
    """The inputs, outputs and call style of a step function."""

    signature: inspect.Signature
    inputs: tuple[str, ...]
    outputs: tuple[OutputSpec, ...]
    is_async: bool
    annotations: dict[str, Any]
    # For binding calls without ``inspect.Signature.bind`` (hot when compiling big pipelines):
    # set when every parameter is positional-or-keyword or keyword-only, else None.
    positional: tuple[str, ...] | None = None
    defaults: dict[str, Any] | None = None

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Arguments by parameter name, in declaration order, defaults applied.

        Raises:
            TypeError: as ``inspect.Signature.bind`` does (too many or unknown arguments, a
                missing one, one given twice).
        """
        names, defaults = self.positional, self.defaults
        if names is not None and defaults is not None and len(args) <= len(names):
            given = dict(zip(names, args, strict=False))
            params = self.signature.parameters
            if all(k not in given and k in params for k in kwargs):
                given.update(kwargs)
                if len(given) + len(defaults) >= len(self.inputs):
                    out = {}
                    for name in self.inputs:
                        if name in given:
                            out[name] = given[name]
                        elif name in defaults:
                            out[name] = defaults[name]
                        else:
                            break
                    else:
                        return out
        bound = self.signature.bind(*args, **kwargs)  # the slow path, and its precise errors
        bound.apply_defaults()
        return dict(bound.arguments)


def _output_name(annotation: Any) -> str | None:
    """The name in ``Annotated[T, "name"]`` (or ``Annotated[T, ArtifactConfig(name=...)]``)."""
    if typing.get_origin(annotation) is typing.Annotated:
        for meta in annotation.__metadata__:
            if isinstance(meta, str):
                return meta
            name = getattr(meta, "name", None)
            if isinstance(name, str):
                return name
    return None


def _strip(annotation: Any) -> Any:
    if typing.get_origin(annotation) is typing.Annotated:
        return annotation.__origin__
    return annotation


def parse_outputs(step_name: str, annotation: Any) -> tuple[OutputSpec, ...]:
    """Outputs from a return annotation, as ZenML reads them.

    No annotation: one output ``output``. ``None``: no outputs. ``Annotated[T, "n"]``: one output
    ``n``. ``Tuple[Annotated[A, "a"], Annotated[B, "b"]]``: outputs ``a`` and ``b``; a plain
    ``Tuple[A, B]`` gives ``output_0`` and ``output_1``.
    """
    if annotation is inspect.Signature.empty:
        return (OutputSpec("output", Any),)
    if annotation is None or annotation is type(None):
        return ()
    name = _output_name(annotation)
    if name is not None:
        return (OutputSpec(name, _strip(annotation)),)
    origin = typing.get_origin(annotation)
    if origin is tuple:
        args = typing.get_args(annotation)
        if args and args[-1] is not Ellipsis and args != ((),):
            specs = []
            for i, arg in enumerate(args):
                specs.append(OutputSpec(_output_name(arg) or f"output_{i}", _strip(arg)))
            names = [s.name for s in specs]
            if len(set(names)) != len(names):
                raise PipelineDefinitionError(
                    f"step {step_name!r} declares duplicate output names {names}"
                )
            return tuple(specs)
    return (OutputSpec("output", annotation),)


def read_signature(func: Callable[..., Any], step_name: str) -> StepSignature:
    """Inspect a step function; reject signatures a step cannot have."""
    try:
        sig = inspect.signature(func)
    except (TypeError, ValueError) as exc:
        raise PipelineDefinitionError(f"step {step_name!r}: cannot read its signature") from exc
    for param in sig.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            star = "*" if param.kind is param.VAR_POSITIONAL else "**"
            raise PipelineDefinitionError(
                f"step {step_name!r}: {star}{param.name} is not allowed in a step signature; "
                "every input must be a named parameter"
            )
        if param.name in ("id", "after"):
            raise PipelineDefinitionError(
                f"step {step_name!r}: parameter name {param.name!r} is reserved for step calls"
            )
    try:
        hints = typing.get_type_hints(func, include_extras=True)
    except Exception:  # unresolvable forward references: fall back to what is written
        hints = {
            k: v for k, v in getattr(func, "__annotations__", {}).items() if not isinstance(v, str)
        }
    ret = hints.get("return", inspect.Signature.empty)
    if "return" not in hints and sig.return_annotation is not inspect.Signature.empty:
        ret = inspect.Signature.empty  # a string annotation we could not resolve
    kinds = {p.kind for p in sig.parameters.values()}
    simple = kinds <= {inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY}
    return StepSignature(
        signature=sig,
        inputs=tuple(sig.parameters),
        outputs=parse_outputs(step_name, ret),
        is_async=inspect.iscoroutinefunction(func),
        annotations=hints,
        positional=tuple(
            p.name
            for p in sig.parameters.values()
            if p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
        )
        if simple
        else None,
        defaults={
            p.name: p.default
            for p in sig.parameters.values()
            if p.default is not inspect.Parameter.empty
        }
        if simple
        else None,
    )
