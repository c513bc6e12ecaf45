"""Configuration values, as ``zenml.config`` names them (``from engine.config import ...``).

``Schedule``, ``CachePolicy``, ``StepRetryConfig``, ``Model``, ``DockerSettings``,
``ResourceSettings`` are read-only value objects that validate in ``__init__``; ``to_dict()``
gives the JSON-friendly form recorded in the event log and ``from_dict()`` reverses it.
``PipelineRunConfiguration`` (and ``StepConfigurationUpdate``) are read-only mappings of the
options that were set, so ``p.with_options(**PipelineRunConfiguration(run_name="x"))`` passes
exactly ``run_name="x"``. Every invalid value raises :class:`~engine.errors.ConfigurationError`
naming the class (or file), the field and the value.

Importing this module imports neither croniter nor PyYAML; they are loaded when a cron expression
is validated or a file is read.
"""

from __future__ import annotations

from ._cache_policy import CachePolicy as CachePolicy
from ._model_config import MODEL_STAGES as MODEL_STAGES
from ._model_config import Model as Model
from ._retry_config import StepRetryConfig as StepRetryConfig
from ._run_config import PipelineRunConfiguration as PipelineRunConfiguration
from ._run_config import StepConfigurationUpdate as StepConfigurationUpdate
from ._run_config import _rebuild_map as _rebuild_map  # pickles made before the split name it here
from ._schedule_config import Schedule as Schedule
from ._settings import EXECUTOR_KINDS as EXECUTOR_KINDS
from ._settings import DockerSettings as DockerSettings
from ._settings import ExecutorSettings as ExecutorSettings
from ._settings import ResourceSettings as ResourceSettings
from ._settings import validate_settings as validate_settings

__all__ = [
    "EXECUTOR_KINDS",
    "MODEL_STAGES",
    "CachePolicy",
    "DockerSettings",
    "ExecutorSettings",
    "Model",
    "PipelineRunConfiguration",
    "ResourceSettings",
    "Schedule",
    "StepConfigurationUpdate",
    "StepRetryConfig",
    "validate_settings",
]
