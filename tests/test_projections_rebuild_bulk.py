"""The rebuild's bulk-load path: the events table read with one cursor in chunks, artifacts
looked up a chunk at a time, query indexes created last, and the settings it changes restored."""

from __future__ import annotations

import gc
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

import projections
from events import ArtifactStored, RunCreated, RunsDeleted, StepReady, StepSpec, StepSucceeded
from projections import Projector, _projector, fold_run
from projections._tables import QUERY_INDEXES
from tests.test_projections_storage import RUN, Log, append, dump, install, open_db, ref, w2_log

OTHER = "0a1b2c3d-0000-4000-8000-000000000002"
GONE = "0a1b2c3d-0000-4000-8000-000000000003"


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = open_db(tmp_path / "db")
    yield c
    c.close()


def mixed_log() -> Log:
    """Two runs sharing an artifact name, an artifact stored again by a later step (as a
    resumed run records it), and a deleted run, spread over many small chunks."""
    log = w2_log(40)
    log.add(OTHER, RunCreated(pipeline="p", run_name="r", steps=[StepSpec(id="t", name="n")]))
    log.add(OTHER, StepReady(step="t"), ArtifactStored(step="t", artifact=ref("x3")))
    log.add(GONE, RunCreated(pipeline="p", run_name="g", steps=[StepSpec(id="u", name="n")]))
    log.add(GONE, ArtifactStored(step="u", artifact=ref("y1")))
    log.add(GONE, StepSucceeded(step="u", outputs={"output": "y1"}, cache_key="kg"))
    log.add("retention", RunsDeleted(run_ids=[GONE], artifacts=["y1"]))
    log.add(OTHER, ArtifactStored(step="t", artifact=ref("z9")))
    log.add(OTHER, StepSucceeded(step="t", outputs={"output": "z9"}))
    return log


@pytest.mark.parametrize(("chunk", "flush"), [(1, 1), (7, 5), (64, 20_000)])
def test_a_rebuild_read_in_chunks_gives_the_incremental_rows(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch, chunk: int, flush: int
) -> None:
    log = mixed_log()
    proj = Projector()
    install(conn, proj)
    for start in range(0, len(log.records), 5):
        append(conn, log.records[start : start + 5], proj)
    before = dump(conn)
    monkeypatch.setattr(_projector, "_CHUNK", chunk)
    monkeypatch.setattr(_projector, "_FLUSH", flush)
    assert projections.rebuild(conn) == len(log.records)
    assert dump(conn) == before
    assert projections.get_run_state(conn, RUN) == fold_run(log.records, run_id=RUN)


def test_a_catch_up_read_in_chunks_gives_the_incremental_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = mixed_log()
    folded = open_db(tmp_path / "folded")
    install(folded, Projector())
    append(folded, log.records, Projector())
    behind = open_db(tmp_path / "behind")
    append(behind, log.records, None)  # appended by a process without the projection
    monkeypatch.setattr(_projector, "_CHUNK", 3)
    install(behind, Projector())  # folds the whole table
    assert dump(behind) == dump(folded)


def test_a_rebuild_restores_what_it_changes_and_creates_every_index(
    conn: sqlite3.Connection,
) -> None:
    log = w2_log(5)
    proj = Projector()
    install(conn, proj)
    append(conn, log.records, proj)
    conn.execute("PRAGMA cache_size = -1000")
    assert gc.isenabled()
    seen: list[bool] = []
    real = Projector._catch_up

    def spy(self: Projector, c: sqlite3.Connection, batch: list[object]) -> int:
        seen.append(gc.isenabled())
        return real(self, c, batch)  # type: ignore[arg-type]

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Projector, "_catch_up", spy)
        assert projections.rebuild(conn) == len(log.records)
    assert seen == [False]  # paused for the fold...
    assert gc.isenabled()  # ...and running again
    assert conn.execute("PRAGMA cache_size").fetchone()[0] == -1000
    names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert {statement.split()[5] for statement in QUERY_INDEXES} <= names


def test_a_failed_rebuild_rolls_back_and_restores_the_collector(
    conn: sqlite3.Connection, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = w2_log(3)
    proj = Projector()
    install(conn, proj)
    append(conn, log.records, proj)
    before = dump(conn)

    def boom(self: Projector, c: sqlite3.Connection, batch: list[object]) -> int:
        raise RuntimeError("fold failed")

    monkeypatch.setattr(Projector, "_catch_up", boom)
    with pytest.raises(RuntimeError, match="fold failed"):
        projections.rebuild(conn)
    assert gc.isenabled()
    assert not conn.in_transaction
    assert dump(conn) == before


def test_the_collector_stays_paused_if_it_was(conn: sqlite3.Connection) -> None:
    proj = Projector()
    install(conn, proj)
    append(conn, w2_log(2).records, proj)
    gc.disable()
    try:
        projections.rebuild(conn)
        assert not gc.isenabled()
    finally:
        gc.enable()
