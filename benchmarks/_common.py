"""Helpers shared by the benchmarks: the plain-sqlite3 floor, timing, peak RSS and output.

Every benchmark is a runnable module (``python -m benchmarks.<name> [--json]``) that prints either
one JSON object (``--json``) or a readable summary built from the same dict.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import sqlite3
import statistics
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from events import _schema

Row = tuple[int, str, int, str, float, bytes, bytes]

_INSERT = (
    "INSERT INTO events (seq, stream, version, type, recorded_at, payload, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--json`` flag every benchmark takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    return p


@dataclass
class Stopwatch:
    """Wall-clock seconds of a ``with`` block (``perf_counter``)."""

    seconds: float = 0.0


@contextmanager
def stopwatch() -> Iterator[Stopwatch]:
    """Time a block: ``with stopwatch() as t: ...`` then read ``t.seconds``."""
    sw = Stopwatch()
    start = time.perf_counter()
    try:
        yield sw
    finally:
        sw.seconds = time.perf_counter() - start


@contextmanager
def environ(**values: str) -> Iterator[None]:
    """Set environment variables for a block, then restore what was there."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0-100) of ``samples``, nearest-rank."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    rank = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[rank]


def latency_summary_ms(samples_s: Sequence[float]) -> dict[str, float]:
    """Median, p99 and max of latencies given in seconds, reported in milliseconds."""
    return {
        "median_ms": round(statistics.median(samples_s) * 1000, 4),
        "p99_ms": round(percentile(samples_s, 99) * 1000, 4),
        "max_ms": round(max(samples_s) * 1000, 4),
    }


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MiB (Linux reports KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # macOS reports bytes
    return round(peak / scale, 1)


def environment() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "machine": platform.machine(),
        "cpus": _cpu_count(),
    }


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def plain_insert_rate(
    path: Path, batches: Sequence[Sequence[Row]], *, synchronous: str = "NORMAL"
) -> float:
    """The floor: a plain ``sqlite3`` loop inserting ``batches`` into a fresh database with the
    store's schema (WAL, ``synchronous``), one transaction (one ``executemany``) per batch.
    Returns rows per second.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {synchronous}")
        conn.execute("BEGIN IMMEDIATE")
        _schema.initialise_in_tx(conn)
        conn.execute("COMMIT")
        total = 0
        with stopwatch() as sw:
            for batch in batches:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(_INSERT, batch)
                conn.execute("COMMIT")
                total += len(batch)
        return total / sw.seconds
    finally:
        conn.close()


def read_rows(path: Path) -> list[Row]:
    """Every row of an evenflow database, in seq order, as plain tuples."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(
            "SELECT seq, stream, version, type, recorded_at, payload, hash FROM events ORDER BY seq"
        ).fetchall()
    finally:
        conn.close()


def emit(result: dict[str, Any], *, as_json: bool) -> None:
    """Print ``result`` as one JSON object, or as an indented ``key: value`` summary."""
    if as_json:
        print(json.dumps(result, sort_keys=False))
        return
    _print_tree(result, 0)


def _print_tree(obj: dict[str, Any], depth: int) -> None:
    pad = "  " * depth
    for key, value in obj.items():
        if isinstance(value, dict):
            print(f"{pad}{key}:")
            _print_tree(value, depth + 1)
        elif isinstance(value, float):
            print(f"{pad}{key}: {value:,.4g}" if abs(value) < 1000 else f"{pad}{key}: {value:,.0f}")
        else:
            print(f"{pad}{key}: {value}")
