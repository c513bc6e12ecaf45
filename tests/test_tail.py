"""``evenflow tail`` and ``Client().tail()``: committed events from any process, in seq order,
woken by file-system events (or by polling where those are unavailable), never holding a read
transaction across a wait (so the WAL does not grow under a running tail)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import IO, Any

import anyio
import pytest
from typer.testing import CliRunner, Result

import events
from engine import Client
from engine._cli import app
from tests.pipelines import basic

CLI = [sys.executable, "-c", "from engine._cli import main; main()"]
APPENDER = textwrap.dedent(
    """
    import sys, time
    import anyio
    from events import EventStore, MetadataLogged

    async def main(path, count):
        async with EventStore.open(path) as store:
            for i in range(count):
                await store.append("other", [MetadataLogged(metadata={"i": i})])
                await anyio.sleep(0.002)

    anyio.run(main, sys.argv[1], int(sys.argv[2]), backend="asyncio")
    """
)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines()]


class Lines:
    """The stdout of a subprocess, line by line, with a timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self._queue: queue.Queue[str] = queue.Queue()
        self.thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self.thread.start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._queue.put(line)

    def until(self, done: Any, timeout: float = 30.0) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while True:
            line = self._queue.get(timeout=max(0.01, deadline - time.monotonic()))
            got.append(json.loads(line))
            if done(got[-1]):
                return got


@contextlib.contextmanager
def tail_process(*args: str) -> Any:
    proc = subprocess.Popen(
        [*CLI, "tail", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    lines = Lines(proc.stdout)
    try:
        yield proc, lines
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        lines.thread.join(timeout=10)  # the pipe is at its end once the process is gone
        proc.stdout.close()
        proc.stderr.close()


def test_another_process_tails_a_run_as_it_happens(evenflow_home: Path) -> None:
    first = basic.chain(start=1)  # the home exists; its events are the backlog
    with tail_process("--json") as (proc, lines):
        backlog = lines.until(lambda e: e["type"] == "run.succeeded" and e["stream"] == first.id)
        assert backlog[0]["seq"] > 0
        second = basic.failing_continue.with_options(raise_on_failure=False)()
        live = lines.until(lambda e: e["type"] == "run.failed" and e["stream"] == second.id)
        assert proc.poll() is None  # still following
    expected = [e.seq for e in second.events()]
    assert [e["seq"] for e in live if e["stream"] == second.id] == expected
    seqs = [e["seq"] for e in backlog + live]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    failed = next(e for e in live if e["type"] == "step.failed")
    assert failed["step"] == "boom"
    assert isinstance(failed["recorded_at"], float)


def test_no_follow_since_type_and_run_filters(evenflow_home: Path) -> None:
    ok = basic.chain(start=1)
    bad = basic.failing_continue.with_options(raise_on_failure=False)()
    everything = [e.seq for e in ok.events()] + [e.seq for e in bad.events()]
    assert everything == list(range(1, len(everything) + 1))

    result = invoke("tail", "--no-follow", "--json")
    assert result.exit_code == 0, result.output
    assert [e["seq"] for e in json_lines(result.stdout)] == everything[-20:]

    result = invoke("tail", "--no-follow", "--json", "--since", "0")
    assert [e["seq"] for e in json_lines(result.stdout)] == everything
    result = invoke("tail", "--no-follow", "--json", "--since", "10")
    assert [e["seq"] for e in json_lines(result.stdout)] == everything[10:]

    result = invoke("tail", "--no-follow", "--json", "--since", "0", "--type", "step.")
    steps = json_lines(result.stdout)
    assert steps
    assert all(e["type"].startswith("step.") for e in steps)
    assert len(steps) == sum(e.type.startswith("step.") for e in ok.events() + bad.events())

    result = invoke("tail", bad.id[:8], "--no-follow", "--json", "--since", "0")
    assert [e["seq"] for e in json_lines(result.stdout)] == [e.seq for e in bad.events()]
    result = invoke("tail", "latest", "--no-follow", "--json", "--type", "run.")
    assert [e["type"] for e in json_lines(result.stdout)] == [
        "run.created",
        "run.started",
        "run.failed",
    ]

    result = invoke("tail", bad.name, "--no-follow")
    assert result.exit_code == 0, result.output
    failed = next(line for line in result.stdout.splitlines() if "step.failed" in line)
    assert "boom" in failed
    assert "ValueError: boom on 1" in failed
    assert bad.id[:8] in failed


def test_tail_usage_errors_are_one_line(evenflow_home: Path) -> None:
    result = invoke("tail", "--no-follow")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: no evenflow database at")
    basic.chain(start=1)
    for args in (["--since", "-1"], ["no-such-run"]):
        result = invoke("tail", "--no-follow", *args)
        assert result.exit_code == 2
        assert len(result.stderr.splitlines()) == 1
        assert result.stderr.startswith("error: ")


def _append_in_another_process(db: Path, count: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", APPENDER, str(db), str(count)])


def test_client_tail_follows_another_process(evenflow_home: Path) -> None:
    run = basic.chain(start=1)
    start = run.events()[-1].seq

    async def follow() -> list[events.Recorded | Any]:
        got = []
        with anyio.fail_after(30):
            proc = _append_in_another_process(Client().home.db, 40)
            try:
                async with contextlib.aclosing(Client().tail(since=start)) as feed:
                    async for event in feed:
                        got.append(event)
                        if len(got) == 40:
                            break
            finally:
                await anyio.to_thread.run_sync(proc.wait)
        assert proc.returncode == 0
        return got

    got = anyio.run(follow, backend="asyncio")
    assert [e.seq for e in got] == list(range(start + 1, start + 41))
    assert [e.metadata["i"] for e in got] == list(range(40))
    assert {e.stream for e in got} == {"other"}
    assert got[0].to_dict()["type"] == "metadata.logged"


def test_client_tail_run_filter_and_no_follow(evenflow_home: Path) -> None:
    first = basic.chain(start=1)
    basic.chain(start=2)

    async def collect() -> list[Any]:
        return [e async for e in Client().tail(first.name, since=0, follow=False)]

    got = anyio.run(collect, backend="asyncio")
    assert [e.seq for e in got] == [e.seq for e in first.events()]


@pytest.mark.parametrize("how", ["env", "argument"])
def test_polling_fallback_delivers_too(
    evenflow_home: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    db = evenflow_home / "evenflow.db"
    if how == "env":
        monkeypatch.setenv("WATCHFILES_FORCE_POLLING", "1")

    async def main() -> tuple[str | None, list[int]]:
        async with events.EventStore.open(db) as store:
            await store.append("s", [events.StepReady(step="0")])
            follower = events.Follower(db, since=0, watch=False if how == "argument" else None)
            got: list[int] = []
            with anyio.fail_after(20):
                async with contextlib.aclosing(follower.records()) as feed:
                    async for rec in feed:
                        got.append(rec.seq)
                        if len(got) == 5:
                            break
                        # A second store: the follower cannot be told, it must notice.
                        async with events.EventStore.open(db) as other:
                            await other.append("s", [events.StepReady(step=str(len(got)))])
            return follower.mode, got

    mode, got = anyio.run(main, backend="asyncio")
    assert mode == "poll"
    assert got == [1, 2, 3, 4, 5]


def test_watching_is_the_default(evenflow_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WATCHFILES_FORCE_POLLING", raising=False)
    db = evenflow_home / "evenflow.db"

    async def main() -> str | None:
        async with events.EventStore.open(db) as store:
            await store.append("s", [events.StepReady(step="0")])
            follower = events.Follower(db)
            async with contextlib.aclosing(follower.records()) as feed:
                assert (await feed.__anext__()).seq == 1
                proc = _append_in_another_process(db, 1)
                with anyio.fail_after(20):
                    rec = await feed.__anext__()
                await anyio.to_thread.run_sync(proc.wait)
                assert rec.stream == "other"
                return follower.mode

    assert anyio.run(main, backend="asyncio") == "watch"


def test_a_running_tail_does_not_grow_the_wal(evenflow_home: Path) -> None:
    """Under constant writes, checkpoints keep resetting the WAL while a follower reads."""
    db = evenflow_home / "evenflow.db"
    wal = db.with_name(db.name + "-wal")
    blob = os.urandom(2000).hex()  # ~4 KB of payload per event: one page each
    largest = 0
    seen = 0

    async def follow() -> None:
        nonlocal seen
        async for _ in events.Follower(db, since=0):
            seen += 1
            if seen == 1 + 6000:
                return

    async def main() -> None:
        nonlocal largest
        async with events.EventStore.open(db) as store:
            await store.append("s", [events.StepReady(step="start")])
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(follow)
                    for i in range(600):  # 6,000 events, ~24 MB through the WAL
                        batch = [events.MetadataLogged(metadata={"b": blob})] * 10
                        await store.append("w", batch)
                        largest = max(largest, wal.stat().st_size)
                        if i % 50 == 0:
                            await anyio.sleep(0.01)  # let the follower read now and then

    anyio.run(main, backend="asyncio")
    assert seen == 6001
    # SQLite checkpoints at 1000 pages (~4 MB). A reader that kept a snapshot open across its
    # waits would let the WAL grow to the ~24 MB written (45 MB measured).
    assert largest < 10 * 1024 * 1024, largest
