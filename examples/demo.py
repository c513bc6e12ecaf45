"""The demo: a fan-out / join pipeline over synthetic sensor readings.

One source step, six analysis steps that run side by side (a mix of sync steps, which run in
worker threads, and async steps, which run on the event loop; each takes 0.3-0.8 s), a join,
and a report. Run it live with the CLI, then look at what the event log recorded:

    evenflow run examples/demo.py:demo_pipeline -p size=500
    evenflow runs show latest

or as a plain script: ``python examples/demo.py``.
"""

from __future__ import annotations

import random
import statistics
import time
from typing import Annotated, Any

import anyio

from engine import pipeline, step


@step
def read_sensor(size: int, seed: int) -> list[float]:
    """Synthetic readings: a slow upward drift, noise, and a few spikes."""
    rng = random.Random(seed)
    readings = [20.0 + 0.01 * i + rng.gauss(0, 0.5) for i in range(size)]
    for i in rng.sample(range(size), k=max(1, size // 100)):
        readings[i] += rng.choice([-1, 1]) * rng.uniform(5, 10)
    return readings


@step
def remove_spikes(readings: list[float]) -> list[float]:
    time.sleep(0.5)
    mean, spread = statistics.fmean(readings), statistics.pstdev(readings)
    return [r for r in readings if abs(r - mean) <= 3 * spread]


@step
async def describe(readings: list[float]) -> dict[str, float]:
    await anyio.sleep(0.3)
    return {
        "mean": statistics.fmean(readings),
        "median": statistics.median(readings),
        "min": min(readings),
        "max": max(readings),
    }


@step
def smooth(readings: list[float], window: int = 5) -> list[float]:
    time.sleep(0.6)
    return [
        statistics.fmean(readings[max(0, i - window + 1) : i + 1]) for i in range(len(readings))
    ]


@step
async def find_anomalies(readings: list[float]) -> list[int]:
    await anyio.sleep(0.8)
    # A reading far from the median of its neighbours (the drift moves the global median).
    return [
        i
        for i, r in enumerate(readings)
        if abs(r - statistics.median(readings[max(0, i - 10) : i + 11])) > 4
    ]


@step
def histogram(readings: list[float], buckets: int = 5) -> dict[str, int]:
    time.sleep(0.4)
    low, high = min(readings), max(readings)
    width = (high - low) / buckets or 1.0
    counts = [0] * buckets
    for r in readings:
        counts[min(int((r - low) / width), buckets - 1)] += 1
    return {f"{low + i * width:.1f}..{low + (i + 1) * width:.1f}": n for i, n in enumerate(counts)}


@step
async def trend(readings: list[float]) -> float:
    await anyio.sleep(0.7)
    slope, _ = statistics.linear_regression(range(len(readings)), readings)
    return slope


@step
def combine(
    clean: list[float],
    stats: dict[str, float],
    smoothed: list[float],
    anomalies: list[int],
    buckets: dict[str, int],
    slope: float,
) -> dict[str, Any]:
    return {
        "readings": len(smoothed),
        "kept_after_spike_removal": len(clean),
        "anomalies": len(anomalies),
        "stats": stats,
        "busiest_bucket": max(buckets, key=lambda k: buckets[k]),
        "trend_per_1000": slope * 1000,
    }


@step
def report(summary: dict[str, Any]) -> Annotated[str, "report"]:
    stats = summary["stats"]
    return (
        f"{summary['readings']} readings, mean {stats['mean']:.2f} "
        f"(min {stats['min']:.2f}, max {stats['max']:.2f}); "
        f"{summary['anomalies']} anomalies, {summary['kept_after_spike_removal']} kept after "
        f"spike removal; most readings in {summary['busiest_bucket']}; "
        f"trend {summary['trend_per_1000']:+.2f} per 1000 readings"
    )


@pipeline
def demo_pipeline(size: int = 1000, seed: int = 7) -> Annotated[str, "report"]:
    """Fan out six analyses of one sensor series, join them, and write a report."""
    readings = read_sensor(size=size, seed=seed)
    summary = combine(
        clean=remove_spikes(readings),
        stats=describe(readings),
        smoothed=smooth(readings),
        anomalies=find_anomalies(readings),
        buckets=histogram(readings),
        slope=trend(readings),
    )
    return report(summary)


def main() -> None:
    started = time.perf_counter()
    run = demo_pipeline()
    wall = time.perf_counter() - started
    busy = sum(s.duration or 0.0 for s in run.steps.values())
    print(f"run {run.name}: {run.status.value}, {len(run.steps)} steps")
    print(f"  {busy:.2f} s of step time in {wall:.2f} s of wall time (steps ran concurrently)")
    print(f"  report: {run.steps['report'].output.load()}")
    print("  see it again: evenflow runs show latest")


if __name__ == "__main__":
    main()
