"""Run the suite: each workload in its own worker process, then one table and one JSON object.

A fresh process per workload keeps one workload's memory (and warm caches) out of the next
one's figures: the peak RSS a row reports is its worker's own ``ru_maxrss``. A workload that
fails (a wrong result, a crash, a timeout) is reported in one line and the suite goes on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ._common import environment, peak_rss_mb
from ._workloads import WORKLOADS, Workload, cross_checks

ROOT = Path(__file__).resolve().parent.parent
"""The directory holding the ``benchmarks`` package: workers run from here."""


def worker(name: str, quick: bool) -> None:
    """Run one workload in this process and print its record as one JSON line (the worker)."""
    by_name = {w.name: w for w in WORKLOADS}
    record = by_name[name].run(quick)
    if record.peak_rss_mb is None:
        record.peak_rss_mb = peak_rss_mb()
    sys.stdout.flush()
    print("\n" + json.dumps(dataclasses.asdict(record)), flush=True)


def run_one(
    workload: Workload, quick: bool, timeout: float, *, root: Path = ROOT
) -> dict[str, Any]:
    """Run ``workload`` in a worker process with the code under ``root`` (this checkout by
    default); its record, or ``{"error": reason}``."""
    command = [sys.executable, "-m", "benchmarks", "--worker", workload.name]
    if quick:
        command.append("--quick")
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("EVENFLOW_HOME", None)  # each workload makes its own temporary home
    start = time.perf_counter()
    try:
        done = subprocess.run(
            command, cwd=root, env=env, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    elapsed = round(time.perf_counter() - start, 2)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return {"error": reason[:300], "process_s": elapsed}
    record: dict[str, Any] = json.loads(lines[-1])
    record["process_s"] = elapsed
    return record


def machine() -> dict[str, Any]:
    """Where and when: the environment, the kernel's machine name and the date."""
    return {
        **environment(),
        "system": f"{platform.system()} {platform.release()}",
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def run_suite(workloads: list[Workload], quick: bool, *, progress: bool = True) -> dict[str, Any]:
    """Run ``workloads`` one after the other; the whole result (what ``--json`` writes)."""
    timeout = 180.0 if quick else 1200.0
    records: dict[str, dict[str, Any]] = {}
    for workload in workloads:
        if progress:
            print(f"  {workload.name:<11} {workload.about} ...", file=sys.stderr, flush=True)
        records[workload.name] = {"about": workload.about, **run_one(workload, quick, timeout)}
    cross_checks(records)
    targets = [ok for rec in records.values() for ok in rec.get("targets", {}).values()]
    return {
        "suite": "evenflow",
        "quick": quick,
        "durability": "normal (W2_full: full)",
        "environment": machine(),
        "workloads": records,
        "failed": [name for name, rec in records.items() if "error" in rec],
        "targets_met": f"{sum(targets)}/{len(targets)}",
    }


def _num(value: float | None, fmt: str, unit: str = "") -> str:
    return "-" if value is None else f"{value:{fmt}}{unit}"


def table(result: dict[str, Any]) -> str:
    """The suite's result as a fixed-width text table, one row per workload."""
    head = ("workload", "size", "wall", "per step", "floor", "ratio", "peak RSS", "targets")
    rows: list[tuple[str, ...]] = []
    for name, rec in result["workloads"].items():
        if "error" in rec:
            rows.append((name, "FAILED", rec["error"], "", "", "", "", ""))
            continue
        unit = {"step": " µs/step", "event": " µs/ev"}.get(rec["unit"], "")
        targets = "  ".join(
            f"{'PASS' if ok else 'FAIL'} {label}" for label, ok in rec["targets"].items()
        )
        rows.append(
            (
                name,
                rec["size"],
                _num(rec["wall_s"], ".3f", " s"),
                _num(rec["per_unit"], ",.1f", unit),
                _num(rec["floor"], ",.1f", unit),
                _num(rec["ratio"], ".2f", "x"),
                _num(rec["peak_rss_mb"], ".0f", " MB"),
                targets or "-",
            )
        )
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    lines = []
    for r in [head, *rows]:
        cells = [
            c.ljust(w) if i < 2 else c.rjust(w)
            for i, (c, w) in enumerate(zip(r[:-1], widths, strict=True))
        ]
        lines.append("  ".join([*cells, r[-1]]).rstrip())
    lines.insert(1, "-" * max(len(x) for x in lines))
    env = result["environment"]
    lines.append("")
    lines.append(
        f"{env['date']}; {env['machine']}, {env['cpus']} cores, {env['system']}; Python "
        f"{env['python']}, SQLite {env['sqlite']}; quick={result['quick']}; targets met "
        f"{result['targets_met']}; failed: {', '.join(result['failed']) or 'none'}"
    )
    return "\n".join(lines)
