"""Deleting the newest rows stays detectable even after new appends: seqs are never reused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import anyio
import pytest

from events import EventStore, StepReady, audit_database


@pytest.mark.anyio
async def test_appends_after_a_truncation_do_not_hide_it(tmp_path: Path) -> None:
    db = tmp_path / "evenflow.db"
    async with EventStore.open(db) as store:
        await store.append("s", [StepReady(step=str(i)) for i in range(5)])
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER events_no_delete")
    conn.execute("DELETE FROM events WHERE seq = 5")
    conn.commit()
    conn.close()
    async with EventStore.open(db) as store:
        assert await store.append("t", [StepReady(step="after")]) == [6]
    report = await anyio.to_thread.run_sync(audit_database, db)
    assert not report.ok
    kinds = {p.kind for p in report.problems}
    assert "missing" in kinds or "truncated" in kinds
