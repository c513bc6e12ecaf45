"""Subscriptions: committed events in seq order from any seq, catch-up then live, no gap and no
duplicate, whatever commits while they catch up."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from events import EventStore, Recorded, StepReady, StoreError, Subscription, _subscription

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "evenflow.db"


@pytest.fixture
async def store(db: Path) -> AsyncIterator[EventStore]:
    async with EventStore.open(db) as s:
        yield s


async def fill(store: EventStore, count: int, *, batch: int = 100, stream: str = "s") -> None:
    for start in range(0, count, batch):
        n = min(batch, count - start)
        await store.append(stream, [StepReady(step=f"{start + i}") for i in range(n)])


async def take(sub: Subscription, count: int) -> list[Recorded]:
    got: list[Recorded] = []
    with anyio.fail_after(20):
        async for rec in sub:
            got.append(rec)
            if len(got) == count:
                break
    return got


def seqs(recs: list[Recorded]) -> list[int]:
    return [r.seq for r in recs]


async def test_from_zero_catches_up_then_goes_live(store: EventStore) -> None:
    await fill(store, 10, batch=3)
    async with store.subscribe(0) as sub:
        assert seqs(await take(sub, 10)) == list(range(1, 11))
        await fill(store, 5, batch=2)
        live = await take(sub, 5)
        assert seqs(live) == list(range(11, 16))
        assert sub.cursor == 15
    assert [r.event for r in live] == [StepReady(step=str(i)) for i in (0, 1, 2, 3, 4)]


async def test_from_the_middle(store: EventStore) -> None:
    await fill(store, 20, batch=7)
    async with store.subscribe(12) as sub:
        assert seqs(await take(sub, 8)) == list(range(13, 21))
        await store.append("s", [StepReady(step="x")])
        assert seqs(await take(sub, 1)) == [21]


async def test_subscribed_before_any_event(store: EventStore) -> None:
    async with store.subscribe() as sub, anyio.create_task_group() as tg:
        tg.start_soon(functools.partial(fill, store, 50, batch=5))
        assert seqs(await take(sub, 50)) == list(range(1, 51))


async def test_appends_during_catch_up_have_no_gap_and_no_duplicate(store: EventStore) -> None:
    # More than a page of backlog, so catching up takes several reads while writers commit.
    await fill(store, 2500, batch=250)
    async with store.subscribe(0) as sub, anyio.create_task_group() as tg:
        for p in range(3):
            tg.start_soon(functools.partial(fill, store, 600, batch=7, stream=f"p{p}"))
        got = await take(sub, 2500 + 1800)
    assert seqs(got) == list(range(1, 4301))
    assert await store.last_seq() == 4300


async def test_many_subscribers_see_the_same_sequence(store: EventStore) -> None:
    await fill(store, 30, batch=4)
    results: dict[int, list[int]] = {}

    async def follow(since: int) -> None:
        async with store.subscribe(since) as sub:
            results[since] = seqs(await take(sub, 130 - since))

    async with anyio.create_task_group() as tg:
        for since in (0, 10, 29):
            tg.start_soon(follow, since)
        await fill(store, 100, batch=3, stream="t")
    assert results == {since: list(range(since + 1, 131)) for since in (0, 10, 29)}


async def test_buffer_overflow_recovers_from_the_table(
    store: EventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_subscription, "_BUFFER", 40)
    async with store.subscribe(0) as sub:
        await fill(store, 5)  # catch-up finished: the subscriber is live, with an empty buffer
        assert seqs(await take(sub, 5)) == [1, 2, 3, 4, 5]
        # Nobody reads while 600 events commit: the 40-event buffer overflows many times.
        await fill(store, 600, batch=9)
        assert sub._catch_up  # the buffer overflowed: the subscriber reads the table again
        assert seqs(await take(sub, 600)) == list(range(6, 606))
        await store.append("s", [StepReady(step="after")])
        assert seqs(await take(sub, 1)) == [606]


async def test_stream_filter(store: EventStore) -> None:
    for i in range(30):
        await store.append(f"s{i % 3}", [StepReady(step=str(i))])
    async with store.subscribe(0, stream="s1") as sub:
        got = await take(sub, 10)
        assert [r.stream for r in got] == ["s1"] * 10
        assert seqs(got) == list(range(2, 31, 3))
        await store.append("s0", [StepReady(step="other")])
        await store.append("s1", [StepReady(step="mine")])
        (rec,) = await take(sub, 1)
        assert (rec.seq, rec.version, rec.event) == (32, 11, StepReady(step="mine"))
        assert sub.cursor == 32


async def test_rows_committed_by_another_writer_fill_the_gap(db: Path) -> None:
    async with EventStore.open(db) as ours, EventStore.open(db) as theirs:
        await ours.append("s", [StepReady(step="a")])
        async with ours.subscribe(0) as sub:
            assert seqs(await take(sub, 1)) == [1]
            await theirs.append("t", [StepReady(step=str(i)) for i in range(3)])  # seqs 2-4
            await ours.append("s", [StepReady(step="b")])  # seq 5: reveals the gap
            got = await take(sub, 4)
    assert [(r.seq, r.stream) for r in got] == [(2, "t"), (3, "t"), (4, "t"), (5, "s")]


async def test_iteration_ends_when_the_store_closes(db: Path) -> None:
    got: list[int] = []
    async with anyio.create_task_group() as tg, EventStore.open(db) as store:
        await fill(store, 3)

        async def follow() -> None:
            async with store.subscribe(0) as sub:
                got.extend([r.seq async for r in sub])

        tg.start_soon(follow)
        await anyio.wait_all_tasks_blocked()
        await fill(store, 2)
    assert got == [1, 2, 3, 4, 5]


async def test_subscribe_on_a_closed_store(db: Path) -> None:
    async with EventStore.open(db) as store:
        pass
    with pytest.raises(StoreError):
        async with store.subscribe(0):
            pass


def _rec(seq: int) -> Recorded:
    return Recorded(seq, "s", seq, "step.ready", 1.0, StepReady(step=f"s{seq}"))


@pytest.mark.parametrize("overflow", [False, True])
async def test_a_store_closed_while_a_subscriber_reads_still_gives_it_what_was_committed(
    overflow: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The subscriber reads the table (a snapshot without 4 and 5), those two are committed,
    and the store closes before the subscriber can read again: it still gets 4 and 5, from what
    the writer handed it. If its buffer overflowed meanwhile, it stops at 3, never skipping."""
    if overflow:
        monkeypatch.setattr(_subscription, "_BUFFER", 1)
    table = [_rec(1), _rec(2), _rec(3)]
    reading, resume = anyio.Event(), anyio.Event()

    async def read_range(
        after_seq: int = 0, to_seq: int | None = None, *, limit: int | None = None
    ) -> list[Recorded]:
        snapshot = [r for r in table if r.seq > after_seq]
        reading.set()
        await resume.wait()
        return snapshot

    sub = Subscription(read_range, 0, None)
    got: list[int] = []

    async def follow() -> None:
        got.extend([r.seq async for r in sub])

    async with anyio.create_task_group() as tg:
        tg.start_soon(follow)
        await reading.wait()
        batch = [_rec(4), _rec(5)]
        table.extend(batch)
        sub._deliver(batch)
        sub._close()
        resume.set()
    assert got == ([1, 2, 3] if overflow else [1, 2, 3, 4, 5])
