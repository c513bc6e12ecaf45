"""The persisted projection's cost per event, measured through the store without the engine.

    python -m benchmarks.projector [--json] [--steps N] [--batch B] [--shape run|cached]
                                   [--small-appends K] [--rounds R]

A W2-shaped stream (one source, ``N`` independent steps, one join) is appended through an
:class:`events.EventStore` twice per round, on fresh files: once bare and once with the
:class:`projections.Projector` hook, so the difference is what the projection adds.

1. ``run.created`` with the ``N + 2`` step specs, then ``run.started``: the time to declare the
   DAG (every step is born pending here), in milliseconds.
2. The step events in appends of ``B`` events each, in the order a run records them (every
   ``step.ready`` of a wave, then 64 steps at a time their ``step.started``, then their
   ``artifact.stored`` and ``step.succeeded``: ``--shape run``, the default), or ``step.ready``
   then ``step.cached`` (``--shape cached``: what cache hits record). Reported in microseconds
   per event.
3. ``K`` sequential appends of one step's 4 events (a one-commit-per-step chain): median and p99
   per append, in microseconds.

Figures are medians over ``--rounds`` rounds; durability is ``"normal"`` throughout.
"""

from __future__ import annotations

import statistics
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import anyio

from events import (
    AnyEvent,
    ArtifactRef,
    ArtifactStored,
    EventStore,
    InputRef,
    RunCreated,
    RunStarted,
    StepCached,
    StepReady,
    StepSpec,
    StepStarted,
    StepSucceeded,
    TransactionHook,
)
from projections import Projector

from ._common import emit, environment, parser, peak_rss_mb, percentile

_SOURCE = "benchmarks.overhead:_pipelines.<locals>.{}"
_MATERIALIZER = "engine._materializers_builtin:BuiltInMaterializer"
_WINDOW = 64  # steps running at once (the engine's default max_concurrency)


def _spec(step_id: str, name: str, inputs: dict[str, InputRef | list[InputRef]]) -> StepSpec:
    return StepSpec(
        id=step_id,
        name=name,
        source=_SOURCE.format(name),
        code_hash=uuid.uuid5(uuid.NAMESPACE_OID, name).hex,
        inputs=inputs,
        is_async=True,
    )


def w2_specs(n: int) -> list[StepSpec]:
    """The DAG of the overhead benchmark's W2: a source, ``n`` no-op steps fed by it, a join."""
    ids = ["a_noop" if i == 0 else f"a_noop_{i + 1}" for i in range(n)]
    specs = [_spec("a_source", "a_source", {})]
    specs += [_spec(sid, "a_noop", {"x": InputRef("a_source")}) for sid in ids]
    specs.append(_spec("a_join", "a_join", {"xs": [InputRef(sid) for sid in ids]}))
    return specs


def _artifact(i: int) -> ArtifactRef:
    digest = uuid.uuid5(uuid.NAMESPACE_OID, str(i)).hex * 2
    return ArtifactRef(
        id=uuid.uuid4().hex,
        name="output",
        content_hash=digest,
        uri=f"{digest[:2]}/{digest}",
        materializer=_MATERIALIZER,
        type_name="builtins:int",
        size=1,
    )


def _lifecycle(step_id: str, i: int, shape: str) -> tuple[AnyEvent, list[AnyEvent]]:
    """One step's ``step.ready``, and the events that follow it once the step runs."""
    ref = _artifact(i)
    if shape == "cached":
        return StepReady(step=step_id), [
            StepCached(
                step=step_id,
                cache_key=ref.content_hash,
                source_run="0" * 32,
                source_step="a_noop",
                outputs={"output": ref},
            )
        ]
    return StepReady(step=step_id), [
        StepStarted(step=step_id, attempt=1),
        ArtifactStored(step=step_id, artifact=ref),
        StepSucceeded(
            step=step_id, outputs={"output": ref.id}, duration=0.0004, cache_key=ref.content_hash
        ),
    ]


def step_events(step_ids: Sequence[str], shape: str, window: int = _WINDOW) -> list[AnyEvent]:
    """The events of ``step_ids`` in the order a run records them when they all become ready
    at once and run ``window`` at a time: every ``step.ready``, then per window of steps each
    one's ``step.started``, then each one's outcome (``artifact.stored``, ``step.succeeded``).
    """
    ready, rest = zip(*(_lifecycle(sid, i, shape) for i, sid in enumerate(step_ids)), strict=True)
    out: list[AnyEvent] = list(ready)
    for start in range(0, len(rest), window):
        part = rest[start : start + window]
        out.extend(events[0] for events in part)
        out.extend(e for events in part for e in events[1:])
    return out


def w2_events(specs: Sequence[StepSpec], shape: str) -> list[AnyEvent]:
    """W2's step events: the source's, then the ``N`` independent steps', then the join's."""
    ids = [spec.id for spec in specs]
    return (
        step_events(ids[:1], shape) + step_events(ids[1:-1], shape) + step_events(ids[-1:], shape)
    )


def _batches(events: Sequence[AnyEvent], size: int) -> list[Sequence[AnyEvent]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


async def _phase(
    path: Path, hooks: list[TransactionHook], n: int, batch: int, shape: str, small: int
) -> dict[str, Any]:
    specs = w2_specs(n)
    run_id = str(uuid.uuid4())
    created: list[AnyEvent] = [
        RunCreated(pipeline="w2_a_noop", run_name=f"w2-{run_id[:8]}", steps=specs),
        RunStarted(owner="bench"),
    ]
    body = w2_events(specs, shape)
    chain_id = str(uuid.uuid4())
    chain_specs = [_spec(f"s{i}", "a_noop", {}) for i in range(small)]
    chain = [step_events([spec.id], "run") for spec in chain_specs]
    async with EventStore.open(path, hooks=hooks) as store:
        start = time.perf_counter()
        await store.append(run_id, created)
        created_s = time.perf_counter() - start
        start = time.perf_counter()
        for part in _batches(body, batch):
            await store.append(run_id, part)
        body_s = time.perf_counter() - start
        await store.append(
            chain_id, [RunCreated(pipeline="chain", run_name="chain", steps=chain_specs)]
        )
        samples = []
        for events in chain:
            start = time.perf_counter()
            await store.append(chain_id, events)
            samples.append(time.perf_counter() - start)
    return {
        "created_ms": created_s * 1e3,
        "events": len(body),
        "per_event_us": body_s / len(body) * 1e6,
        "small_median_us": statistics.median(samples) * 1e6 if samples else None,
        "small_p99_us": percentile(samples, 99) * 1e6 if samples else None,
    }


def _median(values: list[float | None]) -> float | None:
    found = [v for v in values if v is not None]
    return round(statistics.median(found), 2) if found else None


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else round(a - b, 2)


def run(n: int, batch: int, shape: str, small: int, rounds: int) -> dict[str, Any]:
    """Run ``rounds`` rounds (bare, then with the projector, each on a fresh file)."""
    keys = ("created_ms", "per_event_us", "small_median_us", "small_p99_us")
    got: dict[str, dict[str, list[float | None]]] = {
        kind: {k: [] for k in keys} for kind in ("bare", "projector")
    }
    events = 0
    for _ in range(rounds):
        for kind in ("bare", "projector"):
            hooks: list[TransactionHook] = [Projector()] if kind == "projector" else []
            with tempfile.TemporaryDirectory(prefix="evenflow-bench-") as tmp:
                out = anyio.run(
                    _phase, Path(tmp) / "evenflow.db", hooks, n, batch, shape, small,
                    backend="asyncio",
                )  # fmt: skip
            events = out["events"]
            for k in keys:
                got[kind][k].append(out[k])
    med = {kind: {k: _median(v) for k, v in d.items()} for kind, d in got.items()}
    return {
        "benchmark": "projector",
        "steps": n + 2,
        "shape": shape,
        "events": events,
        "batch": batch,
        "rounds": rounds,
        "bare": med["bare"],
        "projector": med["projector"],
        "projector_adds": {
            k: _minus(med["projector"][k], med["bare"][k])
            for k in ("created_ms", "per_event_us", "small_median_us")
        },
        "per_round_per_event_us": {
            kind: [_median([x]) for x in d["per_event_us"]] for kind, d in got.items()
        },
        "peak_rss_mb": peak_rss_mb(),
        "environment": environment(),
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0] if __doc__ else "projector benchmark")
    p.add_argument("--steps", type=int, default=10_000, help="independent steps (W2's N)")
    p.add_argument("--batch", type=int, default=256, help="events per append call")
    p.add_argument("--shape", choices=("run", "cached"), default="run")
    p.add_argument("--small-appends", type=int, default=1_000, help="4-event appends, one by one")
    p.add_argument("--rounds", type=int, default=3, help="repeat and report medians")
    args = p.parse_args()
    result = run(args.steps, args.batch, args.shape, args.small_appends, args.rounds)
    emit(result, as_json=args.json)


if __name__ == "__main__":
    main()
