"""What ``evenflow tail`` and ``evenflow replay`` print: one line per event, and a run's state.

Pure functions of events and run views; nothing here reads the store or prints.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from events import (
    ArtifactStored,
    HookFailed,
    HookStarted,
    HookSucceeded,
    MetadataLogged,
    RunCancelled,
    RunCrashed,
    RunCreated,
    RunFailed,
    RunStarted,
    StepCached,
    StepDeclared,
    StepFailed,
    StepLogs,
    StepRetryScheduled,
    StepSkipped,
    StepStarted,
    StepSucceeded,
)

from ._cli_render import ICONS, fmt_duration

if TYPE_CHECKING:
    from ._views import PipelineRunView, RunEvent, StepRunView

_DETAIL = 160  # characters of detail shown on one line


def event_step(event: Any) -> str:
    """The step an event is about (``-`` if none)."""
    if isinstance(event, StepDeclared):
        return event.spec.id
    step = getattr(event, "step", None)
    return step if isinstance(step, str) else "-"


def event_detail(ev: RunEvent) -> str:
    """A short, one-line detail: error, duration, cache source, hook, ..."""
    event = ev.event
    text = ""
    match event:
        case RunCreated():
            text = f"pipeline {event.pipeline}, {len(event.steps)} steps"
        case RunStarted():
            text = f"pid {event.pid} on {event.host}" if event.pid else ""
        case RunFailed():
            text = event.error + (f" (step {event.failed_step})" if event.failed_step else "")
        case RunCancelled() | RunCrashed():
            text = event.reason
        case StepStarted():
            text = f"attempt {event.attempt}" if event.attempt > 1 else ""
        case StepSucceeded():
            text = fmt_duration(event.duration)
            if event.outputs:
                text += f" -> {', '.join(event.outputs)}"
        case StepFailed():
            text = f"{event.error_type or 'error'}: {event.error}"
            if not event.final:
                text += f" (attempt {event.attempt}, will retry)"
        case StepRetryScheduled():
            wait = max(0.0, event.due_at - ev.recorded_at.timestamp())
            text = f"attempt {event.attempt} in {fmt_duration(wait)}"
        case StepCached():
            text = f"from run {event.source_run[:8]} step {event.source_step}"
        case StepSkipped():
            text = event.reason
        case ArtifactStored():
            ref = event.artifact
            text = f"{ref.name}: {ref.type_name}, {ref.size} bytes"
        case MetadataLogged():
            text = ", ".join(event.metadata)
        case StepLogs():
            text = f"{event.size} bytes in {event.uri}"
        case HookStarted() | HookSucceeded():
            text = event.name or event.hook
        case HookFailed():
            text = f"{event.name or event.hook}: {event.error}"
        case _:
            text = ""
    text = " ".join(text.split())
    return text if len(text) <= _DETAIL else text[: _DETAIL - 1] + "…"


def tail_line(ev: RunEvent, run_label: str) -> str:
    """``12:30:05.123  7323c6a7 chain  step  step.succeeded  0.02s``: local wall time."""
    when = ev.recorded_at.astimezone().strftime("%H:%M:%S.%f")[:-3]
    line = f"{when}  {run_label:<24.24}  {event_step(ev.event):<16}  {ev.type:<20}"
    return f"{line}  {event_detail(ev)}".rstrip()


def replay_line(ev: RunEvent, start: float) -> str:
    """``+1.234s  seq 42  step  step.succeeded  0.02s``: time since the run was created."""
    offset = ev.recorded_at.timestamp() - start
    line = f"{offset:+9.3f}s  seq {ev.seq:<7}  {event_step(ev.event):<16}  {ev.type:<20}"
    return f"{line}  {event_detail(ev)}".rstrip()


def _step_state(step: StepRunView, as_of: float) -> dict[str, Any]:
    duration = step.duration
    if duration is None and step.start_time is not None and step.end_time is None:
        duration = max(0.0, as_of - step.start_time.timestamp())  # running, as of then
    source = step.original_step_run_id.split("/")[0] if step.original_step_run_id else None
    return {
        "id": step.invocation_id,
        "name": step.name,
        "status": step.status.value,
        "attempt": step.attempt,
        "duration": duration,
        "cached_from": source,
        "error": step.error,
        "error_type": step.error_type,
    }


def replay_dict(
    view: PipelineRunView, state: PipelineRunView, events: list[RunEvent], at: int, later: int
) -> dict[str, Any]:
    """The ``replay --json`` object: the run, its timeline up to ``at``, its state then."""
    start = events[0].recorded_at.timestamp() if events else 0.0
    as_of = events[-1].recorded_at.timestamp() if events else start
    return {
        "run": {"id": view.id, "name": view.name, "pipeline": view.pipeline_name},
        "at": at,
        "later_events": later,
        "status": state.status.value,
        "error": state.error,
        "steps": [_step_state(s, as_of) for s in state.steps.values()],
        "events": [{**ev.to_dict(), "offset": ev.recorded_at.timestamp() - start} for ev in events],
    }


def state_lines(data: dict[str, Any]) -> list[str]:
    """The run's state as of the replay's ``at``, one line per step (from :func:`replay_dict`)."""
    status = data["status"]
    lines = [f"state at seq {data['at']}: {ICONS.get(status, '?')} {status}"]
    if data["error"]:
        lines[0] += f"  ({' '.join(str(data['error']).split())[:_DETAIL]})"
    width = max((len(s["id"]) for s in data["steps"]), default=0)
    for step in data["steps"]:
        line = f"  {step['id']:<{width}}  {ICONS.get(step['status'], '?')} {step['status']:<12}"
        if step["duration"] is not None:
            line += f"  {fmt_duration(step['duration'])}"
        if step["attempt"] > 1:
            line += f"  attempt {step['attempt']}"
        if step["cached_from"]:
            line += f"  cached from run {step['cached_from'][:8]}"
        if step["error"]:
            error = " ".join(f"{step['error_type'] or 'error'}: {step['error']}".split())
            line += f"  {error[:_DETAIL]}"
        lines.append(line.rstrip())
    return lines


def header_lines(view: PipelineRunView, events: list[RunEvent], at: int, later: int) -> list[str]:
    """Who the replay is about and which events it shows."""
    created = view.created.astimezone() if view.created else None
    when = created.strftime("%Y-%m-%d %H:%M:%S") if isinstance(created, dt.datetime) else "-"
    lines = [
        f"run {view.name}  id {view.id}  pipeline {view.pipeline_name}  created {when}",
    ]
    if events:
        shown = f"events seq {events[0].seq}..{events[-1].seq} ({len(events)})"
        if later:
            shown += f"; {later} later events after seq {at} not shown"
        lines.append(shown)
    return lines
