"""``evenflow projections rebuild``: dropping and refolding every persisted view from the log
changes nothing any query or CLI view shows, byte for byte."""

from __future__ import annotations

import contextlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from engine import Client
from engine._cli import app
from engine._cli_render import run_dict
from engine.errors import RunNotFoundError
from tests.pipelines import basic

TABLES = ("runs", "step_runs", "artifacts", "projection_checkpoints")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in TABLES}


def snapshot() -> dict[str, Any]:
    client = Client()
    runs = client.list_pipeline_runs()
    shown: dict[str, Any] = {}
    for run in runs:
        by_name = client.get_pipeline_run(run.name)
        shown[run.id] = {
            "view": run_dict(by_name),
            "by_prefix": client.get_pipeline_run(run.id[:8]).name,
            "steps": {
                sid: (s.status, s.cache_key, s.original_step_run_id, s.start_time, s.end_time)
                for sid, s in by_name.steps.items()
            },
            "outputs": [a.id for a in by_name.outputs],
            "show": invoke("runs", "show", run.id, "--json").stdout,
        }
    return {
        "runs": shown,
        "failed": [r.id for r in client.list_pipeline_runs(status="failed")],
        "by_pipeline": [r.id for r in client.list_pipeline_runs(pipeline="chain")],
        "last_chain": client.get_pipeline("chain").last_run.id,
        "artifact": client.get_artifact_version("output").id,
        "artifact_v1": client.get_artifact_version("output", version=1).id,
        "list": invoke("runs", "list", "--json").stdout,
    }


def test_rebuild_changes_nothing_anyone_sees(evenflow_home: Path) -> None:
    basic.chain(start=1)
    basic.chain(start=1)  # cache hits
    basic.chain(start=2)
    basic.fan(n=3)
    basic.halves()
    basic.failing_continue.with_options(raise_on_failure=False)()
    db = evenflow_home / "evenflow.db"
    before, rows = snapshot(), tables(db)
    assert len(before["runs"]) == 6
    assert before["failed"]

    result = invoke("projections", "rebuild")
    assert result.exit_code == 0, result.output
    assert "rebuilt the projections" in result.stdout
    assert tables(db) == rows  # the rows are byte-identical
    assert snapshot() == before


def test_rebuild_repairs_damaged_views(evenflow_home: Path) -> None:
    basic.chain(start=1)
    failed = basic.failing_continue.with_options(raise_on_failure=False)()
    db = evenflow_home / "evenflow.db"
    rows = tables(db)
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("DELETE FROM runs WHERE id = ?", (failed.id,))
        conn.execute("DELETE FROM step_runs WHERE run_id = ?", (failed.id,))
        conn.commit()
    with pytest.raises(RunNotFoundError):
        Client().get_pipeline_run(failed.id)
    assert Client().rebuild_projections() == len(failed.events()) + len(
        Client().list_pipeline_runs(pipeline="chain")[0].events()
    )
    assert tables(db) == rows
    assert Client().get_pipeline_run(failed.id).status.value == "failed"


def test_rebuild_without_a_database_is_a_usage_error(evenflow_home: Path) -> None:
    result = invoke("projections", "rebuild")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no evenflow database at")
