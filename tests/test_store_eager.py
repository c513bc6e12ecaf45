"""``append(..., eager=True)``: committed in the caller when the writer is idle, queued behind
anything already submitted otherwise; the log stays in submission order either way."""

from __future__ import annotations

from pathlib import Path

import pytest

from events import EventStore, StepReady


@pytest.mark.anyio
async def test_an_eager_append_commits_and_reaches_subscribers(tmp_path: Path) -> None:
    async with EventStore.open(tmp_path / "e.db") as store:
        async with store.subscribe(0) as sub:
            assert await store.append("s", [StepReady(step="a")], eager=True) == [1]
            assert await store.append("s", [StepReady(step="b")], 1, eager=True) == [2]
            got = []
            async for rec in sub:
                got.append(rec)
                if len(got) == 2:
                    break
        assert [r.event.step for r in got] == ["a", "b"]  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_an_eager_append_queues_behind_submitted_ones(tmp_path: Path) -> None:
    async with EventStore.open(tmp_path / "e.db") as store:
        first = store.submit("s", [StepReady(step="queued")])
        assert first is not None
        seqs = await store.append("s", [StepReady(step="eager")], eager=True)
        await first.done.wait()
        assert first.seqs == [1]
        assert seqs == [2]
        rows = await store.read_stream("s")
        assert [r.event.step for r in rows] == ["queued", "eager"]  # type: ignore[attr-defined]


@pytest.mark.anyio
async def test_an_eager_append_checks_the_expected_version(tmp_path: Path) -> None:
    from events import ConcurrencyError

    async with EventStore.open(tmp_path / "e.db") as store:
        await store.append("s", [StepReady(step="a")], eager=True)
        with pytest.raises(ConcurrencyError):
            await store.append("s", [StepReady(step="b")], 0, eager=True)
        assert len(await store.read_stream("s")) == 1
