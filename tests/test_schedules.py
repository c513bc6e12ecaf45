"""Registering schedules (``p.run(schedule=...)``, ``with_options(schedule=...)()``), the
Client's schedule methods and ``evenflow schedule list|pause|resume|delete``."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from engine import Client, PipelineRunConfiguration, Schedule, pipeline, step
from engine._cli import app
from engine.errors import (
    ConfigurationError,
    PipelineDefinitionError,
    ScheduleError,
    ScheduleNotFoundError,
)
from events import ScheduleCreated, decode
from tests.pipelines.scheduled import needs_name, nightly


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def created_events(home: Path) -> list[ScheduleCreated]:
    with sqlite3.connect(home / "evenflow.db") as conn:
        rows = conn.execute(
            "SELECT payload FROM events WHERE type = 'schedule.created' ORDER BY seq"
        ).fetchall()
    events = [decode(row[0]) for row in rows]
    assert all(isinstance(e, ScheduleCreated) for e in events)
    return events  # type: ignore[return-value]


# -- registering -----------------------------------------------------------------------------


def test_run_with_a_schedule_records_import_path_parameters_and_registers_no_run(
    evenflow_home: Path,
) -> None:
    view = nightly.run(schedule=Schedule(cron_expression="0 2 * * *", name="n2"), name="Ada")
    assert view.name == "n2"
    assert view.status == "active"
    assert view.expression == "0 2 * * *"
    assert view.next_fire_time is not None
    assert view.next_fire_time > dt.datetime.now(dt.UTC)
    (event,) = created_events(evenflow_home)
    assert event.code == "tests.pipelines.scheduled:nightly"
    # Where ``tests`` was imported from: a service finds the module there if its path does not.
    assert event.code_root == str(Path(__file__).resolve().parent.parent)
    assert event.pipeline == "nightly"
    assert event.parameters == {"name": "Ada"}
    assert event.cron_expression == "0 2 * * *"
    assert event.timezone  # the local zone, recorded so every service evaluates it the same
    assert event.created_at is not None
    assert Client().list_pipeline_runs() == []


def test_with_options_schedule_call_registers_with_the_run_configuration(
    evenflow_home: Path,
) -> None:
    config = PipelineRunConfiguration(enable_cache=False, run_name="nightly-{date}", tags=["n"])
    view = nightly.with_options(schedule=Schedule(interval_second=3600), **config)()
    assert view.name.startswith("nightly-")  # a default name: pipeline + id prefix
    assert view.interval_second == 3600
    (event,) = created_events(evenflow_home)
    assert event.config == {"enable_cache": False, "run_name": "nightly-{date}", "tags": ["n"]}
    assert event.parameters == {}
    assert Client().list_pipeline_runs() == []


def test_registering_inside_a_running_event_loop_works() -> None:
    import anyio

    async def main() -> str:
        return str(nightly.run(schedule=Schedule(interval_second=60, name="in-loop")).name)

    assert anyio.run(main) == "in-loop"
    assert [s.name for s in Client().list_schedules()] == ["in-loop"]


def test_a_taken_name_is_rejected() -> None:
    nightly.run(schedule=Schedule(interval_second=60, name="dup"))
    with pytest.raises(ScheduleError, match="'dup' already exists"):
        nightly.run(schedule=Schedule(cron_expression="* * * * *", name="dup"))
    Client().delete_schedule("dup")
    nightly.run(schedule=Schedule(interval_second=60, name="dup"))  # free again once deleted


def test_a_missing_parameter_fails_at_registration_and_records_nothing(
    evenflow_home: Path,
) -> None:
    with pytest.raises(PipelineDefinitionError, match="name"):
        needs_name.run(schedule=Schedule(interval_second=60))
    assert not (evenflow_home / "evenflow.db").exists() or created_events(evenflow_home) == []


def test_a_pipeline_defined_in_a_function_cannot_be_scheduled() -> None:
    @step
    def inner() -> int:
        return 1

    @pipeline
    def local_pipeline() -> None:
        inner()

    with pytest.raises(ScheduleError, match="defined inside a function"):
        local_pipeline.run(schedule=Schedule(interval_second=60))


def test_options_that_cannot_be_recorded_are_rejected() -> None:
    def hook() -> None:
        return None

    with pytest.raises(ScheduleError, match=r"\['on_success'\].*cannot be recorded"):
        nightly.with_options(on_success=hook).run(schedule=Schedule(interval_second=60))


def test_an_invalid_cron_expression_is_rejected_when_the_schedule_is_built() -> None:
    with pytest.raises(ConfigurationError, match="cron_expression"):
        Schedule(cron_expression="61 * * * *")
    with pytest.raises(ConfigurationError, match="exactly one"):
        Schedule(cron_expression="* * * * *", interval_second=5)


# -- the Client ------------------------------------------------------------------------------


def test_client_get_pause_resume_delete() -> None:
    view = nightly.run(schedule=Schedule(interval_second=60, name="every-minute"))
    client = Client()
    assert client.get_schedule("every-minute").id == view.id
    assert client.get_schedule(view.id[:8]).name == "every-minute"
    assert client.pause_schedule("every-minute").status == "paused"
    assert client.get_schedule(view.id).next_fire_time is None
    assert client.pause_schedule("every-minute").status == "paused"  # idempotent
    assert client.resume_schedule(view.id).status == "active"
    client.delete_schedule("every-minute")
    assert client.list_schedules() == []
    (deleted,) = client.list_schedules(include_deleted=True)
    assert deleted.status == "deleted"
    with pytest.raises(ScheduleNotFoundError, match="no schedule named 'every-minute'"):
        client.get_schedule("every-minute")
    with pytest.raises(ScheduleNotFoundError):
        client.delete_schedule("every-minute")


def test_client_on_an_empty_home() -> None:
    client = Client()
    assert client.list_schedules() == []
    with pytest.raises(ScheduleNotFoundError, match="does not exist"):
        client.get_schedule("x")
    with pytest.raises(ScheduleNotFoundError, match="does not exist"):
        client.pause_schedule("x")
    assert not client.home.db.exists()


def test_a_schedule_whose_end_time_has_passed_is_finished() -> None:
    now = dt.datetime.now(dt.UTC)
    nightly.run(
        schedule=Schedule(
            cron_expression="0 * * * *",
            start_time=now - dt.timedelta(days=2),
            end_time=now - dt.timedelta(days=1),
            name="over",
        )
    )
    view = Client().get_schedule("over")
    assert view.status == "finished"
    assert view.next_fire_time is None
    assert not view.active


def test_list_schedules_filters_by_pipeline() -> None:
    nightly.run(schedule=Schedule(interval_second=60, name="a"))
    needs_name.run(schedule=Schedule(interval_second=60, name="b"), name="x")
    assert [s.name for s in Client().list_schedules(pipeline="needs_name")] == ["b"]
    assert [s.name for s in Client().list_schedules()] == ["a", "b"]


# -- the command line ------------------------------------------------------------------------


def test_cli_schedule_list_table_and_json() -> None:
    assert invoke("schedule", "list").stdout.strip() == "no schedules yet"
    nightly.run(schedule=Schedule(cron_expression="0 2 * * *", name="nightly-2am"))
    result = invoke("schedule", "list")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()[:2]
    assert header.split() == [
        "name",
        "pipeline",
        "expression",
        "status",
        "next",
        "fire",
        "last",
        "run",
    ]
    assert row.split()[:4] == ["nightly-2am", "nightly", "0", "2"]
    assert "active" in row
    result = invoke("schedule", "list", "--json")
    (line,) = result.stdout.splitlines()
    data = json.loads(line)
    assert data["name"] == "nightly-2am"
    assert data["pipeline"] == "nightly"
    assert data["expression"] == "0 2 * * *"
    assert data["status"] == "active"
    assert data["next_fire_time"] > dt.datetime.now(dt.UTC).timestamp()
    assert data["last_run_id"] is None
    assert data["last_run_status"] is None


def test_cli_pause_resume_delete() -> None:
    nightly.run(schedule=Schedule(interval_second=60, name="m"))
    result = invoke("schedule", "pause", "m")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "paused schedule 'm'"
    assert json.loads(invoke("schedule", "list", "--json").stdout)["status"] == "paused"
    assert invoke("schedule", "resume", "m").stdout.strip() == "resumed schedule 'm'"
    assert invoke("schedule", "delete", "m").stdout.strip() == "deleted schedule 'm'"
    assert invoke("schedule", "list").stdout.strip() == "no schedules yet"


def test_cli_unknown_schedule_is_one_error_line_exit_2() -> None:
    nightly.run(schedule=Schedule(interval_second=60, name="known"))
    result = invoke("schedule", "pause", "nope")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: no schedule named 'nope'")
    assert "schedules: known" in lines[0]


def test_the_readme_schedule_example_registers_from_a_script(tmp_path: Path) -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    (code,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "nightly_report" in b]
    script = tmp_path / "nightly.py"
    script.write_text(code)
    repo = str(Path(__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": repo}
    proc = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("nightly ")
    view = Client().get_schedule("nightly")
    assert view.code == f"{script}:nightly_report"
    assert view.parameters == {"table": "orders"}
    assert Client().list_pipeline_runs() == []
