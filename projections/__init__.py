"""evenflow's projections: what the event log means.

Pure reducers fold events into views (:func:`evolve_run`, :func:`evolve_step`,
:func:`fold_run`); :class:`Projector` keeps the core views persisted in the store's database,
inside the append transaction; the query functions read them. This package imports only
``events``.
"""

from ._fold import fold_run as fold_run
from ._projector import Projector as Projector
from ._projector import rebuild as rebuild
from ._queries import MIN_PREFIX as MIN_PREFIX
from ._queries import CacheEntry as CacheEntry
from ._queries import cache_entries as cache_entries
from ._queries import cache_entries_of_pipeline as cache_entries_of_pipeline
from ._queries import checkpoint as checkpoint
from ._queries import find_runs as find_runs
from ._queries import get_artifact_version as get_artifact_version
from ._queries import get_run as get_run
from ._queries import get_run_state as get_run_state
from ._queries import get_steps as get_steps
from ._queries import list_artifact_versions as list_artifact_versions
from ._queries import list_runs as list_runs
from ._retention import artifacts_of_runs as artifacts_of_runs
from ._retention import artifacts_with_content as artifacts_with_content
from ._retention import runs_created_before as runs_created_before
from ._run_reducer import evolve_run as evolve_run
from ._schedules import SCHEDULE_STREAM_PREFIX as SCHEDULE_STREAM_PREFIX
from ._schedules import ScheduleState as ScheduleState
from ._schedules import evolve_schedule as evolve_schedule
from ._schedules import fold_schedule_tail as fold_schedule_tail
from ._schedules import fold_schedules as fold_schedules
from ._schedules import schedule_stream as schedule_stream
from ._status import ExecutionStatus as ExecutionStatus
from ._step_reducer import evolve_step as evolve_step
from ._step_reducer import step_of as step_of
from ._tables import ARTIFACTS_STREAM as ARTIFACTS_STREAM
from ._views import ArtifactView as ArtifactView
from ._views import RunState as RunState
from ._views import RunView as RunView
from ._views import StepView as StepView

__all__ = [
    "ExecutionStatus",
    "RunView",
    "StepView",
    "RunState",
    "ArtifactView",
    "evolve_run",
    "evolve_step",
    "step_of",
    "fold_run",
    "Projector",
    "rebuild",
    "get_run",
    "find_runs",
    "list_runs",
    "get_steps",
    "get_run_state",
    "list_artifact_versions",
    "get_artifact_version",
    "checkpoint",
    "MIN_PREFIX",
    "CacheEntry",
    "cache_entries",
    "cache_entries_of_pipeline",
    "ScheduleState",
    "evolve_schedule",
    "fold_schedules",
    "fold_schedule_tail",
    "schedule_stream",
    "SCHEDULE_STREAM_PREFIX",
    "runs_created_before",
    "artifacts_of_runs",
    "artifacts_with_content",
    "ARTIFACTS_STREAM",
]
