"""Noticing crashed runs, and cancelling runs through the log.

A run that has no terminal event and whose lease nobody holds lost its owner: whoever looks at
it first (the Client, ``runs list``) appends ``run.crashed``, once. The detector takes the run's
lease while it appends, so it never races a process that is resuming the run.

Cancelling a run owned by another process appends ``run.cancel_requested`` to the run's stream;
the owner looks for it every quarter second and cancels (``_run_watch.watch``). A run nobody owns
any more is cancelled directly (``run.cancelled``).
"""

from __future__ import annotations

import os
import socket
import sqlite3
from typing import TYPE_CHECKING

from events import ConcurrencyError, RunCancelled, RunCancelRequested, RunCrashed

from ._lease import Lease, live_owner
from .errors import RunResumeError

if TYPE_CHECKING:
    from ._engine import Engine
    from ._home import Home

_UNFINISHED = ("initializing", "running")


def unowned_runs(home: Home, conn: sqlite3.Connection) -> list[str]:
    """Ids of runs that are not finished in the views and whose lease nobody holds."""
    rows = conn.execute("SELECT id FROM runs WHERE status IN (?, ?)", _UNFINISHED).fetchall()
    return [run_id for (run_id,) in rows if live_owner(home.leases, run_id) is None]


async def _status(engine: Engine, run_id: str) -> str | None:
    """The run's status in the views (None if there is no such run)."""
    row = await engine.store.run_read(
        lambda conn: conn.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()
    )
    return None if row is None else str(row[0])


async def mark_crashed(engine: Engine, run_ids: list[str]) -> list[str]:
    """Append ``run.crashed`` for each run still unfinished and unowned; the ids marked."""
    marked = []
    for run_id in run_ids:
        try:
            lease = Lease.acquire(engine.home.leases, run_id, engine.owner_id)
        except RunResumeError:
            continue  # owned again (being resumed): not crashed
        try:
            if await _status(engine, run_id) not in _UNFINISHED:
                continue
            version = await engine.store.stream_version(run_id)
            reason = "the process running it stopped without finishing it"
            try:
                await engine.store.append(
                    run_id, [RunCrashed(owner=engine.owner_id, reason=reason)], version
                )
            except ConcurrencyError:
                continue
            marked.append(run_id)
        finally:
            lease.release()
    return marked


async def cancel(engine: Engine, run_id: str) -> str:
    """Cancel a run that has not finished: ``"requested"`` when a live owner will cancel it,
    ``"cancelled"`` when nobody owned it and it was cancelled here."""
    status = await _status(engine, run_id)
    if status not in (*_UNFINISHED, "crashed"):
        raise RunResumeError(f"run {run_id} is not running (status {status or 'unknown'})")
    try:
        lease = Lease.acquire(engine.home.leases, run_id, engine.owner_id)
    except RunResumeError:
        who = f"pid {os.getpid()} on {socket.gethostname()}"
        await engine.store.append(run_id, [RunCancelRequested(requested_by=who)])
        return "requested"
    try:
        await engine.store.append(
            run_id, [RunCancelled(reason="cancelled while no process ran it")]
        )
    finally:
        lease.release()
    return "cancelled"
