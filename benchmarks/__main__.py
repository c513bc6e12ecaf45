"""The benchmark suite: every workload, one table.

    python -m benchmarks [--quick] [--json FILE] [--only W1,W2,...] [--plot FILE.png]
                         [--peers PEERS.json] [--from RESULT.json]

Runs W1-W9 and MEM (see ``benchmarks._workloads``), each in a fresh worker process, and prints
workload, size, wall time, per-step overhead, the plain-sqlite3 floor measured in the same run,
the ratio to it, peak RSS, and the issue's targets as PASS/FAIL (W3's per-step figure is the
wall time beyond the 0.5 s sleep, per step; W6 and W8 are per event). ``--quick`` runs small
sizes (a smoke test, under a minute). ``--plot`` draws the per-step overhead (needs the
``bench`` extra: matplotlib), with the peers' figures from ``python -m benchmarks.peers --json
FILE`` when ``--peers FILE`` is given. ``--from`` reads a saved ``--json`` result instead of
running.
Exits 1 when a workload failed (a wrong result or a crash); missed targets do not fail it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ._suite import run_suite, table, worker
from ._workloads import select


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m benchmarks", description=(__doc__ or "").split("\n\n")[0]
    )
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke test, < 1 min")
    p.add_argument("--json", metavar="FILE", type=Path, help="also write the result as JSON")
    p.add_argument("--only", default="", help="workloads or prefixes, e.g. W1,W2_sync,MEM")
    p.add_argument("--plot", metavar="FILE.png", type=Path, help="draw per-step overhead")
    p.add_argument("--peers", metavar="FILE", type=Path, help="peers' JSON to add to the plot")
    p.add_argument("--from", dest="saved", metavar="FILE", type=Path, help="a saved result")
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one workload, print JSON
    args = p.parse_args(argv)
    if args.worker:
        worker(args.worker, args.quick)
        return 0
    if args.saved:
        result = json.loads(args.saved.read_text())
    else:
        result = run_suite(select(args.only), args.quick)
    print(table(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=1) + "\n")
    if args.plot:
        from ._plot import plot

        peers = json.loads(args.peers.read_text()) if args.peers else None
        plot(result, args.plot, peers=peers)
        print(f"plot written to {args.plot}")
    return 1 if result["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
