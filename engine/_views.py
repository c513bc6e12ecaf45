"""What users get back: runs, step runs and artifact versions, read from the projections.

These wrap the projections' frozen views with ZenML's names (``run.steps[id].outputs[name]``,
``.output.load()``, ``run.events()``). They hold references (home, ids), never step values.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

import projections
from events import ArtifactRef, Recorded, decode

from ._home import Home
from .enums import ExecutionStatus
from .errors import RunNotFoundError, StepOutputError

if TYPE_CHECKING:
    from ._engine import Engine


def _utc(ts: float | None) -> dt.datetime | None:
    return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)


class ArtifactVersionView:
    """One stored output. ``load()`` reads the value back from the artifact store."""

    def __init__(self, home: Home, ref: ArtifactRef, version: int | None = None) -> None:
        self._home = home
        self.ref = ref
        self.id = ref.id
        self.name = ref.name
        self.uri = ref.uri
        self.content_hash = ref.content_hash
        self.materializer = ref.materializer
        self.type_name = ref.type_name
        self.size = ref.size
        self.version = version

    def load(self) -> Any:
        """The stored value."""
        from ._artifacts import ArtifactStore

        return ArtifactStore(self._home.artifacts).load(self.ref)

    def __repr__(self) -> str:
        return f"<ArtifactVersion {self.name} {self.id[:8]} {self.type_name}>"


class StepRunView:
    """One step invocation of a run (``run.steps[invocation_id]``)."""

    def __init__(self, home: Home, view: projections.StepView) -> None:
        self._home = home
        self._view = view
        self.id = view.step_run_id
        self.invocation_id = view.id
        self.name = view.name
        self.status = ExecutionStatus(view.status)
        self.start_time = _utc(view.start_time)
        self.end_time = _utc(view.end_time)
        self.duration = view.duration
        self.cache_key = view.cache_key
        self.original_step_run_id = view.original_step_run_id
        self.error = view.error
        self.error_type = view.error_type
        self.attempt = view.attempt
        self.metadata = dict(view.metadata)
        self.spec = view.spec
        self.logs_uri = view.logs_uri
        self.outputs: dict[str, list[ArtifactVersionView]] = {
            name: [ArtifactVersionView(home, ref) for ref in refs]
            for name, refs in view.outputs.items()
        }

    @property
    def output(self) -> ArtifactVersionView:
        """The single output; raises if the step has none or several."""
        if len(self.outputs) != 1:
            raise StepOutputError(
                f"step {self.invocation_id!r} has {len(self.outputs)} outputs "
                f"({', '.join(self.outputs) or 'none'}); use .outputs[name]"
            )
        (versions,) = self.outputs.values()
        return versions[0]

    def logs(self) -> str:
        """What the step printed and logged, every attempt ("" if it wrote nothing, or ran
        with ``enable_step_logs=False``). Read now: a running step's log so far."""
        from ._step_logs import log_uri, read_log

        uri = self.logs_uri or log_uri(self._view.run_id, self.invocation_id)
        return read_log(self._home, uri).decode("utf-8", errors="replace")

    def __repr__(self) -> str:
        return f"<StepRun {self.invocation_id} {self.status.value}>"


class RunEvent:
    """An event as users see it: ``seq``, ``type``, ``stream``, ``recorded_at`` and the payload
    fields as attributes (``event.step``)."""

    __slots__ = ("event", "hash", "recorded_at", "seq", "stream", "type", "version")

    def __init__(self, rec: Recorded) -> None:
        self.seq = rec.seq
        self.type = rec.type
        self.stream = rec.stream
        self.version = rec.version
        self.recorded_at = dt.datetime.fromtimestamp(rec.recorded_at, dt.UTC)
        self.event = rec.event
        self.hash = rec.hash

    def __getattr__(self, name: str) -> Any:
        return getattr(self.event, name)

    def payload(self) -> dict[str, Any]:
        """The payload fields as plain data."""
        import msgspec

        data = msgspec.to_builtins(self.event)
        assert isinstance(data, dict)
        data.pop("type", None)
        return data

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly: envelope fields plus payload (``recorded_at`` as epoch seconds)."""
        return {
            "seq": self.seq,
            "type": self.type,
            "stream": self.stream,
            "recorded_at": self.recorded_at.timestamp(),
            **self.payload(),
        }

    def __repr__(self) -> str:
        return f"<RunEvent {self.seq} {self.type}>"


class PipelineRunView:
    """A pipeline run (ZenML's ``PipelineRunResponse``, read from the event log)."""

    def __init__(
        self,
        home: Home,
        run: projections.RunView,
        steps: Mapping[str, projections.StepView] | None = None,
    ) -> None:
        self._home = home
        self._view = run
        self.id = run.id
        self.name = run.name
        self.pipeline_name = run.pipeline
        self.status = ExecutionStatus(run.status)
        self.created = _utc(run.created_at)
        self.start_time = _utc(run.started_at)
        self.end_time = _utc(run.ended_at)
        self.tags = list(run.tags)
        self.parameters = dict(run.parameters)
        self.error = run.error
        self.failed_step = run.failed_step
        self.schedule_id = run.schedule_id
        self.tick = _utc(run.tick)  # the schedule tick this run is for
        self.config = dict(run.config)
        self.metadata = dict(run.metadata)
        self._steps = steps
        self._step_views: dict[str, StepRunView] | None = None

    @property
    def steps(self) -> dict[str, StepRunView]:
        """The run's step invocations by invocation id, in DAG declaration order (read from
        the projections on first access)."""
        if self._step_views is None:
            steps = self._steps
            if steps is None:
                with _connect(self._home) as conn:
                    steps = projections.get_steps(conn, self.id)
            self._step_views = {k: StepRunView(self._home, v) for k, v in steps.items()}
            self._steps = None
        return self._step_views

    @property
    def outputs(self) -> list[ArtifactVersionView]:
        """The artifacts the pipeline body returned, in order."""
        out = []
        for ref in self._view.outputs:
            step = self.steps.get(ref.step)
            if step is not None and ref.output in step.outputs:
                out.extend(step.outputs[ref.output][:1])
        return out

    def events(self) -> list[RunEvent]:
        """The run's events in seq order."""
        with _connect(self._home) as conn:
            rows = conn.execute(
                "SELECT seq, stream, version, type, recorded_at, payload, hash FROM events "
                "WHERE stream = ? ORDER BY seq",
                (self.id,),
            ).fetchall()
        return [RunEvent(Recorded(r[0], r[1], r[2], r[3], r[4], decode(r[5]), r[6])) for r in rows]

    def __iter__(self) -> Iterator[StepRunView]:
        return iter(self.steps.values())

    def __repr__(self) -> str:
        return f"<PipelineRun {self.name} {self.status.value}>"


class _Conn:
    def __init__(self, home: Home) -> None:
        self.conn = sqlite3.connect(f"{home.db.as_uri()}?mode=ro", uri=True)
        self.conn.execute("PRAGMA busy_timeout = 5000")

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def _connect(home: Home) -> _Conn:
    if not home.db.exists():
        raise RunNotFoundError(f"no evenflow database at {home.db}")
    return _Conn(home)


def _read_view(
    conn: sqlite3.Connection, run_id: str
) -> tuple[projections.RunView, dict[str, projections.StepView]] | None:
    run = projections.get_run(conn, run_id)
    if run is None:
        return None
    return run, projections.get_steps(conn, run_id)


def view_from_state(home: Home, state: projections.RunState) -> PipelineRunView:
    """A user view of a folded run state (time travel)."""
    return PipelineRunView(home, state.run, state.steps)


def load_run_view(home: Home, run_id: str) -> PipelineRunView:
    """Read a run's view synchronously (any thread)."""
    with _connect(home) as conn:
        found = _read_view(conn, run_id)
    if found is None:
        raise RunNotFoundError(f"no run with id {run_id!r} in {home.db}")
    return PipelineRunView(home, *found)


async def load_run_view_async(engine: Engine, run_id: str) -> PipelineRunView:
    """Read a run's view through the engine's read connection (its steps load on first use)."""
    found = await engine.store.run_read(projections.get_run, run_id)
    if found is None:
        raise RunNotFoundError(f"no run with id {run_id!r} in {engine.home.db}")
    return PipelineRunView(engine.home, found)
