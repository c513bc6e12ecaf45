"""``evenflow replay``: a run's timeline and its state as of any seq, from the log alone (no user
code is imported)."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from engine import Client
from engine._cli import app
from tests.pipelines import basic

FLOW = textwrap.dedent(
    """
    from engine import pipeline, step


    @step
    def first() -> int:
        return 1


    @step
    def second(x: int) -> int:
        return x + 1


    @pipeline
    def replayed() -> None:
        second(first())
    """
)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


@pytest.fixture
def flow_file(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "replayed_flow.py"
    path.write_text(FLOW)
    saved = list(sys.path)
    yield path
    sys.path[:] = saved
    for name in [n for n in sys.modules if "replayed_flow" in n]:
        del sys.modules[name]


def test_timeline_lists_every_event_and_the_final_state(evenflow_home: Path) -> None:
    run = basic.chain(start=1)
    result = invoke("replay", run.name)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert run.name in out.splitlines()[0]
    for event in run.events():
        assert f"seq {event.seq} " in out
        assert event.type in out
    assert "state at seq" in out
    assert "✓ completed" in out
    succeeded = next(line for line in out.splitlines() if "step.succeeded" in line)
    assert succeeded.lstrip().startswith("+")  # relative time
    assert "make_number" in out


def test_at_shows_the_state_in_between(evenflow_home: Path) -> None:
    run = basic.chain(start=1)
    started = next(e for e in run.events() if e.type == "step.started" and e.step == "add_one")
    result = invoke("replay", run.id, "--at", str(started.seq), "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["at"] == started.seq
    assert data["status"] == "running"
    steps = {s["id"]: s for s in data["steps"]}
    assert steps["make_number"]["status"] == "completed"
    assert steps["add_one"]["status"] == "running"
    assert steps["add_one_2"]["status"] not in ("running", "completed")
    assert [e["seq"] for e in data["events"]] == [
        e.seq for e in run.events() if e.seq <= started.seq
    ]
    assert data["later_events"] == len(run.events()) - len(data["events"])
    assert data["events"][-1]["type"] == "step.started"
    assert data["events"][0]["offset"] == 0.0

    human = invoke("replay", run.id, "--at", str(started.seq)).stdout
    assert f"state at seq {started.seq}: ● running" in human
    assert "later events after seq" in human
    assert "run.succeeded" not in human
    # Client().get_run_state is the same fold.
    state = Client().get_run_state(run.id, at_seq=started.seq)
    assert state.steps["add_one"].status.value == "running"


def test_json_shape(evenflow_home: Path) -> None:
    run = basic.failing_continue.with_options(raise_on_failure=False)()
    data = json.loads(invoke("replay", "latest", "--json").stdout)
    assert set(data) == {"run", "at", "later_events", "status", "error", "steps", "events"}
    assert data["run"] == {"id": run.id, "name": run.name, "pipeline": "failing_continue"}
    assert data["status"] == "failed"
    assert data["later_events"] == 0
    event = data["events"][0]
    assert {"seq", "type", "stream", "recorded_at", "offset"} <= set(event)
    boom = next(s for s in data["steps"] if s["id"] == "boom")
    assert boom["status"] == "failed"
    assert boom["error_type"] == "ValueError"
    assert {s["id"]: s["status"] for s in data["steps"]}["add_one"] == "skipped"


def test_at_before_the_run_is_a_usage_error(evenflow_home: Path) -> None:
    basic.chain(start=1)
    run = basic.chain(start=2)
    result = invoke("replay", run.id, "--at", "1")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert "its first event is seq" in result.stderr


def test_replay_never_imports_the_pipeline(evenflow_home: Path, flow_file: Path) -> None:
    assert invoke("run", f"{flow_file}:replayed").exit_code == 0
    run = Client().list_pipeline_runs(size=1)[0]
    flow_file.unlink()  # the code is gone; the log is enough
    for name in [n for n in sys.modules if "replayed_flow" in n]:
        del sys.modules[name]
    result = invoke("replay", run.id)
    assert result.exit_code == 0, result.output
    assert "✓ completed" in result.stdout
    assert not [n for n in sys.modules if "replayed_flow" in n]
