"""Step logs: per-step capture of stdout, stderr, logging and structlog, routed by context.

Concurrent steps (sync ones in worker threads, async ones on the loop) each get only their own
output; the log is announced by ``step.logs`` in the batch of the step's outcome, read back by
``run.steps[x].logs()`` and ``evenflow logs``, and survives a projections rebuild.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog
from typer.testing import CliRunner, Result

from engine import Client, pipeline, step
from engine._cli import app
from engine.config import StepRetryConfig

STEPS_PER_KIND = 8
LINES = 25

_running = 0
_most = 0
_gauge = threading.Lock()


def _enter() -> None:
    global _running, _most
    with _gauge:
        _running += 1
        _most = max(_most, _running)


def _leave() -> None:
    global _running
    with _gauge:
        _running -= 1


@step(enable_cache=False)
def sync_talker(marker: str) -> None:
    _enter()
    try:
        for i in range(LINES):
            print(f"{marker} out {i}")
            print(f"{marker} err {i}", file=sys.stderr)
            logging.getLogger("talk").warning("%s log %d", marker, i)
            time.sleep(0.002)
    finally:
        _leave()


@step(enable_cache=False)
async def async_talker(marker: str) -> None:
    _enter()
    try:
        for i in range(LINES):
            print(f"{marker} out {i}")
            print(f"{marker} err {i}", file=sys.stderr)
            logging.getLogger("talk").warning("%s log %d", marker, i)
            await anyio.sleep(0.002)
    finally:
        _leave()


@pipeline
def chatter() -> None:
    for i in range(STEPS_PER_KIND):
        sync_talker(marker=f"S{i}:", id=f"sync{i}")
        async_talker(marker=f"A{i}:", id=f"async{i}")


def test_concurrent_steps_never_mix() -> None:
    global _most
    _most = 0
    run = chatter()
    assert _most > STEPS_PER_KIND, "sync and async steps did not run at the same time"
    assert len(run.steps) == 2 * STEPS_PER_KIND
    for sid, s in run.steps.items():
        marker = f"{'S' if sid.startswith('sync') else 'A'}{sid[-1]}:"
        lines = s.logs().splitlines()
        assert len(lines) == 3 * LINES, sid
        assert all(marker in line for line in lines), (sid, lines)
        assert [line for line in lines if line.startswith(f"{marker} out")] == [
            f"{marker} out {i}" for i in range(LINES)
        ]
        assert sum(f"WARNING talk: {marker} log" in line for line in lines) == LINES


@step
def noisy() -> int:
    print("to stdout")
    print("to stderr", file=sys.stderr)
    logging.getLogger("user.module").info("an info record")  # root is at WARNING by default
    logging.getLogger("user.module").debug("a debug record")  # not captured
    structlog.get_logger().info("structlog_event", key="value")
    return 1


@step
def quiet(x: int) -> int:
    return x


@pipeline
def talk_then_quiet() -> None:
    quiet(noisy())


def test_stdout_stderr_logging_and_structlog_are_captured_and_teed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    run = talk_then_quiet()
    text = run.steps["noisy"].logs()
    assert text.startswith("to stdout\nto stderr\n")
    assert "INFO user.module: an info record" in text
    assert "a debug record" not in text
    assert "structlog_event" in text
    assert "key=value" in text
    out, err = capsys.readouterr()
    assert "to stdout" in out
    assert "to stderr" in err
    assert "an info record" not in err  # ...and only what logging let through before
    assert run.steps["quiet"].logs() == ""
    assert run.steps["quiet"].logs_uri is None


def test_step_logs_event_is_in_the_outcome_batch(evenflow_home: Path) -> None:
    run = talk_then_quiet()
    events = run.events()
    logs = [e for e in events if e.type == "step.logs"]
    assert [e.step for e in logs] == ["noisy"]  # a silent step has no event
    (ev,) = logs
    path = evenflow_home / ev.uri
    assert ev.uri == f"logs/{run.id}/noisy.log"
    assert ev.size == path.stat().st_size == len(run.steps["noisy"].logs().encode())
    assert run.steps["noisy"].logs_uri == ev.uri
    after = [e.type for e in events if e.seq > ev.seq][:2]
    assert after == ["artifact.stored", "step.succeeded"]
    succeeded = next(e for e in events if e.type == "step.succeeded" and e.step == "noisy")
    with contextlib.closing(sqlite3.connect(evenflow_home / "evenflow.db")) as conn:
        batch = conn.execute(
            "SELECT recorded_at FROM events WHERE seq IN (?, ?)", (ev.seq, succeeded.seq)
        ).fetchall()
    assert batch[0] == batch[1]  # committed together


_tries: dict[str, int] = {}


@step(retry=StepRetryConfig(max_retries=1, delay=0))
def flaky() -> int:
    _tries["flaky"] = _tries.get("flaky", 0) + 1
    print(f"try {_tries['flaky']}")
    if _tries["flaky"] == 1:
        raise RuntimeError("first try fails")
    return 1


@pipeline
def retried() -> None:
    flaky()


def test_retries_append_with_an_attempt_header() -> None:
    _tries.clear()
    run = retried()
    assert run.steps["flaky"].logs() == "try 1\n--- attempt 2 ---\ntry 2\n"
    types = [e.type for e in run.events() if e.type.startswith("step.")]
    assert types.count("step.logs") == 2
    first = types.index("step.logs")
    assert types[first + 1] == "step.failed"


@step
def failing() -> None:
    print("about to fail")
    raise ValueError("nope")


@pipeline
def fails() -> None:
    failing()


def test_a_failed_step_keeps_its_logs() -> None:
    run = fails.with_options(raise_on_failure=False)()
    assert run.steps["failing"].logs() == "about to fail\n"
    types = [e.type for e in run.events()]
    assert types[types.index("step.logs") + 1] == "step.failed"


@step(enable_step_logs=False)
def unlogged() -> int:
    print("not kept")
    return 1


@step(enable_step_logs=True)
def logged(x: int) -> None:
    print("kept")


@step
def default(x: int) -> None:
    print("default")


@pipeline(enable_step_logs=False)
def mixed() -> None:
    x = unlogged()
    logged(x)
    default(x)


def test_the_step_option_wins_over_the_pipeline_option() -> None:
    run = mixed()
    assert run.steps["unlogged"].logs() == ""
    assert run.steps["logged"].logs() == "kept\n"
    assert run.steps["default"].logs() == ""  # the pipeline turned it off
    run = mixed.with_options(enable_step_logs=True, enable_cache=False)()
    assert run.steps["default"].logs() == "default\n"
    assert run.steps["unlogged"].logs() == ""


def _tables(db: Path) -> dict[str, list[tuple[Any, ...]]]:
    with contextlib.closing(sqlite3.connect(db)) as conn:
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall()
            for t in ("runs", "step_runs", "projection_checkpoints")
        }


def test_rebuild_keeps_the_log_location(evenflow_home: Path) -> None:
    talk_then_quiet()
    before = _tables(evenflow_home / "evenflow.db")
    Client().rebuild_projections()
    assert _tables(evenflow_home / "evenflow.db") == before
    run = Client().list_pipeline_runs(size=1)[0]
    assert "to stdout" in run.steps["noisy"].logs()


# -- evenflow logs ---------------------------------------------------------------------------


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def test_cli_prints_one_step_or_every_step_prefixed() -> None:
    run = talk_then_quiet()
    one = invoke("logs", run.name, "noisy")
    assert one.exit_code == 0, one.output
    assert one.stdout == run.steps["noisy"].logs()
    every = invoke("logs", "latest")
    assert every.exit_code == 0
    lines = every.stdout.splitlines()
    assert lines[0] == "noisy | to stdout"
    assert all(line.startswith("noisy | ") for line in lines)
    finished = invoke("logs", run.id[:8], "noisy", "--follow")  # a finished run: no wait
    assert finished.stdout == one.stdout


def test_cli_errors_and_empty_logs() -> None:
    run = talk_then_quiet()
    missing = invoke("logs", run.name, "nosuch")
    assert missing.exit_code == 2
    assert "has no step 'nosuch'" in missing.stderr
    empty = invoke("logs", run.name, "quiet")
    assert empty.exit_code == 0
    assert empty.stdout == ""
    assert "no logs for step 'quiet'" in empty.stderr


_release = threading.Event()


@step
def slow() -> None:
    print("first", flush=True)
    if not _release.wait(timeout=30):
        raise TimeoutError("the test never released the step")
    print("second")


@pipeline
def slow_pipeline() -> None:
    slow()


def test_cli_follow_streams_a_running_step(evenflow_home: Path) -> None:
    _release.clear()
    done: list[Any] = []
    runner = threading.Thread(target=lambda: done.append(slow_pipeline()))
    runner.start()
    try:
        log_dir = evenflow_home / "logs"
        deadline = time.monotonic() + 20
        while not any(log_dir.glob("*/slow.log")) and time.monotonic() < deadline:
            time.sleep(0.01)
        (log,) = log_dir.glob("*/slow.log")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from engine._cli import main; main()",
                "logs",
                log.parent.name,
                "slow",
                "--follow",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "EVENFLOW_HOME": str(evenflow_home)},
        )
        assert proc.stdout is not None
        assert proc.stdout.readline() == "first\n"  # printed while the step still runs
        assert proc.poll() is None
        _release.set()
        out, err = proc.communicate(timeout=30)
        assert (out, proc.returncode) == ("second\n", 0), err
    finally:
        _release.set()
        runner.join(timeout=30)
    assert done
    assert done[0].steps["slow"].logs() == "first\nsecond\n"


def test_readme_example_runs() -> None:
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    code = next(b for b in blocks if "def training" in b)
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(code, "README.md", "exec"), namespace)
    run = namespace["training"]()  # type: ignore[operator]
    text = run.steps["train"].logs()
    assert text.startswith("epoch 0\n")
    assert "INFO train: loss=0.33" in text
    assert run.steps["report"].logs() == ""


LOUD_FLOW = """
import structlog

from engine import pipeline, step


@step
def shout() -> None:
    structlog.get_logger().error("loud_event", code=7)


@pipeline
def loud() -> None:
    shout()
"""


def test_structlog_under_evenflow_run_is_captured(tmp_path: Path) -> None:
    """``evenflow run`` configures structlog to print to stderr: each write's stderr, so a
    step's structlog lines still reach its log."""
    path = tmp_path / "loud_flow.py"
    path.write_text(LOUD_FLOW)
    saved_path = list(sys.path)
    try:
        result = invoke("run", f"{path}:loud")
    finally:
        sys.path[:] = saved_path
        for name in ("loud_flow", "evenflow_file_loud_flow"):
            sys.modules.pop(name, None)
    assert result.exit_code == 0, result.output
    text = invoke("logs", "latest", "shout").stdout
    assert "loud_event" in text
    assert "code=7" in text
