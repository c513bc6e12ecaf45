"""Step specs, read back from the events that declared them.

A ``step_runs`` row does not hold its step's spec (see ``_views``): it names the event that
declared the step, and a step ``run.created`` declared that nothing changed since has no row
at all (see ``_tables``). This module turns rows back into views.
"""

from __future__ import annotations

import sqlite3

from events import RunCreated, StepDeclared, StepSpec, StoreCorruptedError, decode

from ._step_reducer import born
from ._views import RunView, StepView, decode_step


def specs_of(event: RunCreated) -> dict[str, StepSpec]:
    """Invocation id -> spec of the steps a ``run.created`` declares (the first of a repeated
    id, as the reducers take it)."""
    return {spec.id: spec for spec in reversed(event.steps)}


class Specs:
    """Step specs read back from the events that declared them, each event decoded once."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.by_seq: dict[int, dict[str, StepSpec]] = {}
        self.creations: dict[str, tuple[int, dict[str, StepSpec]]] = {}

    def at(self, seq: int) -> dict[str, StepSpec]:
        """Invocation id -> spec of the steps the event at ``seq`` declares ({} for none)."""
        found = self.by_seq.get(seq)
        if found is None:
            row = self.conn.execute("SELECT payload FROM events WHERE seq = ?", (seq,)).fetchone()
            event = None if row is None else decode(row[0])
            if isinstance(event, RunCreated):
                found = specs_of(event)
            elif isinstance(event, StepDeclared):
                found = {event.spec.id: event.spec}
            else:
                found = {}
            self.by_seq[seq] = found
        return found

    def creation(self, run_id: str) -> tuple[int, dict[str, StepSpec]]:
        """The seq of the ``run.created`` that created ``run_id`` (its first; 0 if none), and
        the specs it declares."""
        found = self.creations.get(run_id)
        if found is None:
            # ``+type``: look the run up by (stream, version), not through the index on type.
            row = self.conn.execute(
                "SELECT seq FROM events WHERE stream = ? AND +type = 'run.created'"
                " ORDER BY version LIMIT 1",
                (run_id,),
            ).fetchone()
            found = (0, {}) if row is None else (int(row[0]), self.at(int(row[0])))
            self.creations[run_id] = found
        return found

    def spec(self, run_id: str, step_id: str, spec_seq: int) -> StepSpec:
        """The spec a stored step names: declared by the event at ``spec_seq``, or (0) by its
        run's ``run.created``. Raises if that event does not declare the step."""
        specs = self.creation(run_id)[1] if spec_seq == 0 else self.at(spec_seq)
        spec = specs.get(step_id)
        if spec is None:
            source = f"seq {spec_seq}" if spec_seq else "its run's run.created"
            raise StoreCorruptedError(
                f"step_runs row ({run_id!r}, {step_id!r}) names {source}, which does not"
                " declare that step: run `evenflow projections rebuild`"
            )
        return spec


def load_steps(conn: sqlite3.Connection, run: RunView) -> dict[str, StepView]:
    """Every step view of ``run``, stored or derived, in the run's ``step_ids`` order."""
    specs = Specs(conn)
    rows = conn.execute("SELECT step_id, view FROM step_runs WHERE run_id = ?", (run.id,))
    found: dict[str, StepView] = {}
    for step_id, blob in rows:
        stored = decode_step(blob)
        found[step_id] = stored.view(run.id, specs.spec(run.id, step_id, stored.spec_seq))
    ordered: dict[str, StepView] = {}
    for sid in run.step_ids:
        view = found.pop(sid, None)
        if view is None:
            # No row: a step run.created declared, unchanged since (see the module docstring).
            created_seq, created = specs.creation(run.id)
            spec = created.get(sid)
            if spec is None:
                continue
            view = born(run.id, spec, created_seq)
        ordered[sid] = view
    ordered.update(sorted(found.items()))  # not in step_ids: never for a valid log
    return ordered
