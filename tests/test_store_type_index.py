"""The type index leaves out the types every step appends; lookups by type still find every
event, use the index where it holds them, and a database with the old full index is converted."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine._run_watch import _CANCEL_REQUESTED, _cancel_requested
from events import (
    COLD_TYPES,
    ArtifactRef,
    ArtifactStored,
    EventStore,
    RunCancelRequested,
    RunCreated,
    RunsDeleted,
    ScheduleCreated,
    StepCached,
    StepReady,
    StepStarted,
    _schema,
)

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def index_sql(path: Path) -> str:
    conn = sqlite3.connect(path)
    try:
        row = conn.execute("SELECT sql FROM sqlite_master WHERE name = 'events_by_type'").fetchone()
        return str(row[0])
    finally:
        conn.close()


def plan(path: Path, sql: str, params: tuple[object, ...]) -> str:
    conn = sqlite3.connect(path)
    try:
        return " ".join(str(r[-1]) for r in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
    finally:
        conn.close()


def ref(i: int) -> ArtifactRef:
    return ArtifactRef(
        id=f"a{i}", name="output", content_hash="h", uri="u", materializer="m", type_name="t"
    )


EVENTS = {
    "ready": StepReady(step="s"),
    "started": StepStarted(step="s", attempt=1),
    "stored": ArtifactStored(step="s", artifact=ref(0)),
    "cached": StepCached(
        step="s", cache_key="k", source_run="r", source_step="s", outputs={"output": ref(1)}
    ),
    "created": RunCreated(pipeline="p", run_name="r", steps=[]),
    "schedule": ScheduleCreated(
        schedule_id="sc", name="n", pipeline="p", cron_expression="* * * * *"
    ),
    "deleted": RunsDeleted(run_ids=["r"]),
}


async def test_a_new_database_indexes_only_the_cold_types(tmp_path: Path) -> None:
    path = tmp_path / "evenflow.db"
    async with EventStore.open(path):
        pass
    sql = index_sql(path)
    assert COLD_TYPES in sql
    for hot in _schema.HOT_TYPES:
        assert f"'{hot}'" in sql
    # A lookup of a cold type uses it; the hot ones are not in it, so theirs cannot.
    cold_sql, cold_params = _schema.type_prefix_filter("schedule.")
    assert "events_by_type" in plan(path, f"SELECT seq FROM events WHERE {cold_sql}", cold_params)
    hot_sql, hot_params = _schema.type_prefix_filter("step.")
    assert COLD_TYPES not in hot_sql
    assert "events_by_type" not in plan(path, f"SELECT seq FROM events WHERE {hot_sql}", hot_params)


@given(
    kinds=st.lists(st.sampled_from(sorted(EVENTS)), min_size=1, max_size=30),
    prefix=st.sampled_from(
        ["", "s", "st", "step.", "step.c", "step.r", "artifact.", "run", "runs.", "schedule.", "x"]
    ),
)
@settings(max_examples=40)
def test_reading_by_type_finds_exactly_the_events_of_that_prefix(
    tmp_path_factory: pytest.TempPathFactory, kinds: list[str], prefix: str
) -> None:
    async def scenario() -> tuple[list[int], list[int]]:
        path = tmp_path_factory.mktemp("db") / "evenflow.db"
        async with EventStore.open(path) as store:
            for i, kind in enumerate(kinds):
                await store.append(f"s{i % 3}", [EVENTS[kind]])
            everything = await store.read_range()
            found = await store.read_by_type(prefix)
        expected = [r.seq for r in everything if r.type.startswith(prefix)]
        return [r.seq for r in found], expected

    found, expected = anyio.run(scenario, backend="asyncio")
    assert found == expected


async def test_a_database_with_the_full_index_gets_the_partial_one_on_open(
    tmp_path: Path,
) -> None:
    path = tmp_path / "evenflow.db"
    async with EventStore.open(path) as store:
        await store.append("r", [StepReady(step="a"), StepCached(**_cached())])
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP INDEX events_by_type")
    conn.execute("CREATE INDEX events_by_type ON events (type, seq)")  # as older versions made
    conn.close()
    assert COLD_TYPES not in index_sql(path)
    async with EventStore.open(path) as store:
        assert COLD_TYPES in index_sql(path)
        cached = await store.read_by_type("step.cached")
        assert [r.seq for r in cached] == [2]
        assert [r.seq for r in await store.read_by_type("step.")] == [1, 2]
    async with EventStore.open(path):  # already partial: nothing to do, opens as usual
        assert COLD_TYPES in index_sql(path)


def _cached() -> dict[str, object]:
    return {
        "step": "b",
        "cache_key": "k",
        "source_run": "r0",
        "source_step": "b",
        "outputs": {"output": ref(2)},
    }


async def test_the_cancel_request_poll_looks_the_type_up_in_the_index(tmp_path: Path) -> None:
    path = tmp_path / "evenflow.db"
    async with EventStore.open(path) as store:
        await store.append("run", [StepReady(step=f"s{i}") for i in range(200)])
        assert "events_by_type" in plan(path, _CANCEL_REQUESTED, ("run",))
        assert await store.run_read(_cancel_requested, "run") is None
        await store.append("run", [RunCancelRequested(requested_by="ops")])
        await store.append("other", [RunCancelRequested(requested_by="elsewhere")])
        assert await store.run_read(_cancel_requested, "run") == "ops"


async def test_the_tail_backlog_of_a_cold_type_uses_the_index(tmp_path: Path) -> None:
    from events._tail import _filters

    path = tmp_path / "evenflow.db"
    async with EventStore.open(path):
        pass
    where, params = _filters(None, "run.cancel")
    sql = f"SELECT seq FROM events{where} ORDER BY seq DESC LIMIT ?"
    assert "events_by_type" in plan(path, sql, (*params, 10))
    where, params = _filters("r", "step.")  # hot types: not in the index, found by seq
    assert COLD_TYPES not in where


async def test_an_index_whose_condition_only_starts_like_ours_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "evenflow.db"
    async with EventStore.open(path):
        pass
    shorter = COLD_TYPES.rsplit(" AND ", 1)[0]  # one hot type fewer
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("DROP INDEX events_by_type")
    conn.execute(f"CREATE INDEX events_by_type ON events (type, seq) WHERE {shorter}")
    assert not _schema.type_index_is_partial(conn)
    conn.close()
    async with EventStore.open(path):
        assert index_sql(path).endswith(f" WHERE {COLD_TYPES}")
