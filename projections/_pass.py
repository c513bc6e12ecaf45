"""One fold of records into the read-model tables (with the cache kept between folds)."""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from typing import Any, cast

import msgspec
from msgspec.structs import replace

from events import (
    EVENT_TYPES,
    ArtifactRef,
    ArtifactStored,
    Recorded,
    RunCreated,
    RunsDeleted,
    StepSpec,
    StepSucceeded,
    UnknownEvent,
)

from . import _deletion, _tables
from ._cache import Cache, Creation, StepKey
from ._run_reducer import evolve_run
from ._specs import Specs, specs_of
from ._step_reducer import HOT, born, evolve_known, evolve_step, step_of
from ._tables import ARTIFACTS_STREAM
from ._views import RunView, StepView, decode_step

_outputs_encoder = msgspec.msgpack.Encoder()
_outputs_decoder = msgspec.msgpack.Decoder(dict[str, ArtifactRef])
_IN_CHUNK = 500  # ids per ``IN (...)`` query, well under SQLite's variable limit
_KNOWN: frozenset[type] = frozenset((*EVENT_TYPES, UnknownEvent))


def decode_outputs(blob: bytes) -> dict[str, ArtifactRef]:
    """The outputs of a ``cache_entries`` row."""
    return _outputs_decoder.decode(blob)


class Sink:
    """Where a pass's rows go: by default, straight into the tables on ``conn``."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def write(self, write: _tables.Write, rows: list[Any]) -> None:
        """Write ``rows`` with ``write`` (one of ``_tables.WRITES``)."""
        _tables.write_many(self.conn, write, rows)

    def checkpoint(self, seq: int) -> None:
        """Record that the rows reflect the events up to ``seq``."""
        self.conn.execute(_tables.SET_CHECKPOINT, (_tables.CHECKPOINT, seq))


class Pass:
    """One fold of records into the tables, within the caller's transaction.

    Each row is read at most once (from the cache or the table), evolved in memory and written
    back once per flush, in multi-row statements (:func:`_tables.write_many`), through
    ``sink`` (the tables on ``conn`` by default).
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        cache: Cache,
        *,
        empty: bool = False,
        sink: Sink | None = None,
    ) -> None:
        self.conn = conn
        self.sink = Sink(conn) if sink is None else sink
        # Empty: the artifacts table was empty when this pass began (a rebuild), so an artifact
        # is stored iff this pass stored it, and ``artifact_ids`` (then never cleared) says so
        # without a query. A deletion ends that (its rows leave the table).
        self.fresh = empty
        self.cache = cache
        self.runs = cache.runs
        self.steps = cache.steps
        self.specs = Specs(conn)
        # Looked up and not found, during this pass (until created or declared).
        self.missing_runs: set[str] = set()
        self.missing_steps: set[StepKey] = set()
        # Changed views. A dict keeps a key's first position when it is set again, so new rows
        # are inserted in first-change order: the same order however the log was batched.
        self.dirty_runs: dict[str, RunView] = {}
        self.dirty_steps: dict[StepKey, StepView] = {}
        self.declared = cache.declared
        self.artifacts: list[_tables.ArtifactRow] = []
        self.cache_entries: list[tuple[str, str, str, str, float, bytes]] = []
        self.artifact_ids: set[str] = set()
        self.absent_artifacts: set[str] = set()
        self.versions = cache.versions
        self.names: dict[str, str] = {}
        self.last_seq: int | None = None
        self.folded = 0

    @property
    def pending(self) -> int:
        """How many changed views wait for :meth:`flush`."""
        return len(self.dirty_runs) + len(self.dirty_steps)

    def _load_run(self, run_id: str, seq: int) -> RunView | None:
        """The run's view before the record at ``seq`` (not in the cache), or None."""
        if run_id in self.missing_runs:
            return None
        view = _tables.load_run(self.conn, run_id)
        if view is None:
            self.missing_runs.add(run_id)
        else:
            self.runs[run_id] = view
        return view

    def _creation(self, run_id: str) -> Creation:
        found = self.cache.creations.get(run_id)
        if found is None:
            seq, specs = self.specs.creation(run_id)
            found = self.cache.created(run_id, Creation(seq, specs, None))
        return found

    def _load_step(self, key: StepKey, seq: int) -> StepView | None:
        """The step's view before the record at ``seq`` (not in the cache), or None."""
        if key in self.missing_steps:
            return None
        run_id, step_id = key
        creation = self._creation(run_id)
        row = None
        if creation.rows is None or step_id in creation.rows:
            row = self.conn.execute(
                "SELECT view FROM step_runs WHERE run_id = ? AND step_id = ?", key
            ).fetchone()
        if row is not None:
            stored = decode_step(row[0])
            if stored.spec_seq:
                spec = self.specs.spec(run_id, step_id, stored.spec_seq)
                self.declared[key] = stored.spec_seq
            else:
                spec = self._created_spec(run_id, step_id, creation)
            view = stored.view(run_id, spec)
        else:
            # No row: declared by run.created and unchanged since, or never declared.
            found = creation.specs.get(step_id)
            if found is None:
                self.missing_steps.add(key)
                return None
            view = born(run_id, found, creation.seq)
        self.steps[key] = view
        return view

    def _created_spec(self, run_id: str, step_id: str, creation: Creation) -> StepSpec:
        spec = creation.specs.get(step_id)
        if spec is None:
            return self.specs.spec(run_id, step_id, 0)  # raises: not declared
        return spec

    def expect(self, records: Sequence[Recorded]) -> None:
        """Look up in one query which of the artifacts ``records`` store are new."""
        if self.fresh:
            return  # ``artifact_ids`` knows (see __init__)
        ids = [rec.event.artifact.id for rec in records if type(rec.event) is ArtifactStored]
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            marks = ",".join("?" * len(chunk))
            found = self.conn.execute(f"SELECT id FROM artifacts WHERE id IN ({marks})", chunk)
            self.absent_artifacts.update(set(chunk).difference(row[0] for row in found))

    def fold_all(self, records: Sequence[Recorded]) -> None:
        """Fold records in seq order (each record after the ones folded before)."""
        if not records:
            return
        fold = self.fold
        hot_of = HOT.get
        runs_get = self.runs.get
        steps, dirty = self.steps, self.dirty_steps
        steps_get = steps.get
        creations_get = self.cache.creations.get
        missing = self.missing_steps
        for rec in records:
            # Fast path: fold() inlined for an event of HOT (one that never changes a run-level
            # field, so evolve_run would return the run as it is) of a run in memory.
            event = rec.event
            cls = type(event)
            hot = hot_of(cls)
            if hot is not None and runs_get(rec.stream) is not None:
                # Every HOT event names its step (a str).
                key: StepKey = (rec.stream, event.step)  # type: ignore[union-attr,assignment]
                if cls is ArtifactStored:
                    self._artifact(rec, cast(ArtifactStored, event))
                view = steps_get(key)
                if view is None:
                    # A step its run.created declared and no fold has written a row for is
                    # pending as declared: born here, as _load_step would (without its calls).
                    creation = creations_get(rec.stream)
                    if (
                        creation is not None
                        and creation.rows is not None
                        and key[1] not in creation.rows
                        and key not in missing
                    ):
                        spec = creation.specs.get(key[1])
                        if spec is not None:
                            view = steps[key] = born(rec.stream, spec, creation.seq)
                    if view is None:
                        view = self._load_step(key, rec.seq)
                        if view is None:
                            continue  # an unknown step: no HOT event declares one
                new = hot(view, event, rec.recorded_at, rec.seq)
                if new is not view:
                    steps[key] = new
                    dirty[key] = new
                    if cls is StepSucceeded and new.cache_key:
                        self._cache_entry(rec, key[1], new, cast(StepSucceeded, event))
            else:
                fold(rec)
        self.last_seq = records[-1].seq
        self.folded += len(records)

    def fold(self, rec: Recorded) -> None:
        """Fold one record (:meth:`fold_all` keeps the count and the last seq)."""
        stream, event = rec.stream, rec.event
        before = self.runs.get(stream)
        if before is None:
            before = self._load_run(stream, rec.seq)
        run = evolve_run(before, rec)
        if run is None:
            if type(event) is RunsDeleted:
                self._runs_deleted(event)
            elif type(event) is ArtifactStored and stream == ARTIFACTS_STREAM:
                self._artifact(rec, event)  # saved outside any run (``save_artifact``)
            return  # not a run's stream (schedules, models...), or a run not created yet
        if run is not before:
            if before is None:
                run = self._unique_name(run)
                self.missing_runs.discard(stream)
            self.runs[stream] = run
            self.dirty_runs[stream] = run
        cls = type(event)
        # Exact types first: a failed isinstance on an event class costs a metaclass call,
        # and this runs for every event (a subclass of a known event still takes isinstance).
        if cls is ArtifactStored or (cls not in _KNOWN and isinstance(event, ArtifactStored)):
            self._artifact(rec, cast(ArtifactStored, event))
        step_id = step_of(event)
        if step_id is None:
            if before is None and (
                cls is RunCreated or (cls not in _KNOWN and isinstance(event, RunCreated))
            ):
                # As fold_run: only the creating run.created declares steps. Their views are
                # born pending and stay derived from it (no row) until something changes them.
                specs = specs_of(cast(RunCreated, event))
                self.cache.created(stream, Creation(rec.seq, specs, set()))
            return
        key = (stream, step_id)
        view = self.steps.get(key)
        if view is None:
            view = self._load_step(key, rec.seq)
        if view is None:
            new = evolve_step(None, rec)  # step.declared, or an unknown step (None)
            if new is None:
                return
            self.missing_steps.discard(key)
            self.declared[key] = rec.seq
        else:
            new = evolve_known(view, rec)  # the view is this record's (stream, step)
            if new is view:
                return
        self.steps[key] = new
        self.dirty_steps[key] = new
        if new.cache_key and isinstance(event, StepSucceeded):
            self._cache_entry(rec, step_id, new, event)

    def _cache_entry(
        self, rec: Recorded, step_id: str, new: StepView, event: StepSucceeded
    ) -> None:
        """A ``cache_entries`` row for a step that succeeded with a cache key (if it has one)."""
        if not event.cache_key:
            return
        outputs = {name: refs[0] for name, refs in new.outputs.items() if refs}
        self.cache_entries.append(
            (
                event.cache_key,
                rec.stream,
                step_id,
                new.name,
                rec.recorded_at,
                _outputs_encoder.encode(outputs),
            )
        )

    def _runs_deleted(self, event: RunsDeleted) -> None:
        """Deleted runs leave the tables. The rows folded so far are written out first, so the
        deletion sees them however the log was batched (see ``_deletion``)."""
        self.flush()
        self.fresh = False  # rows leave the table: look artifacts up in it from now on
        self.artifact_ids.clear()
        _deletion.delete_rows(self.conn, event)
        _deletion.forget(self.cache, event)
        self.missing_runs.update(event.run_ids)

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
        if self.fresh:
            pass  # not stored by this pass, so not in the table (see __init__)
        elif ref.id in self.absent_artifacts:
            self.absent_artifacts.discard(ref.id)  # from now on, its row may exist
        elif self.conn.execute("SELECT 1 FROM artifacts WHERE id = ?", (ref.id,)).fetchone():
            return  # recorded again (a resumed run): the artifact keeps its first version
        version = self.versions.get(ref.name)
        if version is None:
            version = self._newest_version(ref.name)
        self.versions[ref.name] = version + 1
        self.artifacts.append(
            _tables.artifact_row(ref, version + 1, rec.stream, event.step, rec.recorded_at)
        )

    def _newest_version(self, name: str) -> int:
        """The newest version of artifact ``name`` in the table (0 for none)."""
        row = self.conn.execute("SELECT MAX(version) FROM artifacts WHERE name = ?", (name,))
        return int(row.fetchone()[0] or 0)

    def flush(self) -> None:
        """Write the changed rows and the checkpoint; trim the cache to its size."""
        sink = self.sink
        if self.dirty_runs:
            runs = [_tables.run_row(view) for view in self.dirty_runs.values()]
            sink.write(_tables.UPSERT_RUN, runs)
            self.dirty_runs.clear()
        if self.dirty_steps:
            step_row = _tables.step_row
            get = self.declared.get
            steps = [step_row(view, get(key, 0)) for key, view in self.dirty_steps.items()]
            sink.write(_tables.UPSERT_STEP, steps)
            creations = self.cache.creations
            for run_id, step_id in self.dirty_steps:
                creation = creations.get(run_id)
                if creation is not None and creation.rows is not None:
                    creation.rows.add(step_id)
            self.dirty_steps.clear()
        if self.artifacts:
            sink.write(_tables.INSERT_ARTIFACT, self.artifacts)
            self.artifacts.clear()
        if self.cache_entries:
            sink.write(_tables.INSERT_CACHE_ENTRY, self.cache_entries)
            self.cache_entries.clear()
        if self.last_seq is not None:
            sink.checkpoint(self.last_seq)
        self.cache.trim()
        if not self.fresh:
            self.artifact_ids.clear()
        self.names.clear()
