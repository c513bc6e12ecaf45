"""The seed page's examples, run as scripts exactly as a user would (imports changed only)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
from pathlib import Path

from engine import Client, ExecutionStatus

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"


def _run_script(name: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_seed_simple_pipeline_and_configuration_override() -> None:
    _run_script("seed_simple_pipeline.py")
    runs = Client().list_pipeline_runs(pipeline="simple_pipeline", sort_by="asc:created")
    assert [r.status for r in runs] == [ExecutionStatus.COMPLETED] * 2
    alice, bob = runs
    assert alice.steps["simple_step"].outputs["greeting"][0].load() == "Hello Alice!"
    assert [a.load() for a in alice.outputs] == ["Hello Alice!"]
    assert bob.name == "experimental_run"
    assert bob.steps["simple_step"].output.load() == "Hello Bob!"
    assert bob.config.get("enable_cache") is False


def test_seed_dag_examples() -> None:
    _run_script("seed_dag.py")
    ml = Client().get_pipeline("ml_pipeline").last_run
    assert list(ml.steps) == ["load_data", "preprocess", "train", "evaluate"]
    assert ml.steps["evaluate"].output.load() == {"score": 0.625}
    par = Client().get_pipeline("parallel_pipeline").last_run
    assert par.steps["compare_models"].output.load() == "b"
    trainers = [par.steps[n] for n in ("train_model_a", "train_model_b", "train_model_c")]
    # the three trainers ran side by side: each started before any of them ended
    latest_start = max(t.start_time for t in trainers if t.start_time)
    earliest_end = min(t.end_time for t in trainers if t.end_time)
    assert latest_start < earliest_end


def _hook_events(run_name: str) -> list[tuple[str, str]]:
    run = Client().get_pipeline(run_name).last_run
    return [(e.type, e.hook) for e in run.events() if e.type.startswith("hook.")]


def test_seed_hooks() -> None:
    _run_script("seed_hooks.py")
    client = Client()
    assert client.get_pipeline("my_pipeline").last_run.steps["process_data"].output.load() == (
        f"processed after setup at {dt.datetime.now():%Y}"
    )
    assert _hook_events("my_pipeline") == [
        ("hook.started", "on_init"),
        ("hook.succeeded", "on_init"),
    ]
    robust = client.get_pipeline("robust_pipeline").last_run
    assert robust.status is ExecutionStatus.FAILED
    assert _hook_events("robust_pipeline") == [
        ("hook.started", "on_failure"),
        ("hook.succeeded", "on_failure"),
    ]
    assert _hook_events("pipeline_with_cleanup") == [
        ("hook.started", "on_cleanup"),
        ("hook.succeeded", "on_cleanup"),
    ]


def test_seed_configuration() -> None:
    _run_script("seed_configuration.py")
    client = Client()
    training = client.get_pipeline("my_pipeline").last_run
    assert training.status is ExecutionStatus.COMPLETED
    assert training.tags == ["production", "v1.0"]
    assert (
        training.config["settings"]["docker"]["parent_image"] == "tensorflow/tensorflow:latest-gpu"
    )
    assert [r.name for r in client.list_pipeline_runs(tags=["v1.0"])] == [training.name]
    gpu = client.get_pipeline("gpu_pipeline").last_run
    assert gpu.steps["train_on_gpu"].output.load() == "0,1|4"
    secure = client.get_pipeline("secure_pipeline").last_run
    assert secure.steps["upload_to_s3"].output.load() is True
    cached = client.list_pipeline_runs(pipeline="cached_pipeline", sort_by="asc:created")
    assert [s.status for s in cached[0].steps.values()] == [ExecutionStatus.COMPLETED] * 2
    assert [s.status for s in cached[1].steps.values()] == [ExecutionStatus.CACHED] * 2
    first, second = client.list_pipeline_runs(
        pipeline="time_sensitive_pipeline", sort_by="asc:created"
    )
    assert second.steps["process_data"].status is ExecutionStatus.CACHED  # timestamp ignored
    assert second.steps["process_data"].original_step_run_id == f"{first.id}/process_data"
    version = client.get_model_version("customer_churn", "production")
    run = client.get_pipeline("model_training_pipeline").last_run
    assert version.stage == "production"
    assert run.steps["train"].output.id in version.artifacts
    assert client.get_model_version("my_model").number == 1


def test_crash_and_resume_example(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CRASH_DEMO_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "crash_and_resume.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "is crashed" in proc.stdout
    assert "is completed" in proc.stdout
    assert "load returned 285" in proc.stdout
    assert (tmp_path / "ran.txt").read_text().split() == [
        "extract",
        "transform",
        "transform",
        "load",
    ]
    (run,) = Client().list_pipeline_runs(pipeline="etl")
    assert run.status == ExecutionStatus.COMPLETED
