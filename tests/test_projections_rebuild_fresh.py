"""The rebuild's fold over freshly created tables: artifacts known new without a query (until a
deletion takes rows out of the table), and the inlined fold of the hot step transitions."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

import projections
from events import (
    ArtifactStored,
    RunCreated,
    RunsDeleted,
    StepCached,
    StepReady,
    StepSpec,
    StepStarted,
    StepSucceeded,
)
from projections import Projector, _projector, fold_run
from tests.test_projections_storage import RUN, Log, append, dump, install, open_db, ref, w2_log

OTHER = "0a1b2c3d-0000-4000-8000-000000000012"
GONE = "0a1b2c3d-0000-4000-8000-000000000013"
LATE = "0a1b2c3d-0000-4000-8000-000000000014"


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = open_db(tmp_path / "db")
    yield c
    c.close()


def deleted_then_stored_again() -> Log:
    """An artifact of a deleted run stored again afterwards (a new version), and another stored
    twice; hot events of unknown steps and of streams that are not runs; a cached step."""
    log = w2_log(6)
    spec = [StepSpec(id="u", name="n")]
    log.add(GONE, RunCreated(pipeline="p", run_name="g", steps=spec))
    log.add(GONE, StepReady(step="u"), ArtifactStored(step="u", artifact=ref("y1")))
    log.add(GONE, StepSucceeded(step="u", outputs={"output": "y1"}, cache_key="kg"))
    log.add("retention", RunsDeleted(run_ids=[GONE], artifacts=["y1"]))
    log.add(OTHER, RunCreated(pipeline="p", run_name="o", steps=spec))
    log.add(OTHER, StepStarted(step="u"), ArtifactStored(step="u", artifact=ref("y1")))
    log.add(OTHER, ArtifactStored(step="u", artifact=ref("x1")))  # already stored by RUN
    log.add(OTHER, StepReady(step="nope"), ArtifactStored(step="nope", artifact=ref("z1")))
    log.add(OTHER, StepSucceeded(step="u", outputs={"output": "y1"}, cache_key="ko"))
    log.add("elsewhere", StepReady(step="u"), ArtifactStored(step="u", artifact=ref("z2")))
    log.add(LATE, StepStarted(step="u"))  # before its run.created
    log.add(LATE, RunCreated(pipeline="p", run_name="l", steps=spec))
    cached = StepCached(step="u", cache_key="ko", source_run=OTHER, source_step="u")
    log.add(LATE, msgspec.structs.replace(cached, outputs={"output": ref("y1")}))
    return log


@pytest.mark.parametrize(("chunk", "flush"), [(1, 1), (5, 3), (1000, 20_000)])
def test_a_rebuild_from_empty_tables_gives_the_incremental_rows(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch, chunk: int, flush: int
) -> None:
    log = deleted_then_stored_again()
    proj = Projector()
    install(conn, proj)
    for start in range(0, len(log.records), 4):
        append(conn, log.records[start : start + 4], proj)
    before = dump(conn)
    assert [row[1:4] for row in before[2] if row[1] == "y1"] == [("y1", "output", 7)]  # again
    monkeypatch.setattr(_projector, "_CHUNK", chunk)
    monkeypatch.setattr(_projector, "_FLUSH", flush)
    assert projections.rebuild(conn) == len(log.records)
    assert dump(conn) == before
    for run_id in (RUN, OTHER, LATE):
        assert projections.get_run_state(conn, run_id) == fold_run(log.records, run_id=run_id)


def test_only_the_rebuild_fold_skips_the_artifact_lookups(conn: sqlite3.Connection) -> None:
    log = deleted_then_stored_again()
    install(conn, Projector())
    append(conn, log.records, None)  # appended by a process without the projection
    queries: list[str] = []
    conn.set_trace_callback(queries.append)
    projections.rebuild(conn)
    lookups = [q for q in queries if q.startswith("SELECT id FROM artifacts WHERE id IN")]
    assert lookups == []
    queries.clear()
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("DELETE FROM projection_checkpoints")
    Projector().install(conn)  # a catch-up over existing tables still asks the table
    conn.execute("COMMIT")
    conn.set_trace_callback(None)
    assert any(q.startswith("SELECT id FROM artifacts WHERE id IN") for q in queries)
