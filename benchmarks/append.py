"""Append throughput and latency of the event store, against a plain ``sqlite3`` floor.

    python -m benchmarks.append [--json] [--events N] [--batch B] [--producers P]

1. ``P`` concurrent producers append ``N`` small events (``StepReady``) in ``append`` calls of
   ``B`` events each, every producer to its own stream: the store's rate, in events per second.
2. The same rows (payload and hash bytes read back from the store's file) are inserted by a plain
   ``sqlite3`` loop into a fresh database with the same schema (WAL, synchronous=NORMAL, or FULL
   with ``--durability full``; one ``executemany`` transaction per batch of ``B``): the floor.
   ``ratio`` is store rate / plain rate.
3. ``--latency-appends`` sequential ``await append()`` calls of one event each: median and p99.

Each of ``--rounds`` rounds runs 1-3 on fresh files; rates and ratio are medians over rounds (this
machine's speed drifts by tens of percent from minute to minute).
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from events import EventStore, StepReady

from ._common import (
    emit,
    environment,
    latency_summary_ms,
    parser,
    peak_rss_mb,
    plain_insert_rate,
    read_rows,
    stopwatch,
)


async def _store_phase(
    path: Path, events: int, batch: int, producers: int, latency_appends: int, durability: str
) -> tuple[float, list[float]]:
    per_producer = events // producers
    work = [
        [StepReady(step=f"step-{p}-{i}") for i in range(per_producer)] for p in range(producers)
    ]

    async with EventStore.open(path, durability=durability) as store:  # type: ignore[arg-type]

        async def produce(p: int) -> None:
            mine = work[p]
            for start in range(0, len(mine), batch):
                await store.append(f"bench-{p}", mine[start : start + batch])

        with stopwatch() as sw:
            async with anyio.create_task_group() as tg:
                for p in range(producers):
                    tg.start_soon(produce, p)
        rate = per_producer * producers / sw.seconds

        one = [StepReady(step="latency")]
        for _ in range(50):  # warm up
            await store.append("latency-warmup", one)
        samples = []
        for _ in range(latency_appends):
            start = time.perf_counter()
            await store.append("latency", one)
            samples.append(time.perf_counter() - start)
    return rate, samples


def run(
    events: int,
    batch: int,
    producers: int,
    latency_appends: int,
    durability: str,
    rounds: int,
) -> dict[str, Any]:
    """Run the benchmark ``rounds`` times in a temporary directory; return the result dict.

    Each round measures the store, then the plain loop on that round's rows, so a slow spell of
    the machine hits both; the figures are the medians over the rounds.
    """
    store_rates: list[float] = []
    plain_rates: list[float] = []
    ratios: list[float] = []
    samples: list[float] = []
    n_rows = 0
    for r in range(rounds):
        with tempfile.TemporaryDirectory(prefix="evenflow-bench-") as tmp:
            store_db = Path(tmp) / "store.db"
            store_rate, round_samples = anyio.run(
                _store_phase,
                store_db,
                events,
                batch,
                producers,
                latency_appends,
                durability,
                backend="asyncio",
            )
            rows = read_rows(store_db)
            expected = (events // producers) * producers + 50 + latency_appends
            if len(rows) != expected:  # every append landed, the warm-up and latency ones too
                raise SystemExit(f"append: {len(rows)} events in the store, expected {expected}")
            rows = rows[: (events // producers) * producers]
            batches = [rows[i : i + batch] for i in range(0, len(rows), batch)]
            plain_rate = plain_insert_rate(
                Path(tmp) / f"plain-{r}.db", batches, synchronous=durability.upper()
            )
        n_rows = len(rows)
        store_rates.append(store_rate)
        plain_rates.append(plain_rate)
        ratios.append(store_rate / plain_rate)
        samples.extend(round_samples)
    return {
        "benchmark": "append",
        "events": n_rows,
        "batch": batch,
        "producers": producers,
        "durability": durability,
        "rounds": rounds,
        "store_events_per_s": round(statistics.median(store_rates)),
        "plain_sqlite_events_per_s": round(statistics.median(plain_rates)),
        "ratio": round(statistics.median(ratios), 3),
        "per_round": {
            "store_events_per_s": [round(x) for x in store_rates],
            "plain_sqlite_events_per_s": [round(x) for x in plain_rates],
        },
        "single_append": {"appends": len(samples), **latency_summary_ms(samples)},
        "peak_rss_mb": peak_rss_mb(),
        "environment": environment(),
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0] if __doc__ else "append benchmark")
    p.add_argument("--events", type=int, default=200_000)
    p.add_argument("--batch", type=int, default=500, help="events per append call")
    p.add_argument("--producers", type=int, default=4, help="concurrent appending tasks")
    p.add_argument("--latency-appends", type=int, default=2_000)
    p.add_argument("--durability", choices=("normal", "full"), default="normal")
    p.add_argument("--rounds", type=int, default=3, help="repeat and report medians")
    args = p.parse_args()
    result = run(
        args.events,
        args.batch,
        args.producers,
        args.latency_appends,
        args.durability,
        args.rounds,
    )
    emit(result, as_json=args.json)


if __name__ == "__main__":
    main()
