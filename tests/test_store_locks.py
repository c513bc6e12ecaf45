"""A store open in this process keeps its SQLite locks when the same database is opened again
here (a second Engine, a Follower, the Client catching up): POSIX locks belong to the process,
and closing any descriptor of the file would drop them all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

from engine import Engine
from events import StepReady

OTHER = """
import anyio, sys
from engine import Engine
from events import StepReady
async def main():
    async with Engine.open(sys.argv[1]) as engine:
        await engine.store.append("other", [StepReady(step="b")])
anyio.run(main)
"""


@pytest.mark.anyio
async def test_reopening_here_does_not_let_another_process_delete_the_wal(tmp_path: Path) -> None:
    home = tmp_path / "home"
    async with Engine.open(home) as first:
        await first.store.append("mine", [StepReady(step="a")])
        wal = home / "evenflow.db-wal"
        inode = os.stat(wal).st_ino
        async with Engine.open(home):
            pass  # a second open in this process (reads the file's header if unguarded)
        # Another process appends and closes its last connection: it may checkpoint, but it
        # must not think it is alone and delete the WAL this process still uses.
        await anyio.to_thread.run_sync(
            lambda: subprocess.run([sys.executable, "-c", OTHER, str(home)], check=True)
        )
        assert wal.exists()
        assert os.stat(wal).st_ino == inode
        await first.store.append("mine", [StepReady(step="c")])
        assert await first.store.last_seq() == 3
    async with Engine.open(home) as again:
        assert [r.stream for r in await again.store.read_range(0)] == ["mine", "other", "mine"]
