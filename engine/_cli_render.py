"""What the CLI prints: rich tables and trees for people, plain dicts for ``--json``.

Everything here is a pure function of run views; nothing reads the store or prints.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

if TYPE_CHECKING:
    from events import StepSpec

    from ._views import PipelineRunView, StepRunView

STYLES = {
    "initializing": "dim",
    "pending": "dim",
    "queued": "cyan",
    "running": "bold yellow",
    "retrying": "magenta",
    "completed": "green",
    "cached": "blue",
    "failed": "bold red",
    "crashed": "bold red",
    "skipped": "dim",
    "cancelled": "red",
    "stopped": "dim",
}
ICONS = {
    "initializing": "…",
    "pending": "·",
    "queued": "○",
    "running": "●",
    "retrying": "↻",
    "completed": "✓",
    "cached": "≡",
    "failed": "✗",
    "crashed": "✗",
    "skipped": "↷",
    "cancelled": "⊘",
    "stopped": "■",
}


def status_text(status: str) -> Text:
    """``✓ completed`` in the status's colour."""
    return Text(f"{ICONS.get(status, '?')} {status}", style=STYLES.get(status, ""))


def fmt_duration(seconds: float | None) -> str:
    """``0.31s``, ``12.3s``, ``3m07s``, ``1h02m``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def fmt_time(when: dt.datetime | None) -> str:
    """Local wall-clock time, ``2024-05-01 12:30:05``."""
    return "-" if when is None else when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def epoch(when: dt.datetime | None) -> float | None:
    return None if when is None else when.timestamp()


def run_duration(run: PipelineRunView) -> float | None:
    """Seconds from start to end (to now while the run is live)."""
    if run.start_time is None:
        return None
    end = run.end_time.timestamp() if run.end_time else time.time()
    return end - run.start_time.timestamp()


def upstream(spec: StepSpec) -> list[str]:
    """The invocation ids a step waits for: data inputs in argument order, then ``after=``."""
    ups: list[str] = []
    for ref in spec.inputs.values():
        for one in ref if isinstance(ref, list) else [ref]:
            ups.append(one.step)
    ups.extend(spec.after)
    return list(dict.fromkeys(ups))


def count_statuses(statuses: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for status in statuses:
        counts[status] = counts.get(status, 0) + 1
    return counts


def fmt_counts(counts: dict[str, int], total: int, label: str = "steps done") -> str:
    """``6/8 steps done: 5 completed, 1 cached, 2 running``."""
    done = sum(n for s, n in counts.items() if s in _FINISHED)
    parts = [f"{n} {s}" for s in STYLES if (n := counts.get(s, 0))]
    return f"{done}/{total} {label}" + (f": {', '.join(parts)}" if parts else "")


_FINISHED = frozenset(
    {"completed", "cached", "failed", "crashed", "skipped", "cancelled", "stopped"}
)


# -- runs list -------------------------------------------------------------------------------


def runs_table(runs: Sequence[PipelineRunView]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    # In a narrow terminal the id, name, status and counts keep their width; the pipeline and
    # creation time give way first (the run name starts with the pipeline's name anyway).
    longest = max((len(run.name) for run in runs), default=4)
    table.add_column("id", no_wrap=True, min_width=8)
    table.add_column("name", no_wrap=True, overflow="fold", min_width=min(longest, 44))
    table.add_column("pipeline", overflow="fold")
    table.add_column("status", no_wrap=True, min_width=11)
    table.add_column("created", overflow="fold")
    table.add_column("duration", justify="right", no_wrap=True, min_width=6)
    table.add_column("steps", justify="right", no_wrap=True, min_width=5)
    scheduled = any(run.schedule_id for run in runs)
    if scheduled:  # only when a run was started by a schedule: "<schedule id> @ <tick>"
        table.add_column("schedule", overflow="fold")
    for run in runs:
        done = sum(1 for s in run.steps.values() if s.status.is_finished)
        row: list[str | Text] = [
            run.id[:8],
            run.name,
            run.pipeline_name,
            status_text(run.status.value),
            fmt_time(run.created),
            fmt_duration(run_duration(run)),
            f"{done}/{len(run.steps)}",
        ]
        if scheduled:
            row.append(f"{run.schedule_id[:8]} @ {fmt_time(run.tick)}" if run.schedule_id else "-")
        table.add_row(*row)
    return table


def run_summary_dict(run: PipelineRunView) -> dict[str, Any]:
    """One ``runs list --json`` line."""
    return {
        "id": run.id,
        "name": run.name,
        "pipeline": run.pipeline_name,
        "status": run.status.value,
        "created": epoch(run.created),
        "started": epoch(run.start_time),
        "ended": epoch(run.end_time),
        "duration": run_duration(run),
        "tags": list(run.tags),
        "steps_done": sum(1 for s in run.steps.values() if s.status.is_finished),
        "steps_total": len(run.steps),
        "schedule_id": run.schedule_id,
        "tick": epoch(run.tick),
    }


# -- runs show -------------------------------------------------------------------------------


def step_dict(step: StepRunView) -> dict[str, Any]:
    return {
        "id": step.invocation_id,
        "name": step.name,
        "status": step.status.value,
        "start": epoch(step.start_time),
        "end": epoch(step.end_time),
        "duration": step.duration,
        "attempt": step.attempt,
        "cache_key": step.cache_key,
        "original_step_run_id": step.original_step_run_id,
        "outputs": {name: [a.id for a in versions] for name, versions in step.outputs.items()},
        "upstream": upstream(step.spec),
        "error": step.error,
        "error_type": step.error_type,
    }


def run_dict(run: PipelineRunView) -> dict[str, Any]:
    """The ``runs show --json`` object (also what ``run --json`` prints at the end)."""
    return {
        **run_summary_dict(run),
        "parameters": dict(run.parameters),
        "error": run.error,
        "failed_step": run.failed_step,
        "steps": [step_dict(s) for s in run.steps.values()],
    }


def _step_label(step: StepRunView, also: list[str]) -> Text:
    label = Text.assemble((step.invocation_id, "bold"), "  ", status_text(step.status.value))
    if step.name != step.invocation_id:
        label.append(f"  ({step.name})", style="dim")
    label.append(f"  {fmt_duration(step.duration)}")
    if step.outputs:
        label.append(f"  -> {', '.join(step.outputs)}", style="cyan")
    if step.cache_key:
        label.append(f"  key {step.cache_key[:12]}", style="dim")
    if step.original_step_run_id:
        label.append(f"  from {step.original_step_run_id.split('/')[0][:8]}", style="dim")
    if also:
        label.append(f"  (also after {', '.join(also)})", style="dim")
    if step.error:
        label.append(f"\n{step.error_type or 'error'}: {step.error}", style="red")
    return label


def run_tree(run: PipelineRunView) -> Tree:
    """The DAG: roots are steps without upstream; each step hangs under its first parent."""
    steps = run.steps
    children: dict[str, list[str]] = {sid: [] for sid in steps}
    roots: list[str] = []
    others: dict[str, list[str]] = {}
    for sid, step in steps.items():
        ups = [u for u in upstream(step.spec) if u in steps]
        if not ups:
            roots.append(sid)
            continue
        children[ups[0]].append(sid)
        others[sid] = ups[1:]
    tree = Tree(Text(f"{len(steps)} steps", style="bold"), guide_style="dim")

    def attach(node: Tree, sid: str) -> None:
        branch = node.add(_step_label(steps[sid], others.get(sid, [])))
        for child in children[sid]:
            attach(branch, child)

    for sid in roots:
        attach(tree, sid)
    return tree


def run_header(run: PipelineRunView) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    grid.add_row("run", Text(run.name, style="bold"))
    grid.add_row("id", run.id)
    grid.add_row("pipeline", run.pipeline_name)
    grid.add_row("status", status_text(run.status.value))
    grid.add_row("created", fmt_time(run.created))
    grid.add_row("duration", fmt_duration(run_duration(run)))
    if run.tags:
        grid.add_row("tags", ", ".join(run.tags))
    params = ", ".join(f"{k}={v!r}" for k, v in run.parameters.items()) or "-"
    grid.add_row("parameters", params)
    statuses = count_statuses(s.status.value for s in run.steps.values())
    grid.add_row("steps", fmt_counts(statuses, len(run.steps), "done"))
    if run.error:
        grid.add_row("error", Text(run.error, style="red"))
    return grid


def run_details(run: PipelineRunView) -> RenderableType:
    """``runs show``: the header, then the DAG."""
    return Group(run_header(run), Text(""), run_tree(run))
