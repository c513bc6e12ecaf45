"""Before and after: workloads of the suite on another revision and on this tree, in pairs.

    python -m benchmarks.compare REV [--only W1_async,W2_async] [--pairs 5] [--quick] [--json]

Checks ``REV`` out into a temporary git worktree, then runs each workload ``--pairs`` times on
each side, alternating (and swapping which side goes first in every other pair), each run in a
fresh worker process, exactly as the suite runs it (``python -m benchmarks --worker NAME``).
On a machine whose speed drifts by tens of percent from minute to minute, only figures taken
side by side like this say whether a change helped. Prints, for each workload, the median of
each side (microseconds per step or per event, else wall seconds), the change, and every
sample. The worktree is removed at the end.
"""

from __future__ import annotations

import contextlib
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ._common import emit, environment, parser
from ._suite import ROOT, run_one
from ._workloads import WORKLOADS, Workload

DEFAULT = "W1_async,W2_async"
_TIMEOUT = 1200.0  # seconds for one run of a workload (the suite's own limit)


class CompareError(Exception):
    """The revision cannot be checked out, or a workload failed on one side."""


@contextlib.contextmanager
def worktree(rev: str) -> Iterator[Path]:
    """``rev`` checked out (detached) in a temporary directory, removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="evenflow-compare-") as tmp:
        path = Path(tmp) / "base"
        done = subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise CompareError(f"cannot check out {rev!r}: {done.stderr.strip()}")
        try:
            yield path
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
                capture_output=True,
            )


def measure(tree: Path, workload: Workload, quick: bool) -> float:
    """One run of ``workload`` with the code in ``tree``: its figure (lower is better)."""
    record = run_one(workload, quick, _TIMEOUT, root=tree)
    if "error" in record:
        raise CompareError(f"{workload.name} failed in {tree}: {record['error']}")
    value = record.get("per_unit") or record.get("wall_s")
    if value is None:
        raise CompareError(f"{workload.name} in {tree} reported no figure")
    return float(value)


def compare(rev: str, names: list[str], pairs: int, quick: bool) -> dict[str, Any]:
    """The result dict: for each workload, both sides' samples, medians and the change."""
    out: dict[str, Any] = {"base": rev, "pairs": pairs, "quick": quick, "workloads": {}}
    by_name = {w.name: w for w in WORKLOADS}
    with worktree(rev) as base:
        for name in names:
            samples: dict[str, list[float]] = {"base": [], "head": []}
            for i in range(pairs):
                sides = [("base", base), ("head", ROOT)]
                for side, tree in sides if i % 2 == 0 else reversed(sides):
                    samples[side].append(measure(tree, by_name[name], quick))
            before = statistics.median(samples["base"])
            after = statistics.median(samples["head"])
            out["workloads"][name] = {
                "base_median": round(before, 2),
                "head_median": round(after, 2),
                "change_pct": round((after - before) / before * 100, 1),
                "base": [round(v, 2) for v in samples["base"]],
                "head": [round(v, 2) for v in samples["head"]],
            }
    out["environment"] = environment()
    return out


def main(argv: list[str] | None = None) -> int:
    p = parser((__doc__ or "").split("\n\n")[0])
    p.add_argument("rev", help="the revision to compare this tree with (e.g. HEAD~3)")
    p.add_argument("--only", default=DEFAULT, help=f"workloads, comma-separated ({DEFAULT})")
    p.add_argument("--pairs", type=int, default=5, help="runs on each side (default 5)")
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    args = p.parse_args(argv)
    known = {w.name for w in WORKLOADS}
    names = [n for n in args.only.split(",") if n]
    unknown = [n for n in names if n not in known]
    if unknown or args.pairs < 1:
        what = f"unknown workload(s) {', '.join(unknown)}" if unknown else "--pairs must be >= 1"
        print(f"compare: {what} (known: {', '.join(sorted(known))})", file=sys.stderr)
        return 2
    try:
        result = compare(args.rev, names, args.pairs, args.quick)
    except CompareError as exc:
        print(f"compare: {exc}", file=sys.stderr)
        return 1
    if args.json:
        emit(result, as_json=True)
    else:
        for name, r in result["workloads"].items():
            print(
                f"{name}: {r['base_median']:,} -> {r['head_median']:,} ({r['change_pct']:+.1f}%)"
                f"  base {r['base']}  head {r['head']}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
