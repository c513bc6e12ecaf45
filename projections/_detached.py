"""A fold that never reads the projection's tables: the fold of a rebuild run in a child process.

A rebuild's rows are a pure function of the log, so a process that can read the log can compute
them without the tables, and hand them to the process that writes them (see ``_rebuild_child``).
:class:`Pass` reads the tables for four things, each answered from the log instead:

* a run or step view the cache evicted: refolded from the run's own events before the record
  being folded (:class:`_History`, a pass over that run alone). Rows of an evicted view equal
  that refold, because only clean (already written) views are evicted, and a run's views depend
  only on its own stream;
* whether another run holds a run name, and an artifact name's newest version: a rebuild starts
  from empty tables, so both are exactly what this pass saw, kept here for the whole pass
  (one entry per run and per artifact name);
* whether an artifact is already stored: the same, as ``Pass`` does for any rebuild (``empty``).

A deletion (``runs.deleted``) would take rows out of tables this process cannot see, so it is
refused (:class:`DetachedError`); the caller checks the log has none first.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

from msgspec.structs import replace

from events import Recorded, RunsDeleted

from . import _tables
from ._cache import Cache, StepKey
from ._pass import Pass, Sink
from ._specs import Specs
from ._step_reducer import born
from ._views import RunView, StepView


class DetachedError(Exception):
    """The log holds something a detached fold cannot fold (a deletion)."""


_HISTORIES = 4  # refolded runs kept (each holds all of its run's views)


def _history(
    conn: sqlite3.Connection, run_id: str, start: int, before: int
) -> Iterator[list[Recorded]]:
    """The events of ``run_id``'s stream with ``start <= seq < before``, in order, in pages."""
    cursor = conn.execute(
        f"SELECT {_tables.EVENT_COLUMNS} FROM events"
        " WHERE stream = ? AND seq >= ? AND seq < ? ORDER BY version",
        (run_id, start, before),
    )
    while rows := cursor.fetchmany(1000):
        yield _tables.records(rows)


class DetachedPass(Pass):
    """A :class:`Pass` over freshly emptied tables that it never reads (see the module doc).

    Rows go to ``sink``; ``conn`` is only read for events (step specs and refolds). Refolds
    that replay more than ``refold_limit`` events in all (runs revisited long after the cache
    dropped them, in an order that defeats :attr:`histories`) raise :class:`DetachedError`: a
    fold through the tables does better then.
    """

    def __init__(
        self, conn: sqlite3.Connection, cache: Cache, sink: Sink, *, refold_limit: int = 1_000_000
    ) -> None:
        super().__init__(conn, cache, empty=True, sink=sink)
        self.versions = {}  # not the cache's (which trims): every name's newest, for the pass
        self.holders: dict[str, str] = {}  # run name -> the run holding it, for the pass
        self.renamed: dict[str, str] = {}  # run id -> its name, for runs this pass renamed
        self.created: set[str] = set()  # every run this pass created
        # The newest refolds, by run: a run wider than the cache (every step ready before the
        # first starts) asks for one evicted view after another, and each ask folds only the
        # run's events since the last one instead of its whole history again.
        self.histories: dict[str, _History] = {}
        self.refolds = 0  # views asked of refolds
        self.replayed = 0  # events refolded, for all of them
        self.refold_limit = refold_limit

    def _refold(self, run_id: str, seq: int) -> _History:
        """The run's views as of just before ``seq``, folded from its events."""
        self.refolds += 1
        history = self.histories.pop(run_id, None)
        if history is None or history.upto > seq:
            history = _History(self.conn, self.specs)
        for page in _history(self.conn, run_id, history.upto, seq):
            self.replayed += len(page)
            if self.replayed > self.refold_limit:
                raise DetachedError(
                    f"refolds of evicted views replayed more than {self.refold_limit} events"
                )
            history.fold_all(page)
        history.upto = seq
        self.histories[run_id] = history  # the newest last
        if len(self.histories) > _HISTORIES:
            del self.histories[next(iter(self.histories))]
        return history

    def _load_run(self, run_id: str, seq: int) -> RunView | None:
        if run_id not in self.created:
            return None  # not created yet (or not a run's stream): no row in any case
        view = self._refold(run_id, seq).runs.get(run_id)
        if view is None:  # never: the run was created before ``seq``
            raise DetachedError(f"run {run_id!r} was created, and its refold has no run")
        name = self.renamed.get(run_id)
        if name is not None:
            view = replace(view, name=name)
        self.runs[run_id] = view
        return view

    def _load_step(self, key: StepKey, seq: int) -> StepView | None:
        if key in self.missing_steps:
            return None
        run_id, step_id = key
        creation = self._creation(run_id)
        if creation.rows is not None and step_id not in creation.rows:
            # Never written: Pass derives it from run.created without reading the table.
            return super()._load_step(key, seq)
        history = self._refold(run_id, seq)
        view = history.steps.get(key) or history.unchanged(key)
        if view is None:
            self.missing_steps.add(key)
            return None
        declared = history.declared.get(key)
        if declared is not None:
            self.declared[key] = declared
        self.steps[key] = view
        return view

    def _unique_name(self, run: RunView) -> RunView:
        name, n = run.name, 1
        while (holder := self.holders.get(name)) is not None and holder != run.id:
            n += 1
            name = f"{run.name}_{n}"
        self.holders[name] = run.id
        self.created.add(run.id)
        if name == run.name:
            return run
        self.renamed[run.id] = name
        return replace(run, name=name)

    def _newest_version(self, name: str) -> int:
        return 0  # ``versions`` holds every name this pass stored (none before it)

    def _runs_deleted(self, event: RunsDeleted) -> None:
        raise DetachedError("a detached fold cannot fold runs.deleted")


class _History(Pass):
    """One run's events folded in memory, to find a view a :class:`DetachedPass` evicted.

    Nothing is written and nothing is read but step specs: every view of the run is either in
    this pass's cache (folded from its events here) or was never changed since ``run.created``.
    """

    def __init__(self, conn: sqlite3.Connection, specs: Specs) -> None:
        super().__init__(conn, Cache(1 << 62), empty=True, sink=_Discard(conn))
        self.specs = specs  # share the outer pass's decoded specs
        self.upto = 0  # the events folded here are the run's with a lower seq

    def _load_run(self, run_id: str, seq: int) -> RunView | None:
        return None  # not created yet within the history

    def _load_step(self, key: StepKey, seq: int) -> StepView | None:
        view = self.unchanged(key)
        if view is not None:
            self.steps[key] = view
        return view

    def unchanged(self, key: StepKey) -> StepView | None:
        """The view of a step the run's ``run.created`` declared and nothing changed, or None."""
        run_id, step_id = key
        creation = self.cache.creations.get(run_id)
        if creation is None:
            return None
        spec = creation.specs.get(step_id)
        return None if spec is None else born(run_id, spec, creation.seq)

    def _unique_name(self, run: RunView) -> RunView:
        return run  # the outer pass names runs

    def _newest_version(self, name: str) -> int:
        return 0  # artifacts and their versions are the outer pass's

    def _runs_deleted(self, event: RunsDeleted) -> None:
        raise DetachedError("a detached fold cannot fold runs.deleted")


class _Discard(Sink):
    def write(self, write: object, rows: object) -> None:
        pass

    def checkpoint(self, seq: int) -> None:
        pass
