"""The public surface is small and pinned: a change to it is a decision, not an accident."""

from __future__ import annotations

import subprocess
import sys

import pytest

import engine
import engine.client
import engine.config
import engine.enums
import engine.errors

ENGINE = {
    "ArtifactConfig", "ArtifactVersionView", "BaseMaterializer", "BaseStep", "CachePolicy",
    "Client", "DockerSettings", "Engine", "EngineError", "ExecutionMode", "ExecutionStatus",
    "ExternalArtifact",
    "Model",
    "Pipeline", "PipelineRun", "PipelineRunConfiguration", "PipelineRunFailedError",
    "PipelineRunView", "ResourceSettings", "RunEvent", "Schedule", "ScheduleView",
    "StepFailedError", "StepHandle", "StepRetryConfig", "StepRunView", "get_pipeline_context",
    "get_step_context", "load_artifact", "log_metadata", "pipeline", "save_artifact", "step",
    "unmapped",
}  # fmt: skip


def test_engine_exports_exactly_the_public_names() -> None:
    assert set(engine.__all__) == ENGINE
    for name in ENGINE:
        assert getattr(engine, name) is not None


def test_zenml_import_paths_work() -> None:
    assert engine.config.Schedule is engine.Schedule
    assert engine.config.PipelineRunConfiguration is engine.PipelineRunConfiguration
    assert engine.client.Client is engine.Client
    assert engine.enums.ExecutionStatus is engine.ExecutionStatus
    assert issubclass(engine.errors.PipelineRunFailedError, engine.errors.EngineError)
    assert engine.errors.EngineError is engine.EngineError


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="not_a_name"):
        _ = engine.not_a_name  # type: ignore[attr-defined]


def test_import_engine_loads_nothing_heavy() -> None:
    code = "import sys, engine; print(sorted(m for m in sys.modules if m.split('.')[0] in "
    code += "('aiosqlite', 'anyio', 'structlog', 'rich', 'typer', 'msgspec')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
