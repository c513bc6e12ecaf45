"""Engine overhead on no-op steps, against the plain-sqlite3 floor measured in the same run.

    python -m benchmarks.overhead [--json] [--quick] [--only W1,W2]

W1: a chain of 1,000 no-op steps. W2: one source, 10,000 independent no-op steps, one join.
Each runs with async and with sync steps. W4: W1 (async) again, fully cached. W5: a dynamic
pipeline mapping 10,000 no-op async steps, then a reduce. Every workload checks its result
before it reports.
The floor replays the very rows the engine wrote into a fresh database with a plain ``sqlite3``
loop, one transaction per step (what a minimal engine logging the same events would pay).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections import defaultdict
from pathlib import Path
from typing import Any

import structlog

from benchmarks._common import emit, environment, parser, peak_rss_mb, read_rows, stopwatch

_INSERT = (
    "INSERT INTO events (seq, stream, version, type, recorded_at, payload, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def _quiet() -> None:
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def _pipelines(n_chain: int, n_fan: int) -> dict[str, Any]:
    from engine import pipeline, step

    @step
    async def a_source() -> int:
        return 1

    @step
    async def a_noop(x: int) -> int:
        return x

    @step
    async def a_join(xs: list[int]) -> int:
        return len(xs)

    @step
    def s_source() -> int:
        return 1

    @step
    def s_noop(x: int) -> int:
        return x

    @step
    def s_join(xs: list[int]) -> int:
        return len(xs)

    def chain(source: Any, noop: Any) -> Any:
        @pipeline(name=f"w1_{noop.name}")
        def w1() -> None:
            x = source()
            for _ in range(n_chain - 1):
                x = noop(x)

        return w1

    def fan(source: Any, noop: Any, join: Any) -> Any:
        @pipeline(name=f"w2_{noop.name}")
        def w2() -> None:
            s = source()
            join([noop(s) for _ in range(n_fan)])

        return w2

    @pipeline(name="w5_dynamic", dynamic=True)
    def w5() -> None:
        a_join(a_noop.map(range(n_fan)))

    return {
        "W5_dynamic": (w5, n_fan + 1, ("a_join", n_fan)),
        "W1_async": (chain(a_source, a_noop), n_chain, None),
        "W1_sync": (chain(s_source, s_noop), n_chain, None),
        "W2_async": (fan(a_source, a_noop, a_join), n_fan + 2, ("a_join", n_fan)),
        "W2_sync": (fan(s_source, s_noop, s_join), n_fan + 2, ("s_join", n_fan)),
    }


def floor_per_step(db: Path, run_id: str, steps: int, scratch: Path) -> float:
    """Seconds per step for a plain sqlite3 loop writing this run's rows, one commit per step."""
    import sqlite3

    from events import _schema

    rows = [r for r in read_rows(db) if r[1] == run_id]
    per_step: dict[str, list[Any]] = defaultdict(list)
    from events import decode

    for row in rows:
        step = getattr(decode(row[5]), "step", None) or ""
        per_step[step].append(row)
    conn = sqlite3.connect(scratch, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = NORMAL")
    conn.execute("BEGIN IMMEDIATE")
    _schema.initialise_in_tx(conn)
    conn.execute("COMMIT")
    with stopwatch() as sw:
        for group in per_step.values():
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(_INSERT, group)
            conn.execute("COMMIT")
    conn.close()
    return sw.seconds / steps


def run_workload(name: str, spec: Any, home: Path, *, cached: bool = False) -> dict[str, Any]:
    from engine import ExecutionStatus

    pipe, steps, check = spec
    if cached:
        pipe()  # fill the cache; the timed run below reuses every step
    with stopwatch() as sw:
        run = pipe()
    if cached and any(s.status is not ExecutionStatus.CACHED for s in run.steps.values()):
        raise SystemExit(f"{name}: expected every step cached")
    if run.status is not ExecutionStatus.COMPLETED:
        raise SystemExit(f"{name}: run ended {run.status}")
    if len(run.steps) != steps:
        raise SystemExit(f"{name}: expected {steps} steps, got {len(run.steps)}")
    if check is not None:
        join, expected = check
        value = run.steps[join].output.load()
        if value != expected:
            raise SystemExit(f"{name}: join returned {value}, expected {expected}")
    events = len(read_rows(home / "evenflow.db"))
    floor = floor_per_step(home / "evenflow.db", run.id, steps, home / f"floor-{name}.db")
    per_step = sw.seconds / steps
    return {
        "steps": steps,
        "wall_s": round(sw.seconds, 4),
        "per_step_us": round(per_step * 1e6, 1),
        "floor_per_step_us": round(floor * 1e6, 1),
        "ratio_to_floor": round(per_step / floor, 2),
        "events_in_home": events,
    }


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or "")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--only", default="", help="comma-separated workloads, e.g. W1_async,W2_sync")
    args = p.parse_args(argv)
    _quiet()
    n_chain, n_fan = (50, 200) if args.quick else (1000, 10_000)
    results: dict[str, Any] = {"environment": environment(), "workloads": {}}
    only = {w for w in args.only.split(",") if w}
    specs = _pipelines(n_chain, n_fan)
    specs["W4_cached"] = specs["W1_async"]
    with tempfile.TemporaryDirectory(prefix="evenflow-bench-") as tmp:
        for name, spec in specs.items():
            if only and name not in only and name.split("_")[0] not in only:
                continue
            home = Path(tmp) / name
            os.environ["EVENFLOW_HOME"] = str(home)
            result = run_workload(name, spec, home, cached=name == "W4_cached")
            results["workloads"][name] = result
        w2 = results["workloads"].get("W2_async")
        w5 = results["workloads"].get("W5_dynamic")
        if w2 and w5:
            results["W5_over_W2"] = round(w5["per_step_us"] / w2["per_step_us"], 2)
    results["peak_rss_mb"] = peak_rss_mb()
    emit(results, as_json=args.json)
    return results


if __name__ == "__main__":
    main()
