"""The schedule service: fire every due tick once, start its run, and follow schedule changes.

``await engine.serve()`` (or ``evenflow serve``) runs a :class:`ScheduleService` until it is
cancelled. It keeps every schedule's state folded from the log, reads new ``schedule.*``
events every 0.25 s (another process creating, pausing or deleting a schedule takes effect
within that), and sleeps on the engine's clock until the next tick or the next change.

Invariants the "never twice, never skipped" promise relies on:

* A tick is fired only after it is *claimed*: ``schedule.triggered`` (with a new run id) is
  appended to the schedule's stream with ``expected_version`` = the version folded. Two
  services on one home fold the same stream; the one whose append lands second gets a
  ``ConcurrencyError``, folds the stream again and sees the tick taken. A pause or delete
  committed before a claim also makes the claim fail.
* The claimed run is started with that run id, and its ``run.created`` is appended with
  ``expected_version=0``, so a run id is started at most once, by whichever service gets there.
* A service that stops between claiming and starting leaves a claimed tick without a run; the
  next service to start finds it (a ``schedule.triggered`` whose run stream is empty) and starts
  it. So a tick is claimed once and its run started once; missed ticks are found from the last
  claimed one (see ``_cron.due_ticks`` for ``catchup``). Only the newest claims of a stream can
  be without a run (see ``_orphan_claims``), so a start reads those, not every tick ever fired.

Runs are started in the service's task group, on its engine. A pipeline that cannot be imported
or compiled when its tick fires gets a run that failed (``run.created`` + ``run.failed`` with
the reason), and the service carries on. Cancelling the service cancels its runs (recorded as
``run.cancelled``).
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc

import projections
from events import (
    ConcurrencyError,
    Recorded,
    RunCreated,
    RunFailed,
    ScheduleTriggered,
    decode,
    tag_of,
)

from ._cron import TickSpec, first_due, next_tick
from ._lease import Lease, live_owner
from ._log import get_logger
from ._schedule_views import read_states
from ._schedules import LOADING
from .errors import PipelineRunFailedError, RunResumeError, ScheduleError

if TYPE_CHECKING:
    from ._engine import Engine
    from ._pipeline import Pipeline

log = get_logger("evenflow.serve")
_CHUNK = 500  # run ids per query when looking for claimed ticks without a run
_RECENT = 64  # claims per page when walking a schedule's claims newest first (_orphan_claims)
_ABOVE_ALL = 2**63 - 1  # a version above any stream's head (SQLite's largest integer)
_POLL = 0.25  # seconds between two safety reads of new schedule events (see _poll)
_MAX_CONFLICTS = 100  # lost claims in a row before a schedule waits for the next round


def load_pipeline(code: str, root: str = "") -> Pipeline:
    """Import the pipeline recorded as ``code`` (``module:name`` or ``/path/file.py:name``;
    ``root``: where the module was imported from, see ``_code.find_pipeline``).

    Raises:
        ScheduleError: it cannot be imported, or what it names is not a pipeline.
    """
    from ._code import find_pipeline

    try:
        return find_pipeline(code, root)
    except SystemExit as exc:  # sys.exit() at import time must not stop the service
        raise ScheduleError(
            f"cannot import pipeline {code!r}: importing it called sys.exit({exc.code!r})"
        ) from exc
    except Exception as exc:  # the user's module raised while importing: report it, go on
        raise ScheduleError(
            f"cannot import pipeline {code!r}: {type(exc).__name__}: {exc}"
        ) from exc


def _missing_runs(conn: Any, run_ids: list[str]) -> list[str]:
    """The run ids among ``run_ids`` whose stream has no event."""
    found: set[str] = set()
    for i in range(0, len(run_ids), _CHUNK):
        chunk = run_ids[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT DISTINCT stream FROM events WHERE stream IN ({marks})", chunk
        ).fetchall()
        found.update(row[0] for row in rows)
    return [rid for rid in run_ids if rid not in found]


def _orphan_claims(conn: Any, streams: list[str]) -> list[Recorded]:
    """The claims (``schedule.triggered`` with a run id) of these schedule streams whose run
    has no event, oldest first.

    A claim's run is started right after it is claimed, so only the newest claims of a stream
    can lack a run: those whose service stopped in between. Their starts run concurrently (a
    catchup burst claims many ticks before the first run is created), so a newer claim's run
    may exist while an older one's does not. Each stream's claims are therefore read newest
    first, a page of ``_RECENT`` at a time, until a whole page has all its runs: an orphan
    older than that would have needed more than ``_RECENT`` starts in flight, out of order,
    when its service stopped (pipelines load on anyio's 40 worker threads).
    """
    orphans: list[Recorded] = []
    for stream in streams:
        below = _ABOVE_ALL  # the version of the oldest claim read so far
        while True:
            rows = conn.execute(
                "SELECT seq, stream, version, type, recorded_at, payload, hash FROM events "
                "WHERE stream = ? AND version < ? AND +type = ? ORDER BY version DESC LIMIT ?",
                (stream, below, "schedule.triggered", _RECENT),
            ).fetchall()
            claims = [Recorded(r[0], r[1], r[2], r[3], r[4], decode(r[5]), r[6]) for r in rows]
            run_ids = [
                c.event.run_id
                for c in claims
                if isinstance(c.event, ScheduleTriggered) and c.event.run_id
            ]
            missing = set(_missing_runs(conn, run_ids))
            orphans.extend(
                c
                for c in claims
                if isinstance(c.event, ScheduleTriggered) and c.event.run_id in missing
            )
            if not missing or len(rows) < _RECENT:
                break
            below = rows[-1][2]
    return sorted(orphans, key=lambda rec: rec.seq)


def _schedule_events_after(conn: Any, cursor: int) -> tuple[list[Recorded], int]:
    """``schedule.*`` events with seq > ``cursor``, and the new cursor (the newest seq).

    Walks the new rows by seq (``+type`` keeps SQLite off the type index, which would scan
    every schedule event ever written), so a poll costs what was appended since the last one.
    """
    head = conn.execute("SELECT MAX(seq) FROM events").fetchone()[0] or cursor
    rows = conn.execute(
        "SELECT seq, stream, version, type, recorded_at, payload, hash FROM events "
        "WHERE seq > ? AND seq <= ? AND +type >= ? AND +type < ? ORDER BY seq",
        (cursor, head, "schedule.", "schedule.\U0010ffff"),
    ).fetchall()
    records = [Recorded(r[0], r[1], r[2], r[3], r[4], decode(r[5]), r[6]) for r in rows]
    return records, max(int(head), cursor)


class ScheduleService:
    """Fires the due ticks of every schedule of ``engine``'s home (see the module docstring).

    Use :meth:`serve` (forever), or, in tests, :meth:`load` then :meth:`fire_due`.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.schedules: dict[str, projections.ScheduleState] = {}
        self.rounds = 0
        """How many times :meth:`serve` has fired what was due and gone back to waiting."""
        self._changed = anyio.Event()
        self._round = anyio.Event()
        self._broken: set[str] = set()  # schedules whose ticks cannot be computed (logged once)
        self._leases: dict[str, Lease] = {}  # run id -> lease taken with its claim

    # -- state -----------------------------------------------------------------------------

    async def load(self) -> int:
        """Fold every schedule from the log; returns the seq the tail should start after."""
        cursor = await self.engine.store.last_seq()
        self.schedules = await self.engine.store.run_read(read_states)
        return cursor

    def fold(self, rec: Recorded) -> None:
        """Fold one record (idempotent: a version already folded changes nothing)."""
        if not rec.stream.startswith(projections.SCHEDULE_STREAM_PREFIX):
            return
        sid = rec.stream[len(projections.SCHEDULE_STREAM_PREFIX) :]
        old = self.schedules.get(sid)
        new = projections.evolve_schedule(old, rec)
        if new is not None and new is not old:
            self.schedules[sid] = new
            self._changed.set()

    async def _refold(self, schedule_id: str) -> None:
        """Fold what the stream gained since the state folded (the versions before it would
        change nothing: folding is idempotent), not the whole stream."""
        stream = projections.schedule_stream(schedule_id)
        state = self.schedules.get(schedule_id)
        since = 0 if state is None else state.version
        for rec in await self.engine.store.read_stream(stream, from_version=since):
            self.fold(rec)

    # -- firing ----------------------------------------------------------------------------

    async def fire_due(self, tg: anyio.abc.TaskGroup) -> list[tuple[str, float, str]]:
        """Claim every due tick of every active schedule and start its run in ``tg``.

        Returns ``(schedule id, tick, run id)`` of each tick this service claimed.
        """
        fired: list[tuple[str, float, str]] = []
        for sid in list(self.schedules):
            conflicts = 0
            while conflicts < _MAX_CONFLICTS:
                state = self.schedules[sid]
                if state.paused or state.deleted:
                    break
                try:
                    tick = first_due(TickSpec.of(state), state.last_tick, self.engine.clock.now())
                except ScheduleError as exc:  # e.g. its time zone is unknown here: skip it
                    self._report(state, exc)
                    break
                if tick is None:
                    break
                run_id = await self._claim(state, tick)
                if run_id is None:
                    conflicts += 1
                    continue
                fired.append((sid, tick, run_id))
                tg.start_soon(self.start_run, self.schedules[sid], tick, run_id)
            else:
                log.warning("claims_keep_conflicting", schedule=self.schedules[sid].name)
        return fired

    async def _claim(self, state: projections.ScheduleState, tick: float) -> str | None:
        run_id = str(uuid.uuid4())
        event = ScheduleTriggered(schedule_id=state.id, tick=tick, run_id=run_id)
        stream = projections.schedule_stream(state.id)
        # The run's lease is taken before the claim is committed and held until the run ends:
        # another service seeing the claim before the run's first event knows it is starting.
        lease = Lease.acquire(self.engine.home.leases, run_id, self.engine.owner_id)
        try:
            seqs = await self.engine.store.append(stream, [event], expected_version=state.version)
        except ConcurrencyError:
            lease.release()
            # Another service claimed a tick, or someone paused or deleted it: fold and re-decide.
            await self._refold(state.id)
            return None
        except BaseException:
            lease.release()
            raise
        self._leases[run_id] = lease
        self.fold(Recorded(seqs[0], stream, state.version + 1, tag_of(event), 0.0, event))
        log.info("tick_fired", schedule=state.name, tick=_iso(tick), run_id=run_id)
        return run_id

    async def start_run(self, state: projections.ScheduleState, tick: float, run_id: str) -> None:
        """Start the run of a claimed tick (at most once per run id, across services: whoever
        holds the run's lease starts it)."""
        lease = self._leases.pop(run_id, None)
        if lease is None:  # a recovered claim: take the lease, unless a live service holds it
            try:
                lease = Lease.acquire(self.engine.home.leases, run_id, self.engine.owner_id)
            except RunResumeError:
                log.info("run_already_started", schedule=state.name, run_id=run_id)
                return
        try:
            await self._start(state, tick, run_id, lease)
        finally:
            lease.release()  # (already released by the run when it ran; releasing is idempotent)

    async def _start(
        self, state: projections.ScheduleState, tick: float, run_id: str, lease: Lease
    ) -> None:
        token = LOADING.set(True)
        try:
            from .config import PipelineRunConfiguration

            pipe = await anyio.to_thread.run_sync(load_pipeline, state.code, state.code_root)
            config = PipelineRunConfiguration.from_dict(state.config)
            pipe = pipe.with_options(**config, raise_on_failure=False)
            if pipe._is_dynamic():
                plan = pipe._dynamic_plan((), state.parameters)
            else:
                plan = pipe.compile(**state.parameters)
        except Exception as exc:
            await self._record_failed(state, tick, run_id, exc)
            return
        finally:
            LOADING.reset(token)
        plan.run_id, plan.schedule_id, plan.tick = run_id, state.id, tick
        try:
            view = await pipe._execute(self.engine, plan, lease=lease)
        except ConcurrencyError:
            log.info("run_already_started", schedule=state.name, run_id=run_id)
            return
        except PipelineRunFailedError as exc:  # raise_on_failure=False; kept for safety
            view = exc.run
        log.info("run_finished", schedule=state.name, run_id=run_id, status=view.status.value)

    async def _record_failed(
        self, state: projections.ScheduleState, tick: float, run_id: str, exc: Exception
    ) -> None:
        from ._pipeline import _format_run_name, _unique_run_name

        error = f"schedule {state.name!r} could not start pipeline {state.pipeline!r}: {exc}"
        name = _format_run_name(f"{state.pipeline}-{{date}}-{{time}}", dt.datetime.now())
        created = RunCreated(
            pipeline=state.pipeline,
            run_name=await _unique_run_name(self.engine, name),
            parameters=dict(state.parameters),
            code=state.code,
            code_root=state.code_root,
            config=dict(state.config),
            schedule_id=state.id,
            tick=tick,
        )
        try:
            await self.engine.store.append(
                run_id, [created, RunFailed(error=error)], expected_version=0
            )
        except ConcurrencyError:
            return  # another service started (or failed) this run already
        log.error("run_not_started", schedule=state.name, run_id=run_id, error=error)

    async def _recover(self, tg: anyio.abc.TaskGroup) -> None:
        """Start the runs of ticks that were claimed but never started (a service stopped
        in between): the newest claims of each schedule (see ``_orphan_claims``)."""
        streams = [projections.schedule_stream(sid) for sid in self.schedules]
        for rec in await self.engine.store.run_read(_orphan_claims, streams):
            event = rec.event
            assert isinstance(event, ScheduleTriggered)
            run_id = event.run_id
            state = self.schedules.get(event.schedule_id)
            if state is not None and live_owner(self.engine.home.leases, run_id) is None:
                log.info("claimed_tick_recovered", schedule=state.name, run_id=run_id)
                tg.start_soon(self.start_run, state, event.tick, run_id)

    # -- serving ---------------------------------------------------------------------------

    async def wait_rounds(self, rounds: int) -> None:
        """Wait until :attr:`rounds` reaches ``rounds`` (a readiness handshake for tests and
        embedding apps: "the service has handled everything up to now")."""
        while self.rounds < rounds:
            await self._round.wait()

    def next_wake(self) -> float | None:
        """The earliest tick after the last fired one, over the active schedules (None:
        nothing will ever fire). Not "after now": a tick that fell due while the service was
        busy must wake it at once, not be skipped."""
        wakes: list[float] = []
        for state in self.schedules.values():
            if state.paused or state.deleted:
                continue
            try:
                wake = next_tick(TickSpec.of(state), state.last_tick)
            except ScheduleError as exc:
                self._report(state, exc)
                continue
            if wake is not None:
                wakes.append(wake)
        return min(wakes, default=None)

    def _report(self, state: projections.ScheduleState, exc: ScheduleError) -> None:
        """Log, once per schedule, why its ticks cannot be computed (the others go on)."""
        if state.id not in self._broken:
            self._broken.add(state.id)
            log.error("schedule_skipped", schedule=state.name, error=str(exc))

    async def _poll(self, cursor: int) -> None:
        """Fold the ``schedule.*`` events committed after ``cursor`` (by any process), every
        ``_POLL`` seconds, through the engine's own read connection (one indexed query).

        Not ``events.Follower``: it starts by checking the file (``_schema.inspect``), whose
        plain ``open()``/``close()`` of the database drops this process's POSIX locks while the
        store is open, after which another process closing its last connection deletes the WAL
        under this one (see the report on that bug). Folding is idempotent, so a record seen
        twice costs nothing."""
        while True:
            await anyio.sleep(_POLL)
            records, cursor = await self.engine.store.run_read(_schedule_events_after, cursor)
            for rec in records:
                self.fold(rec)

    async def _wait(self, deadline: float | None) -> None:
        """Until the clock reaches ``deadline`` or a schedule changes, whichever is first."""
        changed = self._changed
        async with anyio.create_task_group() as tg:

            async def timer() -> None:
                if deadline is None:
                    await anyio.sleep_forever()
                else:
                    await self.engine.clock.sleep_until(deadline)
                tg.cancel_scope.cancel()

            tg.start_soon(timer)
            await changed.wait()
            tg.cancel_scope.cancel()

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until cancelled; ``task_status.started()`` once the schedules are loaded."""
        cursor = await self.load()
        log.info("serve_started", home=str(self.engine.home.root), schedules=len(self.schedules))
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._poll, cursor)
            await self._recover(tg)
            task_status.started()
            try:
                while True:
                    self._changed = anyio.Event()
                    await self.fire_due(tg)
                    self.rounds += 1
                    self._round.set()
                    self._round = anyio.Event()
                    await self._wait(self.next_wake())
            finally:
                log.info("serve_stopping")


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat()


__all__ = ["ScheduleService", "load_pipeline"]
