"""Errors evenflow raises on purpose, one tree under :class:`EngineError`::

    EngineError
    +-- StoreError (StoreCorruptedError, StoreBusyError)   the event log (from ``events``)
    +-- ConcurrencyError                                   a stale expected version
    +-- PipelineDefinitionError                            a pipeline or step that cannot compile
    |   +-- InvalidParameterError                          a parameter with no canonical encoding
    |   +-- HookSignatureError                             a hook that cannot take its arguments
    +-- ConfigurationError                                 bad settings, config file or options
    +-- StepFailedError                                    a step failed (dynamic handles)
    +-- StepTimeoutError                                   a step attempt ran past its timeout
    +-- StepOutputError                                    wrong output count, type or encoding
    +-- ArtifactError                                      an artifact cannot be stored or loaded
    +-- MetadataError                                      metadata the log cannot record
    +-- PipelineRunFailedError                             a run ended failed (``.run`` is its view)
    +-- RunNotFoundError                                   no run matches an id, prefix or name
    +-- RunResumeError                                     a run that cannot be resumed or cancelled
    +-- SecretError                                        a missing or invalid secret
    +-- ScheduleError                                      a schedule that cannot be registered
        +-- ScheduleNotFoundError                          no schedule matches a name or id
    +-- RetentionError                                     a run that cannot be deleted yet

Messages name the pipeline, step, parameter or file concerned.
"""

from __future__ import annotations

from typing import Any

from events import ConcurrencyError as ConcurrencyError
from events import EngineError as EngineError
from events import StoreBusyError as StoreBusyError
from events import StoreCorruptedError as StoreCorruptedError
from events import StoreError as StoreError


class PipelineDefinitionError(EngineError):
    """A pipeline or step definition, or a call inside a pipeline body, cannot be compiled."""


class InvalidParameterError(PipelineDefinitionError):
    """A parameter value has no canonical encoding (an open file, a socket, a lambda, ...)."""


class HookSignatureError(PipelineDefinitionError):
    """A hook's signature cannot accept the arguments it would be given."""


class ConfigurationError(EngineError):
    """Invalid options, settings or configuration file (the message names the key and source)."""


class StepFailedError(EngineError):
    """A step failed; raised where its result is needed (a dynamic pipeline's ``.load()``)."""


class StepTimeoutError(EngineError):
    """A step attempt ran longer than its ``timeout``."""


class StepOutputError(EngineError):
    """A step returned the wrong number of outputs, or a value its annotation rejects."""


class ArtifactError(EngineError):
    """An artifact cannot be stored or loaded."""


class MetadataError(EngineError, ValueError):
    """``log_metadata()`` got metadata the event log cannot record (a key that is not a
    string, a value msgspec cannot encode)."""


class RunNotFoundError(EngineError, LookupError):
    """No run matches the given id, id prefix or name (or the prefix is ambiguous)."""


class RunResumeError(EngineError):
    """A run cannot be resumed (it is finished, or alive under another process's lease, or its
    code no longer declares the steps the log recorded) or cancelled."""


class SecretError(EngineError):
    """A secret is missing or malformed."""


class RetentionError(EngineError):
    """A run cannot be deleted: it has not finished (only finished runs are deleted)."""


class ScheduleError(EngineError):
    """A schedule cannot be registered, changed or fired (its pipeline cannot be imported)."""


class ScheduleNotFoundError(ScheduleError, LookupError):
    """No live schedule matches the given name, id or id prefix (or the prefix is ambiguous)."""


class PipelineRunFailedError(EngineError):
    """A run ended ``failed``. ``.run`` is the finished run's view; ``__cause__`` is the first
    failing step's exception when it ran in this process."""

    def __init__(self, message: str, run: Any) -> None:
        super().__init__(message)
        self.run = run


__all__ = [
    "ArtifactError",
    "ConcurrencyError",
    "ConfigurationError",
    "EngineError",
    "HookSignatureError",
    "InvalidParameterError",
    "MetadataError",
    "PipelineDefinitionError",
    "PipelineRunFailedError",
    "RunNotFoundError",
    "ScheduleError",
    "ScheduleNotFoundError",
    "RetentionError",
    "RunResumeError",
    "SecretError",
    "StepFailedError",
    "StepOutputError",
    "StepTimeoutError",
    "StoreBusyError",
    "StoreCorruptedError",
    "StoreError",
]
