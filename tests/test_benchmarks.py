"""The benchmark suite runs end to end at quick sizes and every workload checks its result.

A smoke test only: no timing is asserted (the figures depend on the machine).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_quick_suite_reports_every_workload(tmp_path: Path) -> None:
    from benchmarks._workloads import WORKLOADS

    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if k != "EVENFLOW_HOME"}
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=140,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(out.read_text())
    assert result["quick"] is True
    assert result["failed"] == []
    assert list(result["workloads"]) == [w.name for w in WORKLOADS]
    for name, record in result["workloads"].items():
        assert "error" not in record, (name, record)
        assert record["wall_s"] is not None, name
        assert record["wall_s"] > 0, name
        assert record["peak_rss_mb"] > 0, name
        assert record["targets"] or name in ("W1_sync", "W2_full"), name
    table = done.stdout
    assert all(name in table for name in result["workloads"])
    assert "targets met" in table
