"""Environment, secrets, log_metadata and get_step_context end to end."""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from typer.testing import CliRunner

from engine import (
    Client,
    Engine,
    ExecutionStatus,
    Model,
    PipelineRunFailedError,
    get_step_context,
    log_metadata,
    pipeline,
    step,
)
from engine._cli import app
from engine.errors import EngineError

SECRET = "Zq9-hunter2-QA-SECRET-VALUE"
OTHER_SECRET = "second-QA-SECRET-4711"


def of_type(run: Any, kind: str, step_id: str | None = None) -> list[Any]:
    return [
        e
        for e in run.events()
        if e.type == kind and (step_id is None or getattr(e, "step", None) == step_id)
    ]


# -- environment ----------------------------------------------------------------------------------


def test_environment_is_visible_while_the_step_runs_and_restored_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("QA_PRE", "original")
    monkeypatch.delenv("QA_PIPE", raising=False)
    monkeypatch.delenv("QA_BOTH", raising=False)
    keys = ("QA_PRE", "QA_PIPE", "QA_BOTH")

    @step(enable_cache=False, environment={"QA_BOTH": "step"})
    def sync_reader() -> dict[str, Any]:
        seen = {k: os.environ.get(k) for k in keys}
        return {"environ": seen, "context": dict(get_step_context().environment)}

    @step(enable_cache=False)
    async def async_reader() -> dict[str, Any]:
        seen = {k: os.environ.get(k) for k in keys}
        return {"environ": seen, "context": dict(get_step_context().environment)}

    @pipeline(environment={"QA_PIPE": "pipeline", "QA_BOTH": "pipeline", "QA_PRE": "changed"})
    def env_flow() -> None:
        sync_reader()
        async_reader()

    run = env_flow()
    sync_seen = run.steps["sync_reader"].output.load()
    async_seen = run.steps["async_reader"].output.load()
    assert sync_seen["environ"] == {"QA_PRE": "changed", "QA_PIPE": "pipeline", "QA_BOTH": "step"}
    assert async_seen["environ"] == {
        "QA_PRE": "changed",
        "QA_PIPE": "pipeline",
        "QA_BOTH": "pipeline",
    }
    assert sync_seen["context"] == {"QA_PRE": "changed", "QA_PIPE": "pipeline", "QA_BOTH": "step"}
    assert async_seen["context"]["QA_BOTH"] == "pipeline"
    # restored: the old value back, the new variables gone
    assert os.environ["QA_PRE"] == "original"
    assert "QA_PIPE" not in os.environ
    assert "QA_BOTH" not in os.environ


def test_environment_is_restored_after_a_failing_step() -> None:
    @step(enable_cache=False, environment={"QA_FAILING": "set"})
    def fails() -> None:
        assert os.environ["QA_FAILING"] == "set"
        raise RuntimeError("step failed")

    @pipeline
    def failing_env() -> None:
        fails()

    with pytest.raises(PipelineRunFailedError):
        failing_env()
    assert "QA_FAILING" not in os.environ


def conflicting_steps(log: list[tuple[str, float, float, str | None, str | None]]) -> Any:
    lock = threading.Lock()

    def body(name: str) -> str:
        start = time.monotonic()
        before = os.environ.get("QA_SHARED")
        time.sleep(0.08)
        after = os.environ.get("QA_SHARED")
        with lock:
            log.append((name, start, time.monotonic(), before, after))
        return name

    @step(enable_cache=False, environment={"QA_SHARED": "one"})
    def uses_one(i: int) -> str:
        return body("one")

    @step(enable_cache=False, environment={"QA_SHARED": "two"})
    def uses_two(i: int) -> str:
        return body("two")

    return uses_one, uses_two


def assert_never_overlapped(log: list[tuple[str, float, float, str | None, str | None]]) -> None:
    for name, _, _, before, after in log:
        assert before == after == name, log
    for a in log:
        for b in log:
            if a[0] != b[0]:
                assert a[2] <= b[1] or b[2] <= a[1], f"{a} overlaps {b}"


def test_steps_with_conflicting_environments_never_overlap() -> None:
    log: list[tuple[str, float, float, str | None, str | None]] = []
    uses_one, uses_two = conflicting_steps(log)

    @pipeline
    def conflicting() -> None:
        for i in range(3):
            uses_one(i)
            uses_two(i)

    run = conflicting()
    assert run.status is ExecutionStatus.COMPLETED
    assert len(log) == 6
    assert_never_overlapped(log)
    assert "QA_SHARED" not in os.environ


def test_steps_with_agreeing_environments_still_run_concurrently() -> None:
    barrier = threading.Barrier(2, timeout=5)

    @step(enable_cache=False, environment={"QA_AGREE": "same"})
    def meets(i: int) -> int:
        barrier.wait()  # both must be running at once, or this times out
        return i

    @pipeline
    def agreeing() -> None:
        meets(1)
        meets(2)

    assert agreeing().status is ExecutionStatus.COMPLETED


@pytest.mark.anyio
async def test_conflicting_environments_in_runs_with_their_own_engines_never_overlap(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("QA_SHARED", raising=False)  # removed again even when the value leaks
    log: list[tuple[str, float, float, str | None, str | None]] = []
    uses_one, uses_two = conflicting_steps(log)

    @pipeline
    def only_one() -> None:
        uses_one(1)

    @pipeline
    def only_two() -> None:
        uses_two(2)

    async with anyio.create_task_group() as tg:
        tg.start_soon(only_one.run_async)
        tg.start_soon(only_two.run_async)
    assert "QA_SHARED" not in os.environ
    assert_never_overlapped(log)


# -- secrets ------------------------------------------------------------------------------------


@pytest.fixture
def secrets() -> Client:
    client = Client()
    client.create_secret("qa_db", {"QA_DB_PASSWORD": SECRET, "QA_DB_USER": "admin"})
    client.create_secret("qa_api", {"QA_API_TOKEN": OTHER_SECRET})
    return client


def test_secret_keys_are_exposed_as_environment_variables(secrets: Client) -> None:
    @step(enable_cache=False, secrets=["qa_api"])
    def connect() -> dict[str, Any]:
        env = get_step_context().environment
        return {
            "password_ok": os.environ.get("QA_DB_PASSWORD") == SECRET,
            "user": os.environ.get("QA_DB_USER"),
            "token_ok": os.environ.get("QA_API_TOKEN") == OTHER_SECRET,
            "context_ok": env.get("QA_DB_PASSWORD") == SECRET,
        }

    @step(enable_cache=False)
    def without_step_secret() -> bool:
        return "QA_API_TOKEN" in os.environ

    @pipeline(secrets=["qa_db"])
    def secretive() -> None:
        connect()
        without_step_secret(after="connect")

    assert secrets.list_secrets() == ["qa_api", "qa_db"]
    run = secretive()
    assert run.steps["connect"].output.load() == {
        "password_ok": True,
        "user": "admin",
        "token_ok": True,
        "context_ok": True,
    }
    assert run.steps["without_step_secret"].output.load() is False
    for key in ("QA_DB_PASSWORD", "QA_DB_USER", "QA_API_TOKEN"):
        assert key not in os.environ
    # the names are recorded, never the values
    assert run.config["secrets"] == ["qa_db"]
    assert run.steps["connect"].spec.config["secrets"] == ["qa_api"]


def test_missing_secret_fails_the_run_at_start_naming_it(secrets: Client) -> None:
    ran: list[str] = []

    @step(enable_cache=False, secrets=["qa_db", "qa_nope"])
    def needs_missing() -> None:
        ran.append("needs_missing")

    @step(enable_cache=False)
    def harmless() -> None:
        ran.append("harmless")

    @pipeline
    def missing() -> None:
        needs_missing()
        harmless()

    with pytest.raises(EngineError) as excinfo:
        missing()
    assert "'qa_nope'" in str(excinfo.value)
    assert "'qa_db'" not in str(excinfo.value)
    assert ran == []
    runs = Client().list_pipeline_runs()
    if runs:  # a run may be recorded as failed, but no step ever started
        (run,) = runs
        assert run.status is ExecutionStatus.FAILED
        assert "qa_nope" in (run.error or "")
        assert of_type(run, "step.started") == []


def scan_home(home: Path, *values: str) -> list[str]:
    """Files under the home (the secret store itself excepted) containing any of ``values``."""
    found = []
    for path in home.rglob("*"):
        if not path.is_file() or path.name.startswith("secrets.json"):
            continue
        data = path.read_bytes()
        found += [f"{path.name}: {v}" for v in values if v.encode() in data]
    return found


@pytest.mark.anyio
async def test_secret_values_never_reach_the_database_artifacts_logs_or_cli(
    secrets: Client, evenflow_home: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)

    @step(enable_cache=False, secrets=["qa_db"])
    def uses_secret() -> int:
        log_metadata(metadata={"password_length": len(os.environ["QA_DB_PASSWORD"])})
        return len(os.environ["QA_DB_PASSWORD"])

    @step(enable_cache=False, secrets=["qa_api"])
    def breaks(n: int) -> int:
        raise ValueError(f"bad response for a token of length {n}")

    @pipeline(secrets=["qa_db"], on_failure=lambda exception: None)
    def guarded() -> None:
        breaks(uses_secret())

    async with Engine.open() as engine:
        with pytest.raises(PipelineRunFailedError) as excinfo:
            await guarded.run_async(engine=engine)
        # scanned while the engine is open: the newest pages are still in the -wal file
        assert (evenflow_home / "evenflow.db-wal").stat().st_size > 0
        assert scan_home(evenflow_home, SECRET, OTHER_SECRET) == []
    run = excinfo.value.run
    assert run.steps["uses_secret"].output.load() == len(SECRET)
    assert run.steps["uses_secret"].metadata == {"password_length": len(SECRET)}
    assert SECRET not in str(excinfo.value)
    assert OTHER_SECRET not in str(excinfo.value)
    assert scan_home(evenflow_home, SECRET, OTHER_SECRET) == []
    assert SECRET not in caplog.text
    assert OTHER_SECRET not in caplog.text
    assert any(r.name.startswith("evenflow") for r in caplog.records)

    cli = CliRunner()
    for args in (
        ["runs", "show", run.id, "--json"],
        ["runs", "show", run.id],
        ["runs", "list", "--json"],
        ["tail", run.id, "--json", "--no-follow", "--since", "0"],
        ["secret", "list"],
    ):
        # in a worker thread: some commands run their own event loop
        result = await anyio.to_thread.run_sync(cli.invoke, app, args)
        assert result.exit_code in (0, 1), (args, result.output)
        assert result.output.strip(), args
        assert SECRET not in result.output, args
        assert OTHER_SECRET not in result.output, args
    # one more look after the CLI read the database
    assert scan_home(evenflow_home, SECRET, OTHER_SECRET) == []


def test_secret_values_in_a_step_error_are_redacted(secrets: Client, evenflow_home: Path) -> None:
    @step(enable_cache=False, secrets=["qa_db"])
    def login() -> None:
        raise ConnectionError(f"login refused for password {os.environ['QA_DB_PASSWORD']}")

    @pipeline
    def leaky() -> None:
        login()

    with pytest.raises(PipelineRunFailedError) as excinfo:
        leaky()
    assert SECRET not in str(excinfo.value)
    assert scan_home(evenflow_home, SECRET) == []


# -- log_metadata and get_step_context ----------------------------------------------------------


def test_log_metadata_attaches_metadata_to_the_step_run() -> None:
    @step(enable_cache=False)
    def trains() -> float:
        log_metadata(metadata={"accuracy": 0.91, "labels": ["a", "b"]})
        log_metadata(metadata={"epochs": 3})
        return 0.91

    @step(enable_cache=False)
    async def evaluates(score: float) -> bool:
        log_metadata(metadata={"passed": score > 0.5})
        return score > 0.5

    @pipeline
    def measured() -> None:
        evaluates(trains())

    run = measured()
    assert run.steps["trains"].metadata == {"accuracy": 0.91, "labels": ["a", "b"], "epochs": 3}
    assert run.steps["evaluates"].metadata == {"passed": True}
    logged = of_type(run, "metadata.logged")
    assert {e.step for e in logged} == {"trains", "evaluates"}
    assert {"accuracy": 0.91, "labels": ["a", "b"]} in [e.metadata for e in logged]
    # recorded after the step finished, before the run ended
    first = min(e.seq for e in logged if e.step == "trains")
    (started,) = of_type(run, "step.started", "trains")
    assert started.seq < first < of_type(run, "run.succeeded")[0].seq
    fresh = Client().get_pipeline_run(run.id)
    assert fresh.steps["trains"].metadata["epochs"] == 3


def test_get_step_context_exposes_the_run_and_step() -> None:
    def init() -> dict[str, int]:
        return {"threshold": 7}

    @step(enable_cache=False, environment={"QA_CTX": "yes"})
    def introspects() -> dict[str, Any]:
        ctx = get_step_context()
        return {
            "run_id": ctx.pipeline_run.id,
            "run_name": ctx.pipeline_run.name,
            "run_status": ctx.pipeline_run.status.value,
            "step_run": ctx.step_run.invocation_id,
            "step_status": ctx.step_run.status.value,
            "step_name": ctx.step_name,
            "state": ctx.pipeline_state,
            "model": None if ctx.model is None else ctx.model.name,
            "environment": dict(ctx.environment),
        }

    @pipeline(on_init=init, model=Model(name="qa_model"))
    def contextual() -> None:
        introspects(id="custom_id")

    run = contextual.with_options(run_name="ctx-run")()
    seen = run.steps["custom_id"].output.load()
    assert seen == {
        "run_id": run.id,
        "run_name": "ctx-run",
        "run_status": "running",
        "step_run": "custom_id",
        "step_status": "running",
        "step_name": "introspects",
        "state": {"threshold": 7},
        "model": "qa_model",
        "environment": {"QA_CTX": "yes"},
    }
    with pytest.raises(RuntimeError):
        get_step_context()


def test_get_step_context_model_of_a_step() -> None:
    @step(enable_cache=False, model=Model(name="step_model"))
    def with_model() -> str:
        model = get_step_context().model
        return "none" if model is None else str(model.name)

    @pipeline
    def modelled() -> None:
        with_model()

    assert modelled().steps["with_model"].output.load() == "step_model"


@pytest.mark.anyio
async def test_environment_with_an_injected_engine_and_concurrent_async_steps() -> None:
    seen: dict[str, list[str | None]] = {"one": [], "two": []}

    @step(enable_cache=False, environment={"QA_ASYNC": "one"})
    async def first() -> None:
        for _ in range(5):
            seen["one"].append(os.environ.get("QA_ASYNC"))
            await anyio.sleep(0.01)

    @step(enable_cache=False, environment={"QA_ASYNC": "two"})
    async def second() -> None:
        for _ in range(5):
            seen["two"].append(os.environ.get("QA_ASYNC"))
            await anyio.sleep(0.01)

    @pipeline
    def async_env() -> None:
        first()
        second()

    async with Engine.open() as engine:
        run = await async_env.run_async(engine=engine)
    assert run.status is ExecutionStatus.COMPLETED
    assert seen == {"one": ["one"] * 5, "two": ["two"] * 5}
    assert "QA_ASYNC" not in os.environ
