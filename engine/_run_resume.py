"""A resumed run's loop put in the state its log left it (see ``_resume`` for what the log says).

:func:`adopt` settles one step as recorded, or marks it to run again or to wait for its retry;
:func:`restore` does so for every step of a static run; :func:`flush_restored` then queues the
steps that run again and restarts the retry timers, or settles them when a recorded failure
already stopped the run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from events import AnyEvent, StepCancelled

from ._run_plan import CANCELLED, COMPLETED, FAILED, QUEUED, RETRYING, SKIPPED, _Node
from .enums import ExecutionMode

if TYPE_CHECKING:
    from ._resume import StepPast
    from ._run import RunLoop


def adopt(loop: RunLoop, node: _Node, past: StepPast) -> None:
    """Put a step in the state the log left it in."""
    state = past.state
    if state == "completed":
        loop.produced[node.id] = past.refs
        node.state = COMPLETED
    elif state in ("failed", "skipped", "cancelled"):
        node.state = {"failed": FAILED, "skipped": SKIPPED, "cancelled": CANCELLED}[state]
        if state == "failed" and loop.first_error is None:
            from ._dynamic import failed_error

            loop.failed_step = node.id
            detail = f"{past.error_type}: {past.error}" if past.error_type else past.error
            loop.first_error = failed_error(node.id, "failed", detail)
    elif state == "retrying":
        node.state, node.attempt = RETRYING, past.attempt
        loop._restored_timers.append((node, past.due_at))
        return
    else:  # ready, or started and lost with its process: run it (again)
        node.attempt = past.attempt - 1 if state == "started" else past.attempt
        loop._requeue.append(node)
        return
    loop.unfinished -= 1
    if node.done is not None:
        node.done.set()


def restore(loop: RunLoop) -> None:
    """A static run being resumed: adopt every step's recorded state."""
    assert loop.past is not None
    steps, nodes = loop.past.steps, loop.nodes
    for node in nodes.values():
        past = steps.get(node.id)
        if past is not None and past.state != "pending":
            adopt(loop, node, past)
    for node in nodes.values():
        node.waiting = sum(1 for u in node.inv.upstream() if nodes[u].state != COMPLETED)


def flush_restored(loop: RunLoop) -> list[AnyEvent]:
    """Queue the restored steps that must run again and restart the restored retry timers;
    when a recorded failure stopped the run, settle them instead. Returns the events that
    record it."""
    events: list[AnyEvent] = []
    requeue, loop._requeue = loop._requeue, []
    for node in requeue:
        node.state = QUEUED
        loop.queue.append(node)
    if (
        loop.first_error is not None
        and loop.plan.execution_mode is not ExecutionMode.CONTINUE_ON_FAILURE
        and not loop.stopping
    ):
        loop._stop(f"run stopped after step {loop.failed_step!r} failed", events)
    if loop.stopping:
        for node, _ in loop._restored_timers:
            loop._finish(node, CANCELLED)
            events.append(StepCancelled(step=node.id))
        loop._restored_timers = []
    if loop._tg is not None:
        timers, loop._restored_timers = loop._restored_timers, []
        for node, due in timers:
            loop._tg.start_soon(loop._retry_at, node, due, name=f"retry {node.id}")
    return events
