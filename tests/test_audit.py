"""``evenflow audit``: an intact log passes; each kind of tampering (made with the stdlib sqlite3
after dropping the triggers) fails naming the first bad seq and what is wrong; exports of one run
check on their own."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest
from typer.testing import CliRunner, Result

import events
from engine import Client
from engine._cli import app
from tests.pipelines import basic

COLUMNS = "seq, stream, version, type, recorded_at, payload, hash"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def error_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.fixture
def db(evenflow_home: Path) -> Path:
    """A log of 30 events over three interleaved streams."""
    path = evenflow_home / "evenflow.db"

    async def fill() -> None:
        async with events.EventStore.open(path) as store:
            for i in range(10):
                for stream in ("a", "b", "c"):
                    await store.append(stream, [events.StepReady(step=f"{stream}{i}")])

    anyio.run(fill, backend="asyncio")
    return path


@contextlib.contextmanager
def tamper(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain connection with the append-only triggers dropped, committed on exit."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("DROP TRIGGER events_no_delete")
        conn.execute("BEGIN")
        yield conn
        conn.execute("COMMIT")
    finally:
        conn.close()


def row(conn: sqlite3.Connection, seq: int) -> tuple[object, ...]:
    return tuple(conn.execute(f"SELECT {COLUMNS} FROM events WHERE seq = ?", (seq,)).fetchone())


def test_an_intact_log_passes(db: Path) -> None:
    result = invoke("audit", "verify")
    assert result.exit_code == 0, result.output
    assert "ok:" in result.stdout
    assert "30 events checked" in result.stdout
    assert "triggers in place" in result.stdout


def test_an_edited_payload_is_named(db: Path) -> None:
    with tamper(db) as conn:
        payload = events.encode(events.StepReady(step="forged"))
        conn.execute("UPDATE events SET payload = ? WHERE seq = 11", (payload,))
    result = invoke("audit", "verify")
    assert result.exit_code == 1
    line = error_line(result)
    assert "seq 11: row edited" in line
    assert "trigger events_no_update is missing" in line  # dropped to do it


def test_a_deleted_middle_row_is_named(db: Path) -> None:
    with tamper(db) as conn:
        conn.execute("DELETE FROM events WHERE seq = 7")
    line = error_line(invoke("audit", "verify"))
    assert "seq 7: rows deleted: seq 7 is missing" in line


def test_an_inserted_row_is_named(db: Path) -> None:
    with tamper(db) as conn:
        # Make room at seq 12 (the chain does not cover seq numbers), then insert a row there.
        conn.execute("UPDATE events SET seq = -seq WHERE seq >= 12")
        conn.execute("UPDATE events SET seq = 1 - seq WHERE seq < 0")
        forged = events.encode(events.StepReady(step="forged"))
        conn.execute(
            f"INSERT INTO events ({COLUMNS}) VALUES (12, 'x', 1, 'step.ready', 0.0, ?, ?)",
            (forged, bytes(32)),
        )
    line = error_line(invoke("audit", "verify"))
    assert "seq 12: row inserted" in line


def test_swapped_rows_are_named(db: Path) -> None:
    with tamper(db) as conn:
        fifth, sixth = row(conn, 5), row(conn, 6)
        conn.execute("DELETE FROM events WHERE seq IN (5, 6)")
        conn.execute(f"INSERT INTO events ({COLUMNS}) VALUES (5, ?, ?, ?, ?, ?, ?)", sixth[1:])
        conn.execute(f"INSERT INTO events ({COLUMNS}) VALUES (6, ?, ?, ?, ?, ?, ?)", fifth[1:])
    line = error_line(invoke("audit", "verify"))
    assert "seq 5: rows reordered: seq 5 and seq 6 are swapped" in line


def test_a_row_moved_further_is_named(db: Path) -> None:
    with tamper(db) as conn:
        fifth, ninth = row(conn, 5), row(conn, 9)
        conn.execute("DELETE FROM events WHERE seq IN (5, 9)")
        conn.execute(f"INSERT INTO events ({COLUMNS}) VALUES (5, ?, ?, ?, ?, ?, ?)", ninth[1:])
        conn.execute(f"INSERT INTO events ({COLUMNS}) VALUES (9, ?, ?, ?, ?, ?, ?)", fifth[1:])
    line = error_line(invoke("audit", "verify"))
    assert "seq 5: rows reordered: the row at seq 9 belongs at seq 5" in line


def test_a_deleted_newest_row_is_named(db: Path) -> None:
    with tamper(db) as conn:
        conn.execute("DELETE FROM events WHERE seq = 30")
    line = error_line(invoke("audit", "verify"))
    assert "seq 30: log truncated" in line


def test_a_missing_trigger_is_reported(db: Path) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("DROP TRIGGER events_no_delete")
        conn.commit()
    result = invoke("audit", "verify")
    assert result.exit_code == 1
    assert "trigger events_no_delete is missing: DELETE is allowed" in error_line(result)


def test_an_altered_trigger_is_reported(db: Path) -> None:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        conn.execute("DROP TRIGGER events_no_update")
        conn.execute("CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT 1; END")
        conn.commit()
    assert "trigger events_no_update was altered" in error_line(invoke("audit", "verify"))


def test_the_api_reports_kinds_and_streams_the_walk(db: Path) -> None:
    report = events.audit_database(db)
    assert report.ok
    assert (report.checked, report.head_seq) == (30, 30)
    with tamper(db) as conn:
        conn.execute("UPDATE events SET recorded_at = 1.0 WHERE seq = 3")
    report = events.audit_database(db)
    first = report.problems[0]
    assert (first.seq, first.kind) == (3, "edited")
    assert (report.checked, report.head_seq) == (2, 2)


def test_a_file_that_is_not_a_log_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(events.StoreError, match="no evenflow database"):
        events.audit_database(tmp_path / "missing.db")
    bogus = tmp_path / "bogus.db"
    bogus.write_bytes(b"not sqlite" * 20)
    with pytest.raises(events.StoreError, match="not an evenflow database"):
        events.audit_database(bogus)


# -- one run, and its export -----------------------------------------------------------------


@pytest.fixture
def two_runs(evenflow_home: Path) -> tuple[str, str]:
    first = basic.chain(start=1)
    failed = basic.failing_continue.with_options(raise_on_failure=False)()
    return first.id, failed.id


def test_run_scoped_verify_and_export_roundtrip(two_runs: tuple[str, str], tmp_path: Path) -> None:
    _, failed = two_runs
    result = invoke("audit", "verify", "--run", failed[:8])
    assert result.exit_code == 0, result.output
    out = tmp_path / "run.jsonl"
    result = invoke("audit", "export", failed, "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    run_events = Client().get_pipeline_run(failed).events()
    assert [x["seq"] for x in lines] == [e.seq for e in run_events]
    assert {"seq", "type", "event", "payload", "hash", "prev_hash"} <= set(lines[0])
    assert lines[-1]["type"] == "run.failed"
    result = invoke("audit", "verify", "--file", str(out))
    assert result.exit_code == 0, result.output
    assert f"{len(lines)} events checked" in result.stdout


def test_an_edited_export_line_fails_naming_line_and_seq(
    two_runs: tuple[str, str], tmp_path: Path
) -> None:
    _, failed = two_runs
    out = tmp_path / "run.jsonl"
    assert invoke("audit", "export", failed, "--out", str(out)).exit_code == 0
    lines = out.read_text().splitlines()
    edited = json.loads(lines[4])
    edited["recorded_at"] += 1.0
    (tmp_path / "time.jsonl").write_text("\n".join([*lines[:4], json.dumps(edited), *lines[5:]]))
    line = error_line(invoke("audit", "verify", "--file", str(tmp_path / "time.jsonl")))
    assert f"line 5 (seq {edited['seq']}): row edited" in line

    failed_line = next(i for i, x in enumerate(lines) if '"step.failed"' in x)
    readable = json.loads(lines[failed_line])
    readable["event"]["error"] = "all fine"
    text = "\n".join([*lines[:failed_line], json.dumps(readable), *lines[failed_line + 1 :]])
    (tmp_path / "event.jsonl").write_text(text)
    line = error_line(invoke("audit", "verify", "--file", str(tmp_path / "event.jsonl")))
    assert f"line {failed_line + 1} (seq {readable['seq']})" in line
    assert "readable 'event' fields do not match" in line

    (tmp_path / "gap.jsonl").write_text("\n".join([*lines[:2], *lines[3:]]))
    line = error_line(invoke("audit", "verify", "--file", str(tmp_path / "gap.jsonl")))
    assert "line 3" in line
    assert "rows deleted: version 3 is missing" in line

    (tmp_path / "junk.jsonl").write_text("{not json\n")
    assert "line 1: not an export line" in error_line(
        invoke("audit", "verify", "--file", str(tmp_path / "junk.jsonl"))
    )


def test_run_and_file_together_is_a_usage_error(db: Path) -> None:
    result = invoke("audit", "verify", "--run", "x", "--file", "y")
    assert result.exit_code == 2
    assert "give --run or --file, not both" in error_line(result)
