"""evenflow's public API: ZenML's ``@step`` / ``@pipeline`` on an event-sourced engine.

Switch from ZenML by changing the imports: ``from zenml import X`` -> ``from engine import X``,
``zenml.config`` -> ``engine.config``, ``zenml.client`` -> ``engine.client``.
"""

from ._context import get_pipeline_context as get_pipeline_context
from ._context import get_step_context as get_step_context
from ._context import log_metadata as log_metadata
from ._dynamic import StepHandle as StepHandle
from ._dynamic import unmapped as unmapped
from ._engine import Engine as Engine
from ._materializers import BaseMaterializer as BaseMaterializer
from ._pipeline import Pipeline as Pipeline
from ._pipeline import pipeline as pipeline
from ._step import BaseStep as BaseStep
from ._step import step as step
from ._views import ArtifactVersionView as ArtifactVersionView
from ._views import PipelineRunView as PipelineRun
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

__all__ = [
    "ArtifactVersionView",
    "BaseMaterializer",
    "BaseStep",
    "CachePolicy",
    "Client",
    "DockerSettings",
    "Engine",
    "EngineError",
    "ExecutionMode",
    "ExecutionStatus",
    "Model",
    "Pipeline",
    "PipelineRun",
    "PipelineRunConfiguration",
    "PipelineRunFailedError",
    "PipelineRunView",
    "ResourceSettings",
    "RunEvent",
    "Schedule",
    "StepFailedError",
    "StepHandle",
    "StepRetryConfig",
    "StepRunView",
    "get_pipeline_context",
    "get_step_context",
    "log_metadata",
    "pipeline",
    "step",
    "unmapped",
]
