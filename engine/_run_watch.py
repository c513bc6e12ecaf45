"""What a run does besides its steps while they run: keep its lease alive, and look for a cancel
that another process asked for through the log (``evenflow runs cancel``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import anyio

from events import COLD_TYPES, decode

from ._log import get_logger

if TYPE_CHECKING:
    from ._run import RunLoop

log = get_logger("evenflow.run")

CANCEL_POLL = 0.25  # seconds between looks for a run.cancel_requested from another process


async def watch(loop: RunLoop, run_scope: anyio.CancelScope, stop: anyio.Event) -> None:
    """Keep the lease's heartbeat fresh; cancel the run (``run_scope``) when another process
    asks to, through a ``run.cancel_requested`` in the log. Returns once ``stop`` is set."""
    from ._lease import HEARTBEAT_EVERY

    lease = loop.lease
    assert lease is not None
    while True:
        with anyio.move_on_after(CANCEL_POLL):
            await stop.wait()
        if stop.is_set():
            return
        if time.time() - lease.last_beat >= HEARTBEAT_EVERY:
            lease.beat()
        who = await loop.engine.store.run_read(_cancel_requested, loop.stream)
        if who is not None:
            loop.cancel_reason = f"cancelled on request ({who})" if who else "cancelled"
            log.info("run_cancel_requested", run_id=loop.stream, by=who)
            run_scope.cancel()
            return


# Polled four times a second by every running run: COLD_TYPES lets SQLite look the type up in
# the (partial) type index, a few rows, instead of walking the run's whole stream.
_CANCEL_REQUESTED = (
    f"SELECT payload FROM events WHERE type = 'run.cancel_requested' AND {COLD_TYPES} "
    "AND stream = ? LIMIT 1"
)


def _cancel_requested(conn: Any, stream: str) -> str | None:
    """Who asked to cancel ``stream`` through the log (``""`` if unknown), or None."""
    row = conn.execute(_CANCEL_REQUESTED, (stream,)).fetchone()
    if row is None:
        return None
    event = decode(row[0])
    return getattr(event, "requested_by", "") or ""
