"""The suite's workloads (W1-W9, MEM): each one a call into a benchmark module, reduced to one
:class:`Record` with the columns the table prints and the issue's targets as pass/fail checks.

A workload function runs inside its own worker process (``python -m benchmarks --worker NAME``),
checks its result (a wrong result raises ``SystemExit`` with the reason, so no time is reported)
and returns a record; the worker adds the process's peak RSS. Targets that compare workloads
(W5 against W2) or need the peak RSS are checked by :func:`cross_checks` once all have run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

W3_TOLERANCE_S = 0.1
RSS_LIMIT_MB = 300


@dataclass
class Record:
    """One row of the table. ``per_unit`` is in microseconds per ``unit`` ("step", "event");
    ``ratio`` is ``per_unit`` over the plain-sqlite3 floor's (so 1.0 is the floor itself)."""

    size: str
    wall_s: float | None = None
    per_unit: float | None = None
    unit: str = "step"
    floor: float | None = None
    ratio: float | None = None
    targets: dict[str, bool] = field(default_factory=dict)
    detail: dict[str, Any] = field(default_factory=dict)
    peak_rss_mb: float | None = None


def _overhead(name: str, durability: str = "normal") -> Callable[[bool], Record]:
    def run(quick: bool) -> Record:
        from . import overhead

        r = overhead.measure(name, quick, durability=durability)
        rec = Record(
            size=f"{r['steps']:,} steps",
            wall_s=r["wall_s"],
            per_unit=r["per_step_us"],
            floor=r.get("floor_per_step_us"),
            ratio=r.get("ratio_to_floor"),
            detail=r,
        )
        us, wall = r["per_step_us"], r["wall_s"]
        if name == "W1_async":
            rec.targets[f"wall {wall:.3f} s < 0.1 s"] = wall < 0.1
        elif name == "W2_async" and durability == "normal":
            rec.targets[f"{us:.0f} µs/step <= 60"] = us <= 60
            rec.targets[f"{rec.ratio}x floor <= 4x"] = (rec.ratio or 0) <= 4
        elif name == "W2_sync":
            rec.targets[f"{us:.0f} µs/step <= 150"] = us <= 150
        elif name.startswith("W3"):
            sleep = overhead.W3_SLEEP_S
            rec.targets[f"{wall:.3f} s within 0.1 s of {sleep} s"] = (
                abs(wall - sleep) <= W3_TOLERANCE_S
            )
        elif name == "W4_cached":
            rec.targets[f"{us:.0f} µs/cached step <= 40"] = us <= 40
        return rec

    return run


def w6_append(quick: bool) -> Record:
    """Event append throughput against the plain-sqlite3 rate (``benchmarks.append``)."""
    from . import append

    events, rounds, latency = (20_000, 1, 200) if quick else (200_000, 3, 2_000)
    r = append.run(events, 500, 4, latency, "normal", rounds)
    rate, plain = r["store_events_per_s"], r["plain_sqlite_events_per_s"]
    return Record(
        size=f"{r['events']:,} events",
        wall_s=round(r["events"] / rate, 4),
        per_unit=round(1e6 / rate, 2),
        unit="event",
        floor=round(1e6 / plain, 2),
        ratio=round(plain / rate, 2),
        targets={
            f"{rate:,} ev/s >= 150,000": rate >= 150_000,
            f"{r['ratio']:.0%} of floor rate >= 50%": r["ratio"] >= 0.5,
        },
        detail=r,
    )


def w7_tail(quick: bool) -> Record:
    """Cross-process tail latency, commit to receipt (``benchmarks.tail``)."""
    from . import tail

    rate, seconds = (200.0, 1.0) if quick else (1000.0, 5.0)
    r = tail.tail_latency(rate, seconds, watch=True)
    sent = int(rate * seconds)
    if not r["events_sent"] == r["events_received"] == sent:
        raise SystemExit(f"W7: sent {r['events_sent']}, received {r['events_received']} of {sent}")
    p50, p99 = r["from_commit"]["median_ms"], r["from_commit"]["p99_ms"]
    return Record(
        size=f"{sent:,} events",
        wall_s=seconds,
        unit="event",
        targets={f"p50 {p50:.1f} ms < 20": p50 < 20, f"p99 {p99:.1f} ms < 100": p99 < 100},
        detail=r,
    )


def w8_rebuild(quick: bool) -> Record:
    """Projection rebuild rate over a database of 1,000,000 events (``benchmarks.tail``): the
    median of three rebuilds, each of a fresh copy of the same generated database."""
    from . import tail

    n, rounds = (50_000, 1) if quick else (1_000_000, 3)
    r = tail.rebuild_rate(n, rounds)
    runs = max(1, n // tail.EVENTS_PER_RUN)
    if r["runs"] != runs:
        raise SystemExit(f"W8: {r['runs']} runs rebuilt, expected {runs}")
    rate = r["events_per_s"]
    return Record(
        size=f"{r['events']:,} events",
        wall_s=r["seconds"],
        per_unit=round(1e6 / rate, 2),
        unit="event",
        targets={f"{rate:,} ev/s >= 150,000": rate >= 150_000},
        detail=r,
    )


def w9_startup(quick: bool) -> Record:
    """``import engine`` and ``evenflow --help`` (``benchmarks.startup``)."""
    from . import startup

    r = startup.run(3 if quick else 7)
    imp, cli = r["import_engine_ms"], r["cli_help_ms"]
    return Record(
        size=f"{r['repeat']} processes",
        wall_s=round(cli / 1e3, 4),
        unit="",
        targets={
            f"import engine {imp:.0f} ms < 150": imp < 150,
            f"--help {cli:.0f} ms < 300": cli < 300,
        },
        detail=r,
    )


def mem_w2x10(quick: bool) -> Record:
    """W2 ten times in one process against one home (``benchmarks.memory``)."""
    from . import memory

    runs, steps = (3, 200) if quick else (10, 10_000)
    r = memory.run(runs, steps)
    blocks, malloc = r["growth_blocks_per_run"], r["malloc_growth_per_run_mb"]
    return Record(
        size=f"{runs} x {r['steps_per_run']:,} steps",
        wall_s=round(sum(r["wall_per_run_s"]), 3),
        per_unit=r["per_step_us_first_last"][-1],
        targets={
            f"Python blocks {blocks:+.0f}/run, flat": r["met"]["python_blocks_flat"],
            f"malloc {malloc:+.3f} MB/run, flat": r["met"]["malloc_in_use_flat"],
        },
        detail=r,
    )


@dataclass(frozen=True)
class Workload:
    """A named workload of the suite, and what it measures."""

    name: str
    about: str
    run: Callable[[bool], Record]


WORKLOADS: tuple[Workload, ...] = (
    Workload("W1_async", "chain of 1,000 no-op async steps", _overhead("W1_async")),
    Workload("W1_sync", "chain of 1,000 no-op sync steps", _overhead("W1_sync")),
    Workload("W2_async", "source + 10,000 no-op async steps + join", _overhead("W2_async")),
    Workload("W2_sync", "source + 10,000 no-op sync steps + join", _overhead("W2_sync")),
    Workload("W2_full", "W2 async with durability='full'", _overhead("W2_async", "full")),
    Workload("W3_sync", "20 sync steps sleeping 0.5 s + join", _overhead("W3_sync")),
    Workload("W3_async", "20 async steps sleeping 0.5 s + join", _overhead("W3_async")),
    Workload("W4_cached", "W1 async, every step cached", _overhead("W4_cached")),
    Workload("W5_dynamic", "dynamic map of 10,000 async steps + reduce", _overhead("W5_dynamic")),
    Workload("W6_append", "event append throughput, 4 producers", w6_append),
    Workload("W7_tail", "cross-process tail latency", w7_tail),
    Workload("W8_rebuild", "projections rebuild over 1,000,000 events", w8_rebuild),
    Workload("W9_startup", "import engine; evenflow --help", w9_startup),
    Workload("MEM", "W2 async ten times in one process and home", mem_w2x10),
)


def select(only: str) -> list[Workload]:
    """The workloads named in ``only`` ("W1,W2_sync,MEM": a name or its prefix), else all."""
    wanted = {w.strip() for w in only.split(",") if w.strip()}
    chosen = [
        w for w in WORKLOADS if not wanted or w.name in wanted or w.name.split("_")[0] in wanted
    ]
    unknown = wanted - {w.name for w in chosen} - {w.name.split("_")[0] for w in chosen}
    if unknown:
        raise SystemExit(f"unknown workload(s): {', '.join(sorted(unknown))}")
    return chosen


def cross_checks(records: dict[str, dict[str, Any]]) -> None:
    """Add the targets that need the peak RSS or another workload's figure, in place."""
    w2, w5, mem = records.get("W2_async"), records.get("W5_dynamic"), records.get("MEM")
    for rec in (w2, mem):
        if rec and not rec.get("error") and rec.get("peak_rss_mb") is not None:
            rss = rec["peak_rss_mb"]
            rec["targets"][f"peak RSS {rss:.0f} MB < {RSS_LIMIT_MB}"] = rss < RSS_LIMIT_MB
    if w2 and w5 and not w2.get("error") and not w5.get("error"):
        times = w5["per_unit"] / w2["per_unit"]
        w5["targets"][f"{times:.2f}x W2 per step <= 2x"] = times <= 2
