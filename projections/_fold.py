"""Folding a run's records into a :class:`RunState` (time travel folds a prefix of them)."""

from __future__ import annotations

from collections.abc import Iterable

from events import Recorded, RunCreated

from ._run_reducer import evolve_run
from ._step_reducer import evolve_step, step_of
from ._views import RunState, StepView


def fold_run(records: Iterable[Recorded], *, run_id: str | None = None) -> RunState | None:
    """Fold one run's records (in seq order) into its state.

    Any prefix of a run's records folds to a valid state, which is how ``at_seq`` time travel
    works: fold the records with ``seq <= N``.

    Args:
        records: the run's records; records of other streams are skipped, so a slice of the
            whole log will do.
        run_id: the run to fold. By default, the stream of the first ``run.created`` seen.

    Returns:
        The run and its steps, or None if the records do not contain the run's ``run.created``.
    """
    run = None
    steps: dict[str, StepView] = {}
    for rec in records:
        if run_id is None:
            if not isinstance(rec.event, RunCreated):
                continue
            run_id = rec.stream
        elif rec.stream != run_id:
            continue
        before = run
        run = evolve_run(run, rec)
        if run is None:
            continue
        event = rec.event
        if isinstance(event, RunCreated):
            if before is None:  # only the run.created that created the run declares steps
                for spec in event.steps:
                    born = evolve_step(None, rec, spec)
                    if born is not None and spec.id not in steps:
                        steps[spec.id] = born
            continue
        step_id = step_of(event)
        if step_id is None:
            continue
        new = evolve_step(steps.get(step_id), rec)
        if new is not None:
            steps[step_id] = new
    if run is None:
        return None
    return RunState(run, {sid: steps[sid] for sid in run.step_ids if sid in steps})
