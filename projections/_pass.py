"""One fold of records into the read-model tables, and the view cache kept between folds."""

from __future__ import annotations

import sqlite3

import msgspec
from msgspec.structs import replace

from events import ArtifactRef, ArtifactStored, Recorded, RunCreated, StepSucceeded

from . import _tables
from ._run_reducer import evolve_run
from ._step_reducer import evolve_step, step_of
from ._views import RunView, StepView

StepKey = tuple[str, str]
_outputs_encoder = msgspec.msgpack.Encoder()
_outputs_decoder = msgspec.msgpack.Decoder(dict[str, ArtifactRef])


def decode_outputs(blob: bytes) -> dict[str, ArtifactRef]:
    """The outputs of a ``cache_entries`` row."""
    return _outputs_decoder.decode(blob)


class Cache:
    """Views kept between batches, oldest evicted first, valid at one (seq, hash) of the log."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.runs: dict[str, RunView] = {}
        self.steps: dict[StepKey, StepView] = {}
        self.at: tuple[int, bytes] | None = None

    def clear(self) -> None:
        self.runs.clear()
        self.steps.clear()
        self.at = None

    def keep(self, runs: dict[str, RunView], steps: dict[StepKey, StepView]) -> None:
        # First-in, first-out: a plain update keeps each key's first position, which is much
        # cheaper than moving keys to the end (this runs inside every write transaction).
        self.runs.update(runs)
        self.steps.update(steps)
        if len(self.runs) > self.size:
            for key in list(self.runs)[: len(self.runs) - self.size]:
                del self.runs[key]
        if len(self.steps) > self.size:
            for skey in list(self.steps)[: len(self.steps) - self.size]:
                del self.steps[skey]


class Pass:
    """One fold of records into the tables, within the caller's transaction.

    Each row is read at most once (from the cache or the table), evolved in memory and written
    back once per flush with ``executemany``.
    """

    def __init__(self, conn: sqlite3.Connection, cache: Cache) -> None:
        self.conn = conn
        self.cache = cache
        self.runs: dict[str, RunView | None] = {}
        self.steps: dict[StepKey, StepView | None] = {}
        # Changed views. A dict keeps a key's first position when it is set again, so new rows
        # are inserted in first-event order: the same order however the log was batched.
        self.dirty_runs: dict[str, RunView] = {}
        self.dirty_steps: dict[StepKey, StepView] = {}
        self.artifacts: list[_tables.ArtifactRow] = []
        self.cache_entries: list[tuple[str, str, str, str, float, bytes]] = []
        self.artifact_ids: set[str] = set()
        self.versions: dict[str, int] = {}
        self.names: dict[str, str] = {}
        self.last_seq: int | None = None
        self.folded = 0

    def _run(self, run_id: str) -> RunView | None:
        if run_id in self.runs:
            return self.runs[run_id]
        view = self.cache.runs.get(run_id)
        if view is None:
            view = _tables.load_run(self.conn, run_id)
        self.runs[run_id] = view
        return view

    def _step(self, key: StepKey) -> StepView | None:
        if key in self.steps:
            return self.steps[key]
        view = self.cache.steps.get(key)
        if view is None:
            view = _tables.load_step(self.conn, *key)
        self.steps[key] = view
        return view

    def _set_step(self, key: StepKey, view: StepView) -> None:
        self.steps[key] = view
        self.dirty_steps[key] = view

    def fold(self, rec: Recorded) -> None:
        """Fold one record (records come in seq order)."""
        self.last_seq = rec.seq
        self.folded += 1
        stream, event = rec.stream, rec.event
        before = self._run(stream)
        run = evolve_run(before, rec)
        if run is None:
            return  # not a run's stream (schedules, models...), or a run not created yet
        if before is None:
            run = self._unique_name(run)
        if run is not before:
            self.runs[stream] = run
            self.dirty_runs[stream] = run
        if isinstance(event, RunCreated):
            if before is None:  # as fold_run: only the creating run.created declares steps
                for spec in event.steps:
                    key = (stream, spec.id)
                    born = evolve_step(None, rec, spec)
                    if born is not None and key not in self.dirty_steps:
                        self._set_step(key, born)
            return
        if isinstance(event, ArtifactStored):
            self._artifact(rec, event)
        step_id = step_of(event)
        if step_id is None:
            return
        key = (stream, step_id)
        view = self._step(key)
        new = evolve_step(view, rec)
        if new is not None and new is not view:
            self._set_step(key, new)
            if isinstance(event, StepSucceeded) and event.cache_key:
                outputs = {name: refs[0] for name, refs in new.outputs.items() if refs}
                self.cache_entries.append(
                    (
                        event.cache_key,
                        stream,
                        step_id,
                        new.name,
                        rec.recorded_at,
                        _outputs_encoder.encode(outputs),
                    )
                )

    def _unique_name(self, run: RunView) -> RunView:
        """The run, renamed ``<name>_2``, ``<name>_3``... if another run holds its name."""
        name, n = run.name, 1
        while True:
            holder = self.names.get(name)
            if holder is None:
                row = self.conn.execute("SELECT id FROM runs WHERE name = ?", (name,)).fetchone()
                holder = None if row is None else row[0]
            if holder is None or holder == run.id:
                break
            n += 1
            name = f"{run.name}_{n}"
        self.names[name] = run.id
        return run if name == run.name else replace(run, name=name)

    def _artifact(self, rec: Recorded, event: ArtifactStored) -> None:
        ref = event.artifact
        if ref.id in self.artifact_ids:
            return
        self.artifact_ids.add(ref.id)
        if self.conn.execute("SELECT 1 FROM artifacts WHERE id = ?", (ref.id,)).fetchone():
            return  # recorded again (a resumed run): the artifact keeps its first version
        version = self.versions.get(ref.name)
        if version is None:
            row = self.conn.execute(
                "SELECT MAX(version) FROM artifacts WHERE name = ?", (ref.name,)
            ).fetchone()
            version = int(row[0] or 0)
        self.versions[ref.name] = version + 1
        self.artifacts.append(
            _tables.artifact_row(ref, version + 1, rec.stream, event.step, rec.recorded_at)
        )

    def flush(self) -> None:
        """Write the changed rows and the checkpoint, and hand the views to the cache."""
        conn = self.conn
        if self.dirty_runs:
            runs = [_tables.run_row(view) for view in self.dirty_runs.values()]
            conn.executemany(_tables.UPSERT_RUN, runs)
        if self.dirty_steps:
            steps = [_tables.step_row(view) for view in self.dirty_steps.values()]
            conn.executemany(_tables.UPSERT_STEP, steps)
        if self.artifacts:
            conn.executemany(_tables.INSERT_ARTIFACT, self.artifacts)
        if self.cache_entries:
            conn.executemany(_tables.INSERT_CACHE_ENTRY, self.cache_entries)
            self.cache_entries.clear()
        if self.last_seq is not None:
            conn.execute(_tables.SET_CHECKPOINT, (_tables.CHECKPOINT, self.last_seq))
        self.cache.keep(
            {k: v for k, v in self.runs.items() if v is not None},
            {k: v for k, v in self.steps.items() if v is not None},
        )
        for pending in (self.runs, self.steps, self.dirty_runs, self.dirty_steps):
            pending.clear()
        self.artifacts.clear()
        self.artifact_ids.clear()
        self.versions.clear()
        self.names.clear()
