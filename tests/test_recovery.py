"""Crash recovery with real processes: SIGKILL a pipeline process at a chosen point, see the run
marked crashed, resume it, and check that no finished step ran again and the log verifies."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import events
from engine import Client
from engine.enums import ExecutionStatus
from engine.errors import RunResumeError

CRASHY = Path(__file__).parent / "pipelines" / "crashy.py"
EVENFLOW = [sys.executable, "-c", "from engine._cli import main; main()"]
# As the installed `evenflow` command runs: nothing of the working directory on the path (-P).
INSTALLED_EVENFLOW = [sys.executable, "-P", "-c", "from engine._cli import main; main()"]


@pytest.fixture
def crashy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "crashy"
    folder.mkdir()
    (folder / "ran").touch()
    monkeypatch.setenv("CRASHY_DIR", str(folder))
    return folder


def ran(folder: Path) -> list[str]:
    return (folder / "ran").read_text().splitlines()


def wait_for(predicate: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def start(pipeline: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, str(CRASHY), pipeline],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def kill_blocked(
    procs: list[subprocess.Popen[bytes]],
    folder: Path,
    pipeline: str,
    step: str,
    finished: tuple[str, ...] = (),
) -> str:
    """Start ``pipeline`` in a process, SIGKILL it while ``step`` blocks (and once the steps
    named in ``finished`` are recorded as succeeded); the run's id."""
    (folder / "block").write_text(step)
    proc = start(pipeline)
    procs.append(proc)
    wait_for(lambda: (folder / f"{step}.blocked").exists() or proc.poll() is not None, step)
    if finished:
        wait_for(lambda: _succeeded(folder.parent, finished), f"{finished} to succeed")
    assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
    proc.kill()
    proc.wait()
    (folder / "block").unlink()
    (run,) = Client().list_pipeline_runs()
    return run.id


def types_of(home: Path, run_id: str) -> list[str]:
    conn = events.connect_database(home / "evenflow.db")
    try:
        rows = conn.execute("SELECT type FROM events WHERE stream = ? ORDER BY seq", (run_id,))
        return [t for (t,) in rows]
    finally:
        conn.close()


def assert_verifies(home: Path) -> None:
    report = events.audit_database(home / "evenflow.db")
    assert report.ok, report


def test_kill_during_a_step_then_resume(
    crashy: Path, procs: list[subprocess.Popen[bytes]], evenflow_home: Path
) -> None:
    run_id = kill_blocked(procs, crashy, "chain", "middle")

    crashed = Client().get_pipeline_run(run_id)
    assert crashed.status == ExecutionStatus.CRASHED
    assert types_of(evenflow_home, run_id).count("run.crashed") == 1
    Client().get_pipeline_run(run_id)  # noticed once, never twice
    assert types_of(evenflow_home, run_id).count("run.crashed") == 1

    view = Client().resume_run(run_id)
    assert view.status == ExecutionStatus.COMPLETED
    assert view.steps["last"].output.load() == 20
    assert ran(crashy) == ["first", "middle", "middle", "last"]  # first never ran again
    kinds = types_of(evenflow_home, run_id)
    assert kinds[-1] == "run.succeeded"
    assert kinds.count("run.created") == 1
    assert kinds.count("run.resumed") == 1
    assert_verifies(evenflow_home)


def test_kill_between_a_success_and_the_next_start(
    crashy: Path, procs: list[subprocess.Popen[bytes]], evenflow_home: Path
) -> None:
    run_id = kill_blocked(procs, crashy, "queued", "slow")
    before = Client().get_pipeline_run(run_id)
    assert before.steps["first"].status == ExecutionStatus.COMPLETED
    assert before.steps["last"].status == ExecutionStatus.QUEUED  # ready, never started

    view = Client().resume_run(run_id)
    assert view.status == ExecutionStatus.COMPLETED
    assert sorted(ran(crashy)) == ["first", "last", "slow", "slow"]
    assert view.steps["last"].output.load() == 10
    assert_verifies(evenflow_home)


def test_kill_during_a_retry_wait_restores_the_timer(
    crashy: Path, procs: list[subprocess.Popen[bytes]], evenflow_home: Path
) -> None:
    proc = start("retrying")
    procs.append(proc)
    wait_for(lambda: "flaky" in ran(crashy), "the first attempt")
    wait_for(
        lambda: "step.retry_scheduled" in types_of(evenflow_home, _only_run(evenflow_home)),
        "the retry to be scheduled",
    )
    proc.kill()
    proc.wait()
    run_id = _only_run(evenflow_home)

    view = Client().resume_run(run_id)
    assert view.status == ExecutionStatus.COMPLETED
    assert ran(crashy) == ["first", "flaky", "flaky", "last"]
    assert view.steps["last"].output.load() == 1010
    kinds = types_of(evenflow_home, run_id)
    assert kinds.count("step.retry_scheduled") == 1  # the restored timer, not a new retry
    assert_verifies(evenflow_home)
    # The retried step's result was recorded for the cache, as a retry that did not cross a
    # crash records it: running the pipeline again reuses it instead of running it.
    from engine._code import find_pipeline

    again = find_pipeline(view.events()[0].code)()
    assert again.steps["flaky"].status == ExecutionStatus.CACHED
    assert ran(crashy) == ["first", "flaky", "flaky", "last"]


def _succeeded(tmp: Path, steps: tuple[str, ...]) -> bool:
    conn = events.connect_database(tmp / "home" / "evenflow.db")
    try:
        done = {
            event.step
            for (payload,) in conn.execute(
                "SELECT payload FROM events WHERE type = 'step.succeeded'"
            )
            if isinstance(event := events.decode(payload), events.StepSucceeded)
        }
    finally:
        conn.close()
    return set(steps) <= done


def _only_run(home: Path) -> str:
    conn = events.connect_database(home / "evenflow.db")
    try:
        row = conn.execute("SELECT stream FROM events WHERE type = 'run.created'").fetchone()
    finally:
        conn.close()
    return str(row[0]) if row else ""


def test_a_dynamic_run_resumes_by_invocation_id(
    crashy: Path, procs: list[subprocess.Popen[bytes]], evenflow_home: Path
) -> None:
    run_id = kill_blocked(procs, crashy, "fan", "work3", finished=("work", "work_2", "work_3"))
    assert sorted(ran(crashy)) == ["work0", "work1", "work2", "work3"]

    view = Client().resume_run(run_id)
    assert view.status == ExecutionStatus.COMPLETED
    assert view.steps["add_up"].output.load() == 0 + 1 + 4 + 9
    assert sorted(ran(crashy)) == ["add_up", "work0", "work1", "work2", "work3", "work3"]
    assert types_of(evenflow_home, run_id).count("step.declared") == 5  # none declared twice
    assert_verifies(evenflow_home)


def test_a_dynamic_body_with_another_shape_fails_the_resume_clearly(
    crashy: Path,
    procs: list[subprocess.Popen[bytes]],
    evenflow_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    run_id = kill_blocked(procs, crashy, "fan", "work3")
    monkeypatch.setenv("CRASHY_SHAPE", "other")
    view = Client().resume_run(run_id)
    assert view.status == ExecutionStatus.FAILED
    assert "declared a different step under a recorded id" in (view.error or "")
    assert "work_4" in (view.error or "")
    assert "work13" not in ran(crashy)
    assert_verifies(evenflow_home)


def test_a_live_run_cannot_be_resumed_and_can_be_cancelled_through_the_log(
    crashy: Path, procs: list[subprocess.Popen[bytes]], evenflow_home: Path
) -> None:
    (crashy / "block").write_text("middle")
    proc = start("chain")
    procs.append(proc)
    wait_for(lambda: (crashy / "middle.blocked").exists(), "middle to block")
    (run,) = Client().list_pipeline_runs()
    assert run.status == ExecutionStatus.RUNNING  # alive: not taken for crashed

    with pytest.raises(RunResumeError, match=rf"still running \(pid {proc.pid} "):
        Client().resume_run(run.id)

    assert Client().cancel_run(run.id) == "requested"
    started = time.monotonic()
    # A sync step's thread cannot be interrupted: the run is recorded cancelled at once and
    # the process exits when the step returns (here: when the block is lifted).
    wait_for(
        lambda: Client().get_pipeline_run(run.id).status == ExecutionStatus.CANCELLED,
        "the owner to cancel",
        timeout=10,
    )
    assert time.monotonic() - started < 3
    (crashy / "block").unlink()
    assert proc.wait(timeout=30) == 1
    assert_verifies(evenflow_home)


def test_cancelling_a_crashed_run_and_resuming_a_finished_one(
    crashy: Path, procs: list[subprocess.Popen[bytes]], evenflow_home: Path
) -> None:
    run_id = kill_blocked(procs, crashy, "chain", "middle")
    assert Client().cancel_run(run_id) == "cancelled"
    assert Client().get_pipeline_run(run_id).status == ExecutionStatus.CANCELLED
    with pytest.raises(RunResumeError, match="already ended cancelled"):
        Client().resume_run(run_id)
    with pytest.raises(RunResumeError, match="not running"):
        Client().cancel_run(run_id)
    assert_verifies(evenflow_home)


def test_the_cli_resumes_a_crashed_run(
    crashy: Path, procs: list[subprocess.Popen[bytes]], evenflow_home: Path
) -> None:
    run_id = kill_blocked(procs, crashy, "chain", "middle")
    listed = subprocess.run(
        [*EVENFLOW, "runs", "list", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert '"status": "crashed"' in listed.stdout
    resumed = subprocess.run(
        [*EVENFLOW, "runs", "resume", run_id[:8], "--json"],
        capture_output=True,
        text=True,
        cwd=evenflow_home.parent,  # anywhere: the run recorded where its code is
    )
    assert resumed.returncode == 0, resumed.stderr
    assert '"status": "completed"' in resumed.stdout
    again = subprocess.run(
        [*EVENFLOW, "runs", "resume", run_id[:8]],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2
    assert again.stderr.startswith("error: run ")
    assert "already ended completed" in again.stderr
    assert ran(crashy) == ["first", "middle", "middle", "last"]


def test_two_processes_run_pipelines_on_one_home_at_once(
    crashy: Path, procs: list[subprocess.Popen[bytes]], evenflow_home: Path
) -> None:
    """Two pipeline processes share a home: both runs complete, each keeps its own lease, and
    nobody takes the other's live run for crashed."""
    first = start("fan")
    second = start("chain")
    procs.extend([first, second])
    wait_for(lambda: first.poll() is not None and second.poll() is not None, "both runs")
    assert first.returncode == 0, first.stderr.read() if first.stderr else ""
    assert second.returncode == 0, second.stderr.read() if second.stderr else ""
    runs = Client().list_pipeline_runs()
    assert sorted(r.pipeline_name for r in runs) == ["chain", "fan"]
    assert {r.status for r in runs} == {ExecutionStatus.COMPLETED}
    assert sorted(ran(crashy)) == sorted(
        ["add_up", "first", "last", "middle", "work0", "work1", "work2", "work3"]
    )
    assert not list((evenflow_home / "leases").iterdir())  # released with the runs
    assert_verifies(evenflow_home)


def test_a_crashed_run_being_resumed_is_not_deleted(
    crashy: Path, procs: list[subprocess.Popen[bytes]], evenflow_home: Path
) -> None:
    """Deleting races resuming: while a process holds the crashed run's lease (resuming it),
    `runs delete` refuses and `gc` skips it."""
    from engine._lease import Lease
    from engine.errors import RetentionError

    run_id = kill_blocked(procs, crashy, "chain", "middle")
    assert Client().get_pipeline_run(run_id).status == ExecutionStatus.CRASHED
    lease = Lease.acquire(evenflow_home / "leases", run_id, "a-resumer")
    try:
        with pytest.raises(RetentionError, match="being resumed"):
            Client().delete_pipeline_run(run_id)
        gc = subprocess.run(
            [*EVENFLOW, "gc", "--older-than", "0", "--json"], capture_output=True, text=True
        )
        assert gc.returncode == 0, gc.stderr
        assert Client().get_pipeline_run(run_id).id == run_id  # still there
    finally:
        lease.release()
    Client().delete_pipeline_run(run_id)  # once nobody holds it, it can go
    assert Client().list_pipeline_runs() == []


_FLOWS = """
import os

from engine import pipeline, step

from .helpers import double


@step(enable_cache=False)
def first() -> int:
    return double(1)


@step(enable_cache=False)
def second(x: int) -> int:
    if os.environ.get("FLOWS_CRASH"):
        os._exit(9)  # the process dies mid-step, as under kill -9
    return double(x)


@pipeline
def flow() -> None:
    second(first())
"""


def test_a_run_of_a_module_beside_its_script_resumes_from_another_directory(
    tmp_path: Path, evenflow_home: Path
) -> None:
    """A pipeline in the user's own package, imported by a script beside it: the run records
    the package's root with its ``module:name``, so ``evenflow runs resume`` (whose path has
    neither the script's folder nor the working directory) finds it from anywhere."""
    project = tmp_path / "project"
    (project / "mypkg").mkdir(parents=True)
    (project / "mypkg" / "__init__.py").write_text("")
    (project / "mypkg" / "helpers.py").write_text("def double(x: int) -> int:\n    return 2 * x\n")
    (project / "mypkg" / "flows.py").write_text(_FLOWS)
    (project / "main.py").write_text("from mypkg.flows import flow\n\nflow()\n")
    crashed = subprocess.run(
        [sys.executable, str(project / "main.py")],
        env={**os.environ, "FLOWS_CRASH": "1"},
        capture_output=True,
        text=True,
        cwd=project,
    )
    assert crashed.returncode == 9, crashed.stderr
    (run,) = Client().list_pipeline_runs()
    created = run.events()[0]
    assert (created.code, created.code_root) == ("mypkg.flows:flow", str(project.resolve()))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    resumed = subprocess.run(
        [*INSTALLED_EVENFLOW, "runs", "resume", run.id[:8], "--json"],
        capture_output=True,
        text=True,
        cwd=elsewhere,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert '"status": "completed"' in resumed.stdout
    assert Client().get_pipeline_run(run.id).steps["second"].output.load() == 4
