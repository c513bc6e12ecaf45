"""Peers side by side: ``python -m benchmarks.peers [--quick] [--json FILE] [--chain N --fan N]``.

Runs W1 (a chain of 1,000 no-op steps), W2 (a source, 1,000 independent no-op steps, a join),
W3 (twenty 0.5 s sleeps, sync and async, + join) and W4 (W1 fully cached) on evenflow, Prefect 3
and Dagster, one after the other in the same invocation, each engine in its own process and its
own virtual environment (``make bench-peers`` creates ``.venv-prefect`` and ``.venv-dagster``;
``--prefect-python`` / ``--dagster-python`` point elsewhere), and the time ``import <engine>``
takes in each. A peer that is not installed or fails is reported in one line; the rest go on.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .._suite import ROOT, machine
from ..startup import import_seconds

WORKLOADS = ("W1", "W2", "W3_sync", "W3_async", "W4")
ENGINES = {  # engine -> (runner module, module to import-time, default python)
    "evenflow": ("benchmarks.peers.evenflow_w", "engine", Path(sys.executable)),
    "prefect": ("benchmarks.peers.prefect_w", "prefect", ROOT / ".venv-prefect/bin/python"),
    "dagster": ("benchmarks.peers.dagster_w", "dagster", ROOT / ".venv-dagster/bin/python"),
}
REFERENCE = (
    "reference, 2-core machine (issue 8): per no-op step on a 1,000-step chain DBOS 3.4 ~2.6 ms,"
    " Prefect 3.9 5-11 ms, Dagster 1.13 ~38 ms, ZenML 0.98 ~87 ms; twenty 0.5 s sleeps Dagster"
    " in-process 10.8 s, ZenML local 13.3 s; import prefect ~1 s, import zenml ~1.9 s"
)


def run_engine(name: str, python: Path, args: list[str], timeout: float) -> dict[str, Any]:
    """One engine's runner in ``python``: its JSON result, or ``{"error": reason}``."""
    module, importable, _ = ENGINES[name]
    if not python.exists():
        return {"error": f"not installed ({python} missing; run `make bench-peers`)"}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("EVENFLOW_HOME", None)
    start = time.perf_counter()
    try:
        done = subprocess.run(
            [str(python), "-m", module, *args],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines or not lines[-1].startswith("{"):
        reason = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return {"error": f"failed: {reason[:300]}"}
    result: dict[str, Any] = json.loads(lines[-1])
    result["process_s"] = round(time.perf_counter() - start, 1)
    try:
        result["import_ms"] = round(
            sorted(import_seconds(importable, str(python)) for _ in range(3))[1] * 1e3, 1
        )
    except SystemExit as exc:
        result["import_ms_error"] = str(exc)[:200]
    return result


def _cell(entry: dict[str, Any] | None, key: str) -> str:
    if entry is None:
        return "-"
    if "error" in entry:
        return "n/a"
    if key == "wall":
        return f"{entry['wall_s']:.2f} s"
    us = entry["per_step_us"]
    return f"{us / 1e3:.2f} ms" if us >= 1000 else f"{us:.0f} µs"


def table(result: dict[str, Any]) -> str:
    """Per-step time (W1, W2, W4) and wall time (W3) of each engine, side by side."""
    engines = result["engines"]
    names = list(engines)
    head = ["workload", *names]
    rows = []
    for w in WORKLOADS:
        key = "wall" if w.startswith("W3") else "step"
        label = f"{w} ({'wall' if key == 'wall' else 'per step'})"
        rows.append([label, *(_cell(engines[e].get("workloads", {}).get(w), key) for e in names)])
    rows.append(["import (ms)", *(str(engines[e].get("import_ms", "-")) for e in names)])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in
                       enumerate(zip(r, widths, strict=True))) for r in [head, *rows]]  # fmt: skip
    lines.insert(1, "-" * len(lines[0]))
    for name, entry in engines.items():
        if "error" in entry:
            lines.append(f"{name}: {entry['error']}")
        else:
            for w, got in entry["workloads"].items():
                if "error" in got:
                    lines.append(f"{name} {w}: {got['error']}")
            notes = "; ".join(f"{k}: {v}" for k, v in entry.get("notes", {}).items())
            lines.append(f"{name} {entry['version']}: {notes}")
    env = result["environment"]
    lines.append(
        f"sizes: chain {result['chain']}, fan {result['fan']}; {env['date']}; {env['machine']}, "
        f"{env['cpus']} cores; Python {env['python']}"
    )
    lines.append(REFERENCE)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.peers", description=__doc__)
    p.add_argument("--quick", action="store_true", help="50-step chain and fan-out")
    p.add_argument("--chain", type=int, default=1000)
    p.add_argument("--fan", type=int, default=1000)
    p.add_argument("--json", metavar="FILE", type=Path)
    p.add_argument("--only", default="", help="engines, e.g. evenflow,prefect")
    p.add_argument("--prefect-python", type=Path, default=ENGINES["prefect"][2])
    p.add_argument("--dagster-python", type=Path, default=ENGINES["dagster"][2])
    args = p.parse_args(argv)
    chain, fan = (50, 50) if args.quick else (args.chain, args.fan)
    pythons = {
        "evenflow": ENGINES["evenflow"][2],
        "prefect": args.prefect_python,
        "dagster": args.dagster_python,
    }
    only = {e for e in args.only.split(",") if e} or set(ENGINES)
    result: dict[str, Any] = {
        "chain": chain, "fan": fan, "environment": machine(), "engines": {},
    }  # fmt: skip
    for name in ENGINES:
        if name not in only:
            continue
        print(f"  {name} ...", file=sys.stderr, flush=True)
        result["engines"][name] = run_engine(
            name, pythons[name], [str(chain), str(fan)], timeout=1800
        )
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
