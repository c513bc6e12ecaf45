"""``Client``: query runs, steps and artifacts of a home (``from engine.client import Client``).

Every read comes from the projections (persisted views kept in the append transaction). The
Client is synchronous, like ZenML's; it opens a short read-only connection per call.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import projections
from events import Recorded as _Recorded
from events import decode

from ._crash import mark_crashed, unowned_runs
from ._home import Home
from ._schedule_views import ScheduleView
from ._sync import with_engine
from ._views import (
    ArtifactVersionView,
    PipelineRunView,
    RunEvent,
    _connect,
    _read_view,
    view_from_state,
)
from .enums import ExecutionStatus
from .errors import ArtifactError, RunNotFoundError

if TYPE_CHECKING:
    from ._engine import Engine

T = TypeVar("T")

_SORT = {
    "created": "created",
    "asc:created": "created",
    "-created": "-created",
    "desc:created": "-created",
}


@dataclass(frozen=True, slots=True)
class PipelineInfo:
    """A pipeline as seen through its runs (``Client().get_pipeline(name)``)."""

    name: str
    runs: list[PipelineRunView]

    @property
    def last_run(self) -> PipelineRunView:
        """The most recently created run."""
        if not self.runs:
            raise RunNotFoundError(f"pipeline {self.name!r} has no runs")
        return self.runs[0]


async def _nothing(engine: Engine) -> None:
    return None


def _catch_up(home: Home) -> None:
    """Bring the persisted projections up to the log (another tool may have appended only
    events)."""
    with_engine(home, _nothing)


class Client:
    """Read access to one evenflow home (default ``$EVENFLOW_HOME`` or ``~/.evenflow``)."""

    def __init__(self, home: str | Path | None = None) -> None:
        self.home = Home.resolve(home)

    def _conn(self) -> Any:
        return _connect(self.home) if self._ready() else None

    def _ready(self) -> bool:
        """Whether the home has a database; catches its projections up with the log first."""
        if not self.home.db.exists():
            return False
        with _connect(self.home) as conn:
            try:
                behind = projections.checkpoint(conn) < _last_seq(conn)
            except sqlite3.OperationalError:
                behind = True
            crashed = unowned_runs(self.home, conn)
        if crashed:  # runs whose owner died: record it (once) before answering
            with_engine(self.home, lambda engine: mark_crashed(engine, crashed))
        elif behind:
            _catch_up(self.home)
        return True

    # -- runs ------------------------------------------------------------------------------

    def get_pipeline_run(self, name_id_or_prefix: str) -> PipelineRunView:
        """A run by id, unique id prefix (8+ characters) or name.

        Raises:
            RunNotFoundError: nothing matches, or the prefix matches several runs.
        """
        handle = self._conn()
        if handle is None:
            raise RunNotFoundError(f"no run {name_id_or_prefix!r}: {self.home.db} does not exist")
        with handle as conn:
            matches = projections.find_runs(conn, name_id_or_prefix)
            if not matches:
                raise RunNotFoundError(f"no run matches {name_id_or_prefix!r} in {self.home.db}")
            if len(matches) > 1:
                ids = ", ".join(m.id for m in matches[:5])
                raise RunNotFoundError(
                    f"{name_id_or_prefix!r} matches {len(matches)} runs ({ids}); "
                    "give more of the id"
                )
            found = _read_view(conn, matches[0].id)
        assert found is not None
        return PipelineRunView(self.home, *found)

    def list_pipeline_runs(
        self,
        pipeline: str | None = None,
        status: ExecutionStatus | str | None = None,
        tags: list[str] | str | None = None,
        since: dt.datetime | float | None = None,
        size: int | None = None,
        sort_by: str = "desc:created",
        schedule: str | None = None,
    ) -> list[PipelineRunView]:
        """Runs, newest first by default, filtered by pipeline name, status, tags (all must
        match), creation time and schedule id."""
        if sort_by not in _SORT:
            raise ValueError(f"sort_by must be one of {sorted(_SORT)}, got {sort_by!r}")
        handle = self._conn()
        if handle is None:
            return []
        if isinstance(since, dt.datetime):
            since = since.timestamp()
        if isinstance(tags, str):
            tags = [tags]
        status_value = None if status is None else ExecutionStatus(status)
        with handle as conn:
            runs = projections.list_runs(
                conn,
                pipeline=pipeline,
                status=status_value,
                tags=tags,
                since=since,
                size=size,
                sort_by=_SORT[sort_by],
                schedule_id=schedule,
            )
            return [
                PipelineRunView(self.home, run, projections.get_steps(conn, run.id)) for run in runs
            ]

    def get_pipeline(self, name: str) -> PipelineInfo:
        """A pipeline by name, with its runs newest first."""
        runs = self.list_pipeline_runs(pipeline=name)
        if not runs:
            raise RunNotFoundError(f"no pipeline named {name!r} has runs in {self.home.db}")
        return PipelineInfo(name, runs)

    def get_run_state(self, run_id: str, at_seq: int | None = None) -> PipelineRunView:
        """The run as it was after event ``at_seq`` (time travel), folded from the log."""
        run_id = self.get_pipeline_run(run_id).id
        with _connect(self.home) as conn:
            sql = (
                "SELECT seq, stream, version, type, recorded_at, payload, hash FROM events "
                "WHERE stream = ?"
            )
            params: list[Any] = [run_id]
            if at_seq is not None:
                sql += " AND seq <= ?"
                params.append(at_seq)
            rows = conn.execute(sql + " ORDER BY seq", params).fetchall()
        records = [_Recorded(r[0], r[1], r[2], r[3], r[4], decode(r[5]), r[6]) for r in rows]
        state = projections.fold_run(records)
        if state is None:
            raise RunNotFoundError(f"run {run_id!r} has no events at or before seq {at_seq}")
        return view_from_state(self.home, state)

    # -- recovery --------------------------------------------------------------------------

    def resume_run(self, name_id_or_prefix: str) -> PipelineRunView:
        """Resume a run whose process died: finished steps are reused from the log, steps that
        started but never finished run again (at-least-once), pending retries keep their due
        time, and the run completes in the same stream. Returns the finished run's view.

        Raises:
            RunResumeError: the run already ended, is still running under a live process's
                lease, or its code no longer declares the steps the log recorded.
        """
        from ._resume import resume

        run_id = self.get_pipeline_run(name_id_or_prefix).id
        return with_engine(self.home, lambda engine: resume(engine, run_id))

    def cancel_run(self, name_id_or_prefix: str) -> str:
        """Cancel a run that has not finished, whichever process runs it: its owner sees the
        request in the log and cancels within a second (``"requested"``); a run nobody owns
        any more is cancelled at once (``"cancelled"``).

        Raises:
            RunResumeError: the run already ended.
        """
        from ._crash import cancel

        run_id = self.get_pipeline_run(name_id_or_prefix).id
        return with_engine(self.home, lambda engine: cancel(engine, run_id))

    # -- the log ---------------------------------------------------------------------------

    async def tail(
        self,
        run_id: str | None = None,
        since: int | None = None,
        *,
        type_prefix: str | None = None,
        backlog: int = 20,
        follow: bool = True,
    ) -> AsyncGenerator[RunEvent, None]:
        """Events as any process commits them: ``async for event in Client().tail(): ...``.

        Starts with the newest ``backlog`` matching events, or after seq ``since``, then follows
        the log (woken by file-system events on the database; polling where watching fails)
        until the loop is left or its task cancelled. Reads never hold a snapshot across a wait.

        Args:
            run_id: only this run's events (an id, a unique 8+ character id prefix, or a name).
            since: start after this seq (0: the whole log).
            type_prefix: only events whose type starts with this (``"step."``).
            backlog: how many of the newest matching events to start with when ``since`` is None.
            follow: keep following once caught up (False: stop there).

        Raises:
            RunNotFoundError: ``run_id`` matches no run.
            StoreError: the home has no database, or it cannot be read.
        """
        import contextlib

        import anyio

        from events import Follower

        stream = None
        if run_id is not None:
            stream = (await anyio.to_thread.run_sync(self.get_pipeline_run, run_id)).id
        follower = Follower(
            self.home.db,
            since=since,
            stream=stream,
            type_prefix=type_prefix,
            backlog=backlog,
            follow=follow,
        )
        async with contextlib.aclosing(follower.records()) as records:
            async for rec in records:
                yield RunEvent(rec)

    def rebuild_projections(self) -> int:
        """Drop the persisted views (runs, step runs, artifacts) and fold them again from the log.

        One write transaction, waiting up to a minute while another process writes: readers see
        the old views or the new ones, never a mix. Returns the number of events folded.

        Raises:
            StoreError: no database, not an evenflow database, or the rebuild failed.
            StoreBusyError: another process kept the write lock for a minute.
        """
        from events import StoreBusyError, StoreError, connect_database

        conn = connect_database(self.home.db, write=True)
        try:
            return projections.rebuild(conn)
        except sqlite3.OperationalError as exc:
            code = (getattr(exc, "sqlite_errorcode", 0) or 0) & 0xFF
            if code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise StoreBusyError(f"{self.home.db} stayed locked by another process") from exc
            raise StoreError(f"cannot rebuild the projections of {self.home.db}: {exc}") from exc
        finally:
            conn.close()

    # -- models ----------------------------------------------------------------------------

    def get_model_version(self, name: str, version: str | int | None = None) -> Any:
        """A model version by stage (``"production"``, ``"staging"``, ``"latest"``), name or
        number; the newest when ``version`` is None. Its ``.artifacts`` maps the linked artifact
        ids to output names; ``.run_ids`` lists the runs that created it."""
        if not self._ready():
            raise RunNotFoundError(f"no model named {name!r}: {self.home.db} does not exist")
        return _model_version(self.home, name, version)

    # -- artifacts -------------------------------------------------------------------------

    def get_artifact_version(self, name: str, version: int | None = None) -> ArtifactVersionView:
        """An artifact by output name (and version number; the latest by default)."""
        handle = self._conn()
        if handle is None:
            raise ArtifactError(f"no artifact {name!r}: {self.home.db} does not exist")
        with handle as conn:
            found = projections.get_artifact_version(conn, name, version)
        if found is None:
            which = "any version" if version is None else f"version {version}"
            raise ArtifactError(f"no artifact named {name!r} ({which}) in {self.home.db}")
        return ArtifactVersionView(self.home, found.ref, found.version)

    # -- retention -------------------------------------------------------------------------

    def delete_pipeline_run(self, name_id_or_prefix: str, *, reason: str = "") -> Any:
        """Delete a finished run, and the artifacts no kept run or model version uses.

        Appends one audited ``runs.deleted`` event (the run's own events stay in the log);
        the run then disappears from every view. Returns a ``DeletionReport`` (``.runs``,
        ``.artifacts``, ``.kept``, ``.uris``, ``.bytes_freed``, ``.seq``).
        See ``docs/adr/0004-retention.md``.

        Raises:
            RunNotFoundError: nothing matches ``name_id_or_prefix``.
            RetentionError: the run has not finished.
        """
        from ._retention import delete_runs

        run_id = self.get_pipeline_run(name_id_or_prefix).id
        why = reason or "Client().delete_pipeline_run"
        return with_engine(self.home, lambda engine: delete_runs(engine, [run_id], reason=why))

    # -- secrets ---------------------------------------------------------------------------

    def create_secret(self, name: str, values: dict[str, str], *, overwrite: bool = False) -> None:
        """Store a secret in this home's secret store (its own 0600 file, never the event log).

        Steps with ``secrets=[name]`` see its keys as environment variables.

        Raises:
            SecretError: the name or a key is invalid, a value is not a string, or the secret
                exists and ``overwrite`` is false.
        """
        from ._secrets import SecretStore

        SecretStore(self.home.secrets).create(name, values, overwrite=overwrite)

    def get_secret(self, name: str) -> dict[str, str]:
        """A secret's values (a ``dict`` whose ``repr`` shows the keys only).

        Raises:
            SecretError: no secret has that name.
        """
        from ._secrets import SecretStore

        return SecretStore(self.home.secrets).get(name)

    def list_secrets(self) -> list[str]:
        """The names of this home's secrets, sorted."""
        from ._secrets import SecretStore

        return SecretStore(self.home.secrets).list()

    def delete_secret(self, name: str) -> None:
        """Remove a secret.

        Raises:
            SecretError: no secret has that name.
        """
        from ._secrets import SecretStore

        SecretStore(self.home.secrets).delete(name)

    # -- schedules -------------------------------------------------------------------------

    def list_schedules(
        self, pipeline: str | None = None, *, include_deleted: bool = False
    ) -> list[ScheduleView]:
        """Schedules, oldest first, with their status and next fire time as of now (deleted
        ones only with ``include_deleted``)."""
        import time

        from ._schedule_views import views_from

        handle = self._conn()
        if handle is None:
            return []
        with handle as conn:
            return views_from(conn, time.time(), pipeline=pipeline, include_deleted=include_deleted)

    def get_schedule(self, name_id_or_prefix: str) -> ScheduleView:
        """A live schedule by name, id or unique id prefix (8+ characters).

        Raises:
            ScheduleNotFoundError: nothing matches, or the prefix matches several schedules.
        """
        import time

        from ._schedule_views import find_state, last_run_status, read_states, view_of
        from .errors import ScheduleNotFoundError

        handle = self._conn()
        if handle is None:
            raise ScheduleNotFoundError(
                f"no schedule {name_id_or_prefix!r}: {self.home.db} does not exist"
            )
        with handle as conn:
            state = find_state(read_states(conn), name_id_or_prefix, self.home.db)
            return view_of(state, time.time(), last_run_status(conn, state.last_run_id))

    def pause_schedule(self, name_id_or_prefix: str) -> ScheduleView:
        """Pause a schedule: no tick fires until it is resumed (a no-op if paused).

        Raises:
            ScheduleNotFoundError: no live schedule matches.
        """
        from ._schedules import change_sync

        return change_sync(self.home, name_id_or_prefix, "pause")

    def resume_schedule(self, name_id_or_prefix: str) -> ScheduleView:
        """Resume a paused schedule (a no-op if it is not paused). Ticks missed while it was
        paused follow its ``catchup``.

        Raises:
            ScheduleNotFoundError: no live schedule matches.
        """
        from ._schedules import change_sync

        return change_sync(self.home, name_id_or_prefix, "resume")

    def delete_schedule(self, name_id_or_prefix: str) -> None:
        """Delete a schedule: it never fires again (its runs and its events stay).

        Raises:
            ScheduleNotFoundError: no live schedule matches.
        """
        from ._schedules import change_sync

        change_sync(self.home, name_id_or_prefix, "delete")


def _model_version(home: Home, name: str, version: str | int | None) -> Any:
    from ._models import fold_model, stream_of

    with _connect(home) as conn:
        rows = conn.execute(
            "SELECT seq, stream, version, type, recorded_at, payload, hash FROM events "
            "WHERE stream = ? ORDER BY seq",
            (stream_of(name),),
        ).fetchall()
    records = [_Recorded(r[0], r[1], r[2], r[3], r[4], decode(r[5]), r[6]) for r in rows]
    if not records:
        raise RunNotFoundError(f"no model named {name!r} in {home.db}")
    found = fold_model(name, records).find(version)
    if found is None:
        raise RunNotFoundError(f"model {name!r} has no version {version!r}")
    return found


def _last_seq(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(seq) FROM events").fetchone()
    return int(row[0] or 0)
