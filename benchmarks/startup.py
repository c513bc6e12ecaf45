"""Start-up time: ``import engine`` and the CLI's ``evenflow --help`` (W9).

    python -m benchmarks.startup [--json] [--repeat N]

Each figure is the median over ``N`` fresh interpreters. ``import engine`` (and, for reference,
``from engine import pipeline, step``, which loads the modules a pipeline needs) is timed inside
the child around the import statement alone; ``evenflow --help`` is the wall time of the whole
process (interpreter start included, as a user waits for it), next to the wall time of a bare
``python -c pass`` for reference. Targets: ``import engine`` < 150 ms, ``evenflow --help``
< 300 ms.
"""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ._common import emit, environment, parser

TARGETS = {"import_engine_ms": 150, "cli_help_ms": 300}
_TIME_IMPORT = (
    "import time; t = time.perf_counter(); {statement}; "
    "print(time.perf_counter() - t, {check}.__name__)"
)


def import_seconds(
    module: str, python: str = sys.executable, *, names: tuple[str, ...] = ()
) -> float:
    """Seconds ``import module`` (or ``from module import names``) takes in a fresh
    ``python``; checks that what was imported is there."""
    if names:
        statement, check = f"from {module} import {', '.join(names)}", names[0]
    else:
        statement, check = f"import {module}", module
    done = subprocess.run(
        [python, "-c", _TIME_IMPORT.format(statement=statement, check=check)],
        capture_output=True,
        text=True,
    )
    out = done.stdout.split()
    if done.returncode != 0 or len(out) != 2 or out[1] not in (module, check):
        raise SystemExit(f"{statement}: exit {done.returncode}, {out!r} {done.stderr[-400:]!r}")
    return float(out[0])


def process_seconds(command: list[str], expect: str) -> float:
    """Wall seconds of ``command`` from spawn to exit; checks it succeeds and prints ``expect``."""
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode != 0 or expect not in done.stdout:
        raise SystemExit(
            f"{' '.join(command)}: exit {done.returncode}, output {done.stdout[:200]!r}"
            f" {done.stderr[-400:]!r}"
        )
    return seconds


def cli_path() -> str:
    """The ``evenflow`` script installed beside this interpreter (else on ``PATH``)."""
    here = Path(sys.executable).with_name("evenflow")
    found = str(here) if here.exists() else shutil.which("evenflow")
    if found is None:
        raise SystemExit("evenflow: the console script is not installed (pip install -e .)")
    return found


def run(repeat: int) -> dict[str, Any]:
    """Median timings over ``repeat`` fresh processes each (one discarded warm-up first)."""
    cli = cli_path()
    import_seconds("engine")  # warm the OS page cache and the .pyc files
    imports = [import_seconds("engine") for _ in range(repeat)]
    api = [import_seconds("engine", names=("pipeline", "step")) for _ in range(repeat)]
    helps = [process_seconds([cli, "--help"], "Usage") for _ in range(repeat)]
    bare = [process_seconds([sys.executable, "-c", "print('ok')"], "ok") for _ in range(repeat)]
    import_ms = statistics.median(imports) * 1e3
    help_ms = statistics.median(helps) * 1e3
    return {
        "benchmark": "startup",
        "repeat": repeat,
        "import_engine_ms": round(import_ms, 1),
        "cli_help_ms": round(help_ms, 1),
        "from_engine_import_pipeline_step_ms": round(statistics.median(api) * 1e3, 1),
        "python_bare_ms": round(statistics.median(bare) * 1e3, 1),
        "targets": TARGETS,
        "met": {
            "import_engine": import_ms < TARGETS["import_engine_ms"],
            "cli_help": help_ms < TARGETS["cli_help_ms"],
        },
        "environment": environment(),
    }


def main() -> None:
    p = parser(__doc__.splitlines()[0] if __doc__ else "startup benchmark")
    p.add_argument("--repeat", type=int, default=7, help="fresh processes per figure")
    args = p.parse_args()
    emit(run(args.repeat), as_json=args.json)


if __name__ == "__main__":
    main()
