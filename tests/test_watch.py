"""``evenflow run FILE.py:PIPELINE --watch``: a real watcher process over a temporary project
re-runs the pipeline on every saved change, and thanks to caching only the changed step and
what its new output feeds execute again."""

from __future__ import annotations

import contextlib
import io
import os
import queue
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from engine import Client
from engine._watch import WatchLoop, child_command

REPO = Path(__file__).resolve().parents[1]

FLOWS = textwrap.dedent(
    """
    from engine import pipeline, step

    import helpers


    @step
    def load() -> int:
        return 1


    @step
    def transform(x: int) -> int:
        return x + helpers.offset()


    @step
    def report(x: int) -> str:
        return f"got {x}"


    @pipeline
    def flow() -> None:
        report(transform(load()))
    """
)
HELPERS = "def offset() -> int:\n    return 10\n"


class Watcher:
    """``evenflow run flows.py:flow --watch`` in its own process group, its output (stdout and
    stderr together) read line by line on a thread."""

    def __init__(self, project: Path, home: Path) -> None:
        env = {**os.environ, "EVENFLOW_HOME": str(home), "PYTHONPATH": str(REPO)}
        argv = [sys.executable, "-c", "from engine._cli import main; main()"]
        self.proc = subprocess.Popen(
            [*argv, "run", "flows.py:flow", "--watch"],
            cwd=project,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # a process group to send "Ctrl-C" to
            # As a terminal would: SIGINT raises KeyboardInterrupt (a shell's background job
            # inherits it ignored).
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, text: str, timeout: float = 60.0) -> list[str]:
        """The lines up to and including the next one containing ``text``."""
        got: list[str] = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                message = f"no {text!r} within {timeout}s; output:\n{self.output}"
                raise AssertionError(message) from None
            if line is None:
                raise AssertionError(f"the watcher exited before {text!r}:\n" + self.output)
            got.append(line)
            self.seen.append(line)
            if text in line:
                return got

    @property
    def output(self) -> str:
        return "\n".join(self.seen)

    def interrupt(self) -> int:
        """Ctrl-C, as a terminal sends it: SIGINT to the whole process group."""
        os.killpg(self.proc.pid, signal.SIGINT)
        code = self.proc.wait(timeout=30)
        while (line := self.lines.get(timeout=5)) is not None:
            self.seen.append(line)
        return code

    def stop(self) -> None:
        # The whole group, even when the watcher is gone: a run it left behind must not leak.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.reader.join(10)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    (folder / "flows.py").write_text(FLOWS)
    (folder / "helpers.py").write_text(HELPERS)
    return folder


@pytest.fixture
def watcher(project: Path, evenflow_home: Path) -> Iterator[Watcher]:
    w = Watcher(project, evenflow_home)
    try:
        yield w
    finally:
        w.stop()


def statuses(run_id: str) -> dict[str, str]:
    return {sid: s.status.value for sid, s in Client().get_pipeline_run(run_id).steps.items()}


def test_watch_reruns_only_the_changed_step_and_what_it_feeds(
    project: Path, watcher: Watcher
) -> None:
    first = watcher.wait_for("[watch] watching")
    assert any("load" in line and "completed" in line for line in first)

    # A helper module the pipeline imports changes: `transform` uses it, so it runs again,
    # and `report` gets a new input; `load` comes from the cache.
    (project / "helpers.py").write_text(HELPERS.replace("10", "200"))
    second = watcher.wait_for("[watch] watching")
    assert "[watch] changed: helpers.py; running again" in second
    assert any("load" in line and "cached" in line and "cache hit" in line for line in second)

    # A save that breaks the file is reported, and watching goes on.
    (project / "flows.py").write_text(FLOWS + "\ndef broken(:\n")
    third = watcher.wait_for("[watch] watching")
    assert any(line.startswith("error: cannot import") for line in third)
    assert "[watch] the run exited with code 2; save a change to run again" in third

    # Fixed again: the same code as the second run, so every step is a cache hit.
    (project / "flows.py").write_text(FLOWS)
    watcher.wait_for("[watch] watching")

    assert watcher.interrupt() == 0
    assert watcher.seen[-1] == "[watch] stopped watching"
    newest, middle, oldest = Client().list_pipeline_runs()
    assert statuses(oldest.id) == dict.fromkeys(["load", "transform", "report"], "completed")
    assert statuses(middle.id) == {
        "load": "cached",
        "transform": "completed",
        "report": "completed",
    }
    assert statuses(newest.id) == dict.fromkeys(["load", "transform", "report"], "cached")
    assert Client().get_pipeline_run(middle.id).steps["report"].output.load() == "got 201"


SLOW = textwrap.dedent(
    """
    import time

    from engine import pipeline, step


    @step
    def slow() -> int:
        print("slow step started", flush=True)
        time.sleep(120)
        return 1


    @pipeline
    def flow() -> None:
        slow()
    """
)


def test_sigterm_during_a_run_stops_the_run_too(project: Path, watcher: Watcher) -> None:
    watcher.wait_for("[watch] watching")
    (project / "flows.py").write_text(SLOW)
    watcher.wait_for("slow step started")
    [running] = Client().list_pipeline_runs(status="running")
    # To the watcher alone (a supervisor, an IDE's stop button): the run must not go on
    # without it, an orphan holding the home.
    watcher.proc.send_signal(signal.SIGTERM)
    assert watcher.proc.wait(timeout=30) == 0
    while (line := watcher.lines.get(timeout=5)) is not None:
        watcher.seen.append(line)
    assert watcher.seen[-1] == "[watch] stopped watching"
    assert Client().get_pipeline_run(running.id).status == "cancelled"


# -- the loop itself, with fake changes and a fake runner ---------------------------------


def test_changes_during_a_run_start_one_more_run_after_it() -> None:
    ran: list[int] = []
    out = io.StringIO()

    def run(argv: Sequence[str]) -> int:
        ran.append(len(ran))
        return 1 if len(ran) == 2 else 0

    root = Path("/project")
    batches = [set(), set(), {(2, "/project/a.py"), (2, "/project/pkg/b.py")}, set()]
    code = WatchLoop(["evenflow"], root, batches, run=run, out=out).loop()
    lines = out.getvalue().splitlines()
    assert code == 0
    assert ran == [0, 1]  # the first run, then one for the batch (heartbeats run nothing)
    assert lines == [
        "[watch] watching /project for changes (Ctrl-C to stop)",
        "[watch] changed: a.py, pkg/b.py; running again",
        "[watch] the run exited with code 1; save a change to run again",
        "[watch] watching /project for changes (Ctrl-C to stop)",
        "[watch] stopped watching",
    ]


def test_ctrl_c_during_a_run_stops_watching_cleanly() -> None:
    out = io.StringIO()

    def run(argv: Sequence[str]) -> int:
        raise KeyboardInterrupt

    assert WatchLoop(["evenflow"], Path("/p"), [set()], run=run, out=out).loop() == 0
    assert out.getvalue().splitlines() == ["[watch] stopped watching"]


def test_each_run_is_the_same_command_without_watch() -> None:
    argv = child_command("flows.py:flow", ["n=3", "name=x"], as_json=True, debug=True)
    assert argv[:3] == [sys.executable, "-c", "from engine._cli import main; main()"]
    assert argv[3:] == ["--debug", "run", "flows.py:flow", "-p", "n=3", "-p", "name=x", "--json"]


def test_watching_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from engine._cli import app

    result = CliRunner().invoke(app, ["run", str(tmp_path / "nope.py:flow"), "--watch"])
    assert result.exit_code == 2
    assert result.output.strip() == f"error: no such file: {tmp_path / 'nope.py'}"
