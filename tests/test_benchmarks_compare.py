"""``python -m benchmarks.compare``: a workload on another revision and on this tree, in pairs.

A smoke test at quick sizes in a throwaway git repository holding a copy of the project; no
timing is asserted."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GIT = shutil.which("git")
pytestmark = pytest.mark.skipif(GIT is None, reason="benchmarks.compare needs git (not found)")


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git repository with one commit: this project's packages and pyproject.toml."""
    path = tmp_path_factory.mktemp("compare") / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("engine", "events", "projections", "benchmarks"):
        shutil.copytree(ROOT / package, path / package, ignore=ignore)
    shutil.copy(ROOT / "pyproject.toml", path / "pyproject.toml")
    git = [str(GIT), "-C", str(path), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-qm", "base"], check=True)
    return path


def compare(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "EVENFLOW_HOME"}
    env["PYTHONPATH"] = str(repo)
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.compare", *args],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.mark.slow
def test_each_side_runs_the_workload_and_the_worktree_is_removed(repo: Path) -> None:
    done = compare(repo, "HEAD", "--only", "W1_async", "--pairs", "2", "--quick", "--json")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    w1 = result["workloads"]["W1_async"]
    assert len(w1["base"]) == len(w1["head"]) == 2
    assert all(v > 0 for v in w1["base"] + w1["head"])
    assert w1["base_median"] > 0
    assert w1["head_median"] > 0
    listed = subprocess.run(
        [str(GIT), "-C", str(repo), "worktree", "list"], capture_output=True, text=True, check=True
    )
    assert len(listed.stdout.strip().splitlines()) == 1  # only the repository itself


def test_an_unknown_revision_is_a_clear_error(repo: Path) -> None:
    done = compare(repo, "no-such-rev", "--only", "W1_async", "--pairs", "1", "--quick")
    assert done.returncode == 1
    assert "cannot check out 'no-such-rev'" in done.stderr


def test_an_unknown_workload_is_a_usage_error(repo: Path) -> None:
    done = compare(repo, "HEAD", "--only", "W1_async,W42")
    assert done.returncode == 2
    assert "unknown workload(s) W42" in done.stderr
