"""Engine overhead on no-op steps, against the plain-sqlite3 floor measured in the same run.

    python -m benchmarks.overhead [--json] [--quick] [--only W1,W2] [--durability full]

W1: a chain of 1,000 no-op steps. W2: one source, 10,000 independent no-op steps, one join.
Each runs with async and with sync steps. W3: twenty steps sleeping 0.5 s and a join (sync and
async): the wall time should stay close to 0.5 s. W4: W1 (async) again, fully cached. W5: a
dynamic pipeline mapping 10,000 no-op async steps, then a reduce. Every workload checks its
result before it reports.
The floor replays the very rows the engine wrote into a fresh database with a plain ``sqlite3``
loop, one transaction per step (what a minimal engine logging the same events would pay).
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import structlog

from benchmarks._common import (
    emit,
    environ,
    environment,
    parser,
    peak_rss_mb,
    plain_insert_rate,
    read_rows,
    stopwatch,
)

W3_STEPS = 20
W3_SLEEP_S = 0.5
NAMES = (
    "W1_async", "W1_sync", "W2_async", "W2_sync", "W3_sync", "W3_async", "W4_cached", "W5_dynamic",
)  # fmt: skip


@dataclass(frozen=True)
class Sizes:
    """How big each workload is: the chain (W1, W4), the fan-out (W2, W5) and W3's sleep."""

    chain: int = 1000
    fan: int = 10_000
    sleep_s: float = W3_SLEEP_S

    @classmethod
    def of(cls, quick: bool) -> Sizes:
        return cls(50, 200, W3_SLEEP_S) if quick else cls()


@dataclass(frozen=True)
class Spec:
    """A pipeline to run, how many steps it must finish, and ``(join step, expected output)``."""

    pipeline: Any
    steps: int
    check: tuple[str, int] | None


def quiet() -> None:
    """Keep the engine's info logs out of the timings."""
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def pipelines(sizes: Sizes) -> dict[str, Spec]:
    """Every workload's pipeline, built fresh (step names are what the cache keys on).

    Every no-op step gets distinct inputs (a chain adds one per step; a fan-out passes each step
    its index), so with the default caching each one is a cache miss that really executes: a
    step whose inputs equal an earlier step's would be a cache hit, which W4 measures."""
    from engine import pipeline, step

    n_chain, n_fan, nap = sizes.chain, sizes.fan, sizes.sleep_s

    @step
    async def a_source() -> int:
        return 1

    @step
    async def a_noop(x: int, i: int = 1) -> int:
        return x + i

    @step
    async def a_join(xs: list[int]) -> int:
        return len(xs)

    @step
    def s_source() -> int:
        return 1

    @step
    def s_noop(x: int, i: int = 1) -> int:
        return x + i

    @step
    def s_join(xs: list[int]) -> int:
        return len(xs)

    @step(enable_cache=False)
    def s_sleep(i: int) -> int:
        time.sleep(nap)
        return i

    @step(enable_cache=False)
    async def a_sleep(i: int) -> int:
        await anyio.sleep(nap)
        return i

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
            join([noop(s, i=i) for i in range(n_fan)])

        return w2

    def sleepers(sleep: Any, join: Any) -> Any:
        @pipeline(name=f"w3_{sleep.name}", enable_cache=False)
        def w3() -> None:
            join([sleep(i) for i in range(W3_STEPS)])

        return w3

    @pipeline(name="w5_dynamic", dynamic=True)
    def w5() -> None:
        a_join(a_noop.map(range(n_fan)))

    def last(noop: str) -> str:  # the id of the chain's last step (``a_noop_999``)
        return f"{noop}_{n_chain - 1}" if n_chain > 2 else noop

    w1_async = Spec(chain(a_source, a_noop), n_chain, (last("a_noop"), n_chain))
    return {
        "W1_async": w1_async,
        "W1_sync": Spec(chain(s_source, s_noop), n_chain, (last("s_noop"), n_chain)),
        "W2_async": Spec(fan(a_source, a_noop, a_join), n_fan + 2, ("a_join", n_fan)),
        "W2_sync": Spec(fan(s_source, s_noop, s_join), n_fan + 2, ("s_join", n_fan)),
        "W3_sync": Spec(sleepers(s_sleep, s_join), W3_STEPS + 1, ("s_join", W3_STEPS)),
        "W3_async": Spec(sleepers(a_sleep, a_join), W3_STEPS + 1, ("a_join", W3_STEPS)),
        "W4_cached": w1_async,
        "W5_dynamic": Spec(w5, n_fan + 1, ("a_join", n_fan)),
    }


def floor_per_step(
    db: Path, run_id: str, steps: int, scratch: Path, *, synchronous: str = "NORMAL"
) -> float:
    """Seconds per step for a plain sqlite3 loop writing this run's rows, one commit per step."""
    from events import decode

    per_step: dict[str, list[Any]] = defaultdict(list)
    for row in read_rows(db):
        if row[1] == run_id:
            per_step[getattr(decode(row[5]), "step", None) or ""].append(row)
    groups = list(per_step.values())
    rows = sum(len(group) for group in groups)
    rate = plain_insert_rate(scratch, groups, synchronous=synchronous)  # rows per second
    return rows / rate / steps


def check_run(name: str, spec: Spec, run: Any, *, cached: bool = False) -> None:
    """Raise ``SystemExit`` unless ``run`` completed every step with the expected result."""
    from engine import ExecutionStatus

    if run.status is not ExecutionStatus.COMPLETED:
        raise SystemExit(f"{name}: run ended {run.status}")
    if len(run.steps) != spec.steps:
        raise SystemExit(f"{name}: expected {spec.steps} steps, got {len(run.steps)}")
    if cached and any(s.status is not ExecutionStatus.CACHED for s in run.steps.values()):
        raise SystemExit(f"{name}: expected every step cached")
    if not cached and any(s.status is ExecutionStatus.CACHED for s in run.steps.values()):
        raise SystemExit(f"{name}: expected every step to execute, some were cache hits")
    if spec.check is not None:
        join, expected = spec.check
        value = run.steps[join].output.load()
        if value != expected:
            raise SystemExit(f"{name}: join returned {value}, expected {expected}")


def run_workload(
    name: str, spec: Spec, home: Path, *, durability: str = "normal", sleep_s: float = 0.0
) -> dict[str, Any]:
    """Run one workload in ``home`` (``$EVENFLOW_HOME`` must point there), check it, and
    measure the floor on the rows it wrote. ``sleep_s`` is what each step sleeps (W3)."""
    cached = name == "W4_cached"
    if cached:
        spec.pipeline()  # fill the cache; the timed run below reuses every step
    with stopwatch() as sw:
        run = spec.pipeline()
    check_run(name, spec, run, cached=cached)
    events = len(read_rows(home / "evenflow.db"))
    result: dict[str, Any] = {"steps": spec.steps, "wall_s": round(sw.seconds, 4)}
    if sleep_s:  # W3: what the engine adds to one wave of sleeps
        overhead = sw.seconds - sleep_s
        result["over_sleep_s"] = round(overhead, 4)
        result["per_step_us"] = round(overhead / spec.steps * 1e6, 1)
    else:
        floor = floor_per_step(
            home / "evenflow.db", run.id, spec.steps, home / f"floor-{name}.db",
            synchronous=durability.upper(),
        )  # fmt: skip
        per_step = sw.seconds / spec.steps
        result["per_step_us"] = round(per_step * 1e6, 1)
        result["floor_per_step_us"] = round(floor * 1e6, 1)
        result["ratio_to_floor"] = round(per_step / floor, 2)
    result["events_in_home"] = events
    return result


def warm_up() -> None:
    """Run a two-step pipeline in a throwaway home, so the modules the engine loads on first
    use (``benchmarks.startup`` times those) are not counted in a workload's wall time."""
    from engine import pipeline, step

    @step(enable_cache=False)
    async def warm(x: int) -> int:
        return x

    @pipeline(name="warm_up", enable_cache=False)
    def warm_pipeline() -> None:
        warm(warm(1))

    with tempfile.TemporaryDirectory(prefix="evenflow-warm-") as tmp, environ(EVENFLOW_HOME=tmp):
        warm_pipeline()


def measure(name: str, quick: bool, *, durability: str = "normal") -> dict[str, Any]:
    """One workload on a fresh temporary home (after a warm-up run in another one): the
    result dict ``run_workload`` returns."""
    quiet()
    warm_up()
    sizes = Sizes.of(quick)
    spec = pipelines(sizes)[name]
    with (
        tempfile.TemporaryDirectory(prefix="evenflow-bench-") as tmp,
        environ(EVENFLOW_HOME=tmp, EVENFLOW_DURABILITY=durability),
    ):
        sleep_s = sizes.sleep_s if name.startswith("W3") else 0.0
        return run_workload(name, spec, Path(tmp), durability=durability, sleep_s=sleep_s)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = parser(__doc__ or "")
    p.add_argument("--quick", action="store_true", help="small sizes (smoke test)")
    p.add_argument("--only", default="", help="comma-separated workloads, e.g. W1_async,W2_sync")
    p.add_argument("--durability", choices=("normal", "full"), default="normal")
    args = p.parse_args(argv)
    only = {w for w in args.only.split(",") if w}
    results: dict[str, Any] = {"environment": environment(), "workloads": {}}
    for name in NAMES:
        if only and name not in only and name.split("_")[0] not in only:
            continue
        results["workloads"][name] = measure(name, args.quick, durability=args.durability)
    w2 = results["workloads"].get("W2_async")
    w5 = results["workloads"].get("W5_dynamic")
    if w2 and w5:
        results["W5_over_W2"] = round(w5["per_step_us"] / w2["per_step_us"], 2)
    results["durability"] = args.durability
    results["peak_rss_mb"] = peak_rss_mb()
    emit(results, as_json=args.json)
    return results


if __name__ == "__main__":
    main()
