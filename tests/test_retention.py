"""Retention: ``runs delete``, ``gc`` and ``Client().delete_pipeline_run`` remove runs from every
view and the artifacts only they used, through one audited ``runs.deleted`` event; the log stays
append-only and verifiable, and a rebuild does not bring deleted runs back."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from typer.testing import CliRunner, Result

from engine import Client, Model, pipeline, step
from engine._cli import app
from engine._engine import Engine
from engine._retention import RETENTION_STREAM, collect_garbage, delete_runs
from engine.errors import ArtifactError, RetentionError, RunNotFoundError
from events import RunsDeleted, decode
from tests.pipelines import basic

TABLES = ("runs", "step_runs", "artifacts", "cache_entries", "projection_checkpoints")


@pytest.fixture(autouse=True)
def _artifact_files(monkeypatch: pytest.MonkeyPatch) -> None:
    """Retention is about content files: store every output in one, small values too (they
    are inline by default; tests/test_artifacts_inline.py deletes runs holding those)."""
    monkeypatch.setenv("EVENFLOW_INLINE_MAX", "0")


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in TABLES}


def deletions(db: Path) -> list[RunsDeleted]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute(
            "SELECT payload FROM events WHERE stream = ? ORDER BY seq", (RETENTION_STREAM,)
        ).fetchall()
    events = [decode(payload) for (payload,) in rows]
    assert all(isinstance(e, RunsDeleted) for e in events)
    return [e for e in events if isinstance(e, RunsDeleted)]


def count_events(db: Path, stream: str) -> int:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        row = conn.execute("SELECT COUNT(*) FROM events WHERE stream = ?", (stream,)).fetchone()
    return int(row[0])


def files(home: Path) -> set[str]:
    root = home / "artifacts"
    return {
        p.relative_to(root).as_posix()
        for p in root.glob("*/*")
        if not p.relative_to(root).as_posix().startswith(".tmp")
    }


def uris(run: Any) -> dict[str, str]:
    return {sid: s.output.uri for sid, s in run.steps.items()}


def assert_rebuild_changes_nothing(db: Path) -> None:
    before = tables(db)
    Client().rebuild_projections()
    assert tables(db) == before


def test_delete_removes_the_run_everywhere_and_keeps_the_log_verifiable(
    evenflow_home: Path,
) -> None:
    first = basic.chain(start=1)  # values 1, 2, 3
    # Values 2, 3, 4: the files of 2 and 3 are shared (without the cache, which would reuse
    # the first run's artifacts themselves).
    second = basic.chain.with_options(enable_cache=False)(start=2)
    db = evenflow_home / "evenflow.db"
    logged = count_events(db, first.id)
    own = uris(first)["make_number"]  # the file of 1, used by the first run only

    report = Client().delete_pipeline_run(first.name, reason="tidy up")

    assert [r.id for r in report.runs] == [first.id]
    assert sorted(report.artifacts) == sorted(s.output.id for s in first.steps.values())
    assert report.kept == []
    assert report.uris == [own]
    assert report.bytes_freed > 0
    assert report.seq is not None
    # Gone from every view...
    client = Client()
    assert [r.id for r in client.list_pipeline_runs()] == [second.id]
    with pytest.raises(RunNotFoundError):
        client.get_pipeline_run(first.id)
    assert client.get_pipeline("chain").last_run.id == second.id
    assert client.get_artifact_version("output").version == 6
    with pytest.raises(ArtifactError):
        client.get_artifact_version("output", version=1)
    # ...its unshared file is removed, shared ones stay, the kept run still loads.
    assert own not in files(evenflow_home)
    assert set(uris(second).values()) <= files(evenflow_home)
    assert client.get_pipeline_run(second.id).steps["add_one_2"].output.load() == 4
    # The log keeps the run's events and records the deletion: who, why, what.
    assert count_events(db, first.id) == logged
    [event] = deletions(db)
    assert event.run_ids == [first.id]
    assert event.uris == [own]
    assert event.reason == "tidy up"
    assert "@" in event.actor
    assert "pid" in event.actor
    assert event.bytes_freed == report.bytes_freed
    verified = invoke("audit", "verify")
    assert verified.exit_code == 0, verified.output
    assert_rebuild_changes_nothing(db)
    assert [r.id for r in Client().list_pipeline_runs()] == [second.id]


def test_artifacts_reused_through_the_cache_stay_while_a_run_uses_them(
    evenflow_home: Path,
) -> None:
    db = evenflow_home / "evenflow.db"
    first = basic.chain(start=1)
    second = basic.chain(start=1)  # every step a cache hit: it reuses the first run's artifacts
    assert {s.status for s in second.steps.values()} == {"cached"}
    produced = sorted(s.output.id for s in first.steps.values())
    on_disk = files(evenflow_home)

    report = Client().delete_pipeline_run(first.id)

    assert sorted(report.kept) == produced
    assert report.artifacts == []
    assert report.uris == []
    assert files(evenflow_home) == on_disk
    assert Client().get_pipeline_run(second.id).steps["add_one_2"].output.load() == 3
    # The deleted run's cache entries went with it: the next run computes again.
    third = basic.chain(start=1)
    assert {s.status for s in third.steps.values()} == {"completed"}
    # Deleting the run that reused them removes the artifacts now nobody uses; their files
    # stay, because the third run stored the same content.
    report = Client().delete_pipeline_run(second.id)
    assert sorted(report.artifacts) == produced
    assert report.uris == []
    assert files(evenflow_home) == on_disk
    # The last holder goes: every file goes.
    report = Client().delete_pipeline_run(third.id)
    assert sorted(report.uris) == sorted(on_disk)
    assert files(evenflow_home) == set()
    assert Client().list_pipeline_runs() == []
    assert invoke("audit", "verify").exit_code == 0
    assert_rebuild_changes_nothing(db)


@step
def weights() -> int:
    return 42


@pipeline(model=Model(name="retained"))
def train() -> None:
    weights()


def test_artifacts_linked_to_a_model_version_are_kept(evenflow_home: Path) -> None:
    run = train()
    output = run.steps["weights"].output
    report = Client().delete_pipeline_run(run.id)
    assert report.kept == [output.id]
    assert report.uris == []
    assert output.load() == 42


@step
def wait_for(gate: str) -> str:
    deadline = time.monotonic() + 60
    while not Path(gate).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return gate


@pipeline(name="live")
def live(gate: str) -> None:
    wait_for(gate)


def test_a_live_run_is_never_deleted(evenflow_home: Path, tmp_path: Path) -> None:
    done = basic.chain(start=1)
    gate = tmp_path / "gate"
    worker = threading.Thread(target=lambda: live.with_options(run_name="still-running")(str(gate)))
    worker.start()
    try:
        deadline = time.monotonic() + 30
        while not Client().list_pipeline_runs(status="running"):
            assert time.monotonic() < deadline, "the run did not start"
            time.sleep(0.05)
        [running] = Client().list_pipeline_runs(status="running")
        with pytest.raises(RetentionError, match=r"still-running.*running"):
            Client().delete_pipeline_run(running.id)
        result = invoke("runs", "delete", "still-running", "--yes")
        assert result.exit_code == 2
        assert "only finished runs can be deleted" in result.output
        # gc skips it and says so; the finished run goes.
        result = invoke("gc", "--older-than", "0")
        assert result.exit_code == 0, result.output
        assert f"deleted 1 run: {done.name}" in result.stdout
        assert "skipped still-running (running)" in result.stdout
        assert [r.id for r in Client().list_pipeline_runs()] == [running.id]
    finally:
        gate.touch()
        worker.join(30)
    assert Client().get_pipeline_run(running.id).status == "completed"


def test_gc_deletes_only_runs_older_than_the_cutoff(evenflow_home: Path) -> None:
    run = basic.chain(start=5)

    async def gc(days: float, now: float, dry_run: bool = False) -> Any:
        async with Engine.open() as engine:
            return await collect_garbage(engine, days, now=now, dry_run=dry_run)

    report = anyio.run(gc, 1, time.time(), backend="asyncio")
    assert report.runs == []
    assert report.seq is None
    later = time.time() + 2 * 86_400
    preview = anyio.run(gc, 1, later, True, backend="asyncio")
    assert [r.id for r in preview.runs] == [run.id]
    assert preview.dry_run
    assert [r.id for r in Client().list_pipeline_runs()] == [run.id]  # a dry run changes nothing
    report = anyio.run(gc, 1, later, backend="asyncio")
    assert [r.id for r in report.runs] == [run.id]
    assert report.bytes_freed == preview.bytes_freed > 0
    assert Client().list_pipeline_runs() == []
    assert deletions(evenflow_home / "evenflow.db")[0].reason == "gc --older-than 1 days"


def test_files_left_behind_by_an_interrupted_deletion_are_swept_by_gc(
    evenflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = basic.chain(start=7)

    async def delete() -> Any:
        async with Engine.open() as engine:
            return await delete_runs(engine, [run.id])

    with monkeypatch.context() as patched:
        patched.setattr("engine._retention._remove", lambda *args: None)  # "crash" after commit
        report = anyio.run(delete, backend="asyncio")
    assert len(report.uris) == 3
    assert set(report.uris) <= files(evenflow_home)
    result = invoke("gc", "--older-than", "0")
    assert result.exit_code == 0, result.output
    assert "removed 3 leftover files" in result.stdout
    assert files(evenflow_home) == set()


def test_cli_runs_delete_asks_first_and_reports(
    evenflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = basic.chain(start=3)
    refused = invoke("runs", "delete", run.name)
    assert refused.exit_code == 2
    assert "would delete 1 run" in refused.stdout
    assert refused.output.strip().splitlines()[-1].startswith("error: not deleted: pass --yes")
    assert Client().get_pipeline_run(run.id).id == run.id
    # At a terminal, answering no deletes nothing and is no error (exit 0).
    monkeypatch.setattr("engine._cli_retention._at_a_terminal", lambda: True)
    declined = CliRunner().invoke(app, ["runs", "delete", run.name], input="n\n")
    assert declined.exit_code == 0, declined.output
    assert declined.stdout.rstrip().endswith("nothing deleted")
    assert Client().get_pipeline_run(run.id).id == run.id
    dry = invoke("runs", "delete", run.id[:8], "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert '"dry_run": true' in dry.stdout
    done = invoke("runs", "delete", run.id[:8], "--yes", "--reason", "test")
    assert done.exit_code == 0, done.output
    assert done.stdout.startswith(f"deleted 1 run: {run.name}\n")
    assert "recorded as event" in done.stdout
    missing = invoke("runs", "delete", run.id, "--yes")
    assert missing.exit_code == 2
    assert missing.output.startswith("error: no run matches")
    negative = invoke("gc", "--older-than", "-1")
    assert negative.exit_code == 2
    assert "--older-than must be >= 0" in negative.output


# -- inline artifacts and step logs --------------------------------------------------------


def test_a_file_goes_with_the_last_version_of_its_content_even_an_inline_one(
    evenflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Equal content, once in files (an earlier EVENFLOW_INLINE_MAX) and once inline.
    in_files = basic.chain.with_options(enable_cache=False)(start=1)
    monkeypatch.delenv("EVENFLOW_INLINE_MAX")
    inline = basic.chain.with_options(enable_cache=False)(start=1)
    on_disk = set(uris(in_files).values())
    assert on_disk == files(evenflow_home)
    assert all(u.startswith("data:") for u in uris(inline).values())
    # The inline versions still use the content: the files stay.
    assert Client().delete_pipeline_run(in_files.id).uris == []
    assert files(evenflow_home) == on_disk
    # Its last version goes: so do its files, though that version names none of them.
    report = Client().delete_pipeline_run(inline.id)
    assert sorted(report.uris) == sorted(on_disk)
    assert report.bytes_freed > 0
    assert files(evenflow_home) == set()
    assert invoke("audit", "verify").exit_code == 0
    assert_rebuild_changes_nothing(evenflow_home / "evenflow.db")


@step
def chatty(n: int) -> int:
    print(f"step says {n}")
    return n


@pipeline(name="chatty")
def talk(n: int) -> None:
    chatty(n)


def test_deleting_a_run_removes_its_step_logs(evenflow_home: Path) -> None:
    gone, kept = talk(1), talk(2)
    logs = evenflow_home / "logs"
    assert (logs / gone.id).is_dir()
    assert (logs / kept.id).is_dir()
    report = Client().delete_pipeline_run(gone.id)
    assert report.logs == [f"logs/{gone.id}"]
    assert report.log_bytes > 0
    assert not (logs / gone.id).exists()
    assert Client().get_pipeline_run(kept.id).steps["chatty"].logs() == "step says 2\n"
    result = invoke("gc", "--older-than", "0", "--json")
    assert result.exit_code == 0, result.output
    assert f'"logs/{kept.id}"' in result.stdout
    assert list(logs.iterdir()) == []


def test_gc_removes_step_logs_an_interrupted_deletion_left(
    evenflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = talk(3)

    async def delete() -> Any:
        async with Engine.open() as engine:
            return await delete_runs(engine, [run.id])

    with monkeypatch.context() as patched:
        patched.setattr("engine._retention._remove", lambda *args: None)  # "crash" after commit
        anyio.run(delete, backend="asyncio")
    assert (evenflow_home / "logs" / run.id).is_dir()
    result = invoke("gc", "--older-than", "0")
    assert result.exit_code == 0, result.output
    assert "removed the leftover step logs of 1 run" in result.stdout
    assert not (evenflow_home / "logs" / run.id).exists()


# -- the projection of runs.deleted, on hand-made logs -------------------------------------


def _retention_log() -> Any:
    from events import (
        ArtifactStored,
        MetadataLogged,
        RunCreated,
        RunStarted,
        RunSucceeded,
        StepSpec,
        StepStarted,
        StepSucceeded,
    )
    from tests.test_projections_storage import Log, ref

    log = Log()

    def run(run_id: str, name: str, artifact: str) -> None:
        spec = StepSpec(id="s", name="fn")
        log.add(run_id, RunCreated(pipeline="p", run_name=name, steps=[spec]), RunStarted())
        log.add(
            run_id,
            StepStarted(step="s"),
            ArtifactStored(step="s", artifact=ref(artifact)),
            StepSucceeded(step="s", outputs={"output": artifact}, cache_key=f"k-{artifact}"),
            RunSucceeded(),
        )

    run("run-a", "same-name", "a1")
    run("run-b", "b", "b1")
    log.add(RETENTION_STREAM, RunsDeleted(run_ids=["run-a"], artifacts=["a1"]))
    run("run-c", "same-name", "c1")  # takes the freed name; its artifact is a new version
    log.add("run-a", MetadataLogged(metadata={"late": True}))  # after deletion: ignored
    log.add(RETENTION_STREAM, RunsDeleted(run_ids=["run-b", "run-missing"], artifacts=["b1"]))
    run("run-d", "d", "d1")
    log.add(RETENTION_STREAM, RunsDeleted(run_ids=["run-d"], artifacts=["d1"]))
    run("run-e", "e", "e1")  # the newest version was deleted: its number is given again
    return log


@pytest.mark.parametrize(("batch", "cache_size"), [(1000, 32_768), (3, 2), (1, 1)])
def test_deleted_runs_leave_every_table_and_a_rebuild_agrees(
    tmp_path: Path, batch: int, cache_size: int
) -> None:
    import projections
    from projections import Projector
    from tests.test_projections_storage import append, dump, install, open_db

    log = _retention_log()
    conn = open_db(tmp_path / "db")
    proj = Projector(cache_size=cache_size)
    install(conn, proj)
    for start in range(0, len(log.records), batch):
        append(conn, log.records[start : start + batch], proj)
    runs = {r.id: r.name for r in projections.list_runs(conn)}
    assert runs == {"run-c": "same-name", "run-e": "e"}
    assert projections.get_steps(conn, "run-a") == {}
    assert [a.id for a in projections.list_artifact_versions(conn, "output")] == ["c1", "e1"]
    assert [a.version for a in projections.list_artifact_versions(conn, "output")] == [3, 4]
    assert sorted(projections.cache_entries(conn, ["fn"])) == ["k-c1", "k-e1"]
    before = dump(conn)
    assert projections.rebuild(conn) == len(log.records)
    assert dump(conn) == before
