"""The seed page's examples, run as scripts exactly as a user would (imports changed only)."""

from __future__ import annotations

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
