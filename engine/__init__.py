"""evenflow's public API: ZenML's ``@step`` / ``@pipeline`` on an event-sourced engine.

Switch from ZenML by changing the imports: ``from zenml import X`` -> ``from engine import X``,
``zenml.config`` -> ``engine.config``, ``zenml.client`` -> ``engine.client``.

Names are imported on first use (PEP 562), so ``import engine`` is cheap and a CLI command
loads only what it needs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._artifact_api import ArtifactConfig as ArtifactConfig
    from ._artifact_api import load_artifact as load_artifact
    from ._artifact_api import save_artifact as save_artifact
    from ._context import get_pipeline_context as get_pipeline_context
    from ._context import get_step_context as get_step_context
    from ._context import log_metadata as log_metadata
    from ._dynamic import StepHandle as StepHandle
    from ._dynamic import unmapped as unmapped
    from ._engine import Engine as Engine
    from ._external import ExternalArtifact as ExternalArtifact
    from ._materializers import BaseMaterializer as BaseMaterializer
    from ._pipeline import Pipeline as Pipeline
    from ._pipeline import pipeline as pipeline
    from ._schedule_views import ScheduleView as ScheduleView
    from ._step import BaseStep as BaseStep
    from ._step import step as step
    from ._views import ArtifactVersionView as ArtifactVersionView
    from ._views import PipelineRunView as PipelineRun  # noqa: F401  (ZenML's name)
    from ._views import PipelineRunView as PipelineRunView
    from ._views import RunEvent as RunEvent
    from ._views import StepRunView as StepRunView
    from .client import Client as Client
    from .config import CachePolicy as CachePolicy
    from .config import DockerSettings as DockerSettings
    from .config import Model as Model
    from .config import PipelineRunConfiguration as PipelineRunConfiguration
    from .config import ResourceSettings as ResourceSettings
    from .config import Schedule as Schedule
    from .config import StepRetryConfig as StepRetryConfig
    from .enums import ExecutionMode as ExecutionMode
    from .enums import ExecutionStatus as ExecutionStatus
    from .errors import EngineError as EngineError
    from .errors import PipelineRunFailedError as PipelineRunFailedError
    from .errors import StepFailedError as StepFailedError

_WHERE: dict[str, tuple[str, str]] = {
    "ArtifactConfig": ("._artifact_api", "ArtifactConfig"),
    "ExternalArtifact": ("._external", "ExternalArtifact"),
    "load_artifact": ("._artifact_api", "load_artifact"),
    "save_artifact": ("._artifact_api", "save_artifact"),
    "get_pipeline_context": ("._context", "get_pipeline_context"),
    "get_step_context": ("._context", "get_step_context"),
    "log_metadata": ("._context", "log_metadata"),
    "StepHandle": ("._dynamic", "StepHandle"),
    "unmapped": ("._dynamic", "unmapped"),
    "Engine": ("._engine", "Engine"),
    "BaseMaterializer": ("._materializers", "BaseMaterializer"),
    "Pipeline": ("._pipeline", "Pipeline"),
    "pipeline": ("._pipeline", "pipeline"),
    "ScheduleView": ("._schedule_views", "ScheduleView"),
    "BaseStep": ("._step", "BaseStep"),
    "step": ("._step", "step"),
    "ArtifactVersionView": ("._views", "ArtifactVersionView"),
    "PipelineRun": ("._views", "PipelineRunView"),
    "PipelineRunView": ("._views", "PipelineRunView"),
    "RunEvent": ("._views", "RunEvent"),
    "StepRunView": ("._views", "StepRunView"),
    "Client": (".client", "Client"),
    "CachePolicy": (".config", "CachePolicy"),
    "DockerSettings": (".config", "DockerSettings"),
    "Model": (".config", "Model"),
    "PipelineRunConfiguration": (".config", "PipelineRunConfiguration"),
    "ResourceSettings": (".config", "ResourceSettings"),
    "Schedule": (".config", "Schedule"),
    "StepRetryConfig": (".config", "StepRetryConfig"),
    "ExecutionMode": (".enums", "ExecutionMode"),
    "ExecutionStatus": (".enums", "ExecutionStatus"),
    "EngineError": (".errors", "EngineError"),
    "PipelineRunFailedError": (".errors", "PipelineRunFailedError"),
    "StepFailedError": (".errors", "StepFailedError"),
}

__all__ = sorted(_WHERE)


def __getattr__(name: str) -> Any:
    try:
        module, attr = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'engine' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module, __name__), attr)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
