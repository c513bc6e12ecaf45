"""The ``evenflow`` command line: run, runs list, runs show, exit codes and one-line errors."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from engine import Client, ExecutionStatus
from engine._cli import app, main

REPO = Path(__file__).resolve().parents[1]

FLOWS = textwrap.dedent(
    """
    from typing import Annotated

    from engine import pipeline, step


    @step
    def make(n: int) -> int:
        return n


    @step
    def double(x: int) -> Annotated[int, "doubled"]:
        return 2 * x


    @step
    def shout(label: str, x: int) -> str:
        return f"{label}:{x}"


    @step
    def boom(x: int) -> int:
        raise ValueError(f"boom on {x}")


    @pipeline
    def ok(n: int = 2, label: str = "x") -> None:
        a = make(n=n)
        shout(label=label, x=double(a))


    @pipeline
    def bad() -> None:
        boom(make(n=1))


    not_a_pipeline = 42
    """
)


@pytest.fixture
def flows(tmp_path: Path) -> Iterator[Path]:
    """A pipeline file; the modules and sys.path entries the CLI adds are removed after."""
    path = tmp_path / "flows.py"
    path.write_text(FLOWS)
    saved_path = list(sys.path)
    yield path
    sys.path[:] = saved_path
    for name in ("flows", "evenflow_file_flows", "broken"):
        sys.modules.pop(name, None)


def invoke(*args: str) -> Result:
    return CliRunner().invoke(app, list(args))


def one_error_line(result: Result | str) -> str:
    stderr = result if isinstance(result, str) else result.stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


# -- run ---------------------------------------------------------------------------------------


def test_run_success_exits_0_with_one_line_per_transition(flows: Path) -> None:
    result = invoke("run", f"{flows}:ok", "-p", "n=3", "-p", "label=Bob")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "make" in out
    assert "running" in out
    assert "completed" in out
    assert "3/3 steps done" in out.splitlines()[-1]
    run = Client().list_pipeline_runs(size=1)[0]
    assert run.status is ExecutionStatus.COMPLETED
    assert run.parameters == {"n": 3, "label": "Bob"}  # -p values are read as YAML scalars
    assert run.steps["shout"].output.load() == "Bob:6"


def test_run_json_prints_the_finished_run(flows: Path) -> None:
    result = invoke("run", f"{flows}:ok", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["status"] == "completed"
    assert [s["id"] for s in data["steps"]] == ["make", "double", "shout"]


def test_run_failure_exits_1_with_the_failed_step_on_one_line(flows: Path) -> None:
    result = invoke("run", f"{flows}:bad")
    assert result.exit_code == 1
    line = one_error_line(result)
    assert "boom" in line
    assert "ValueError" in line
    assert "failed" in result.stdout
    assert Client().list_pipeline_runs(size=1)[0].status is ExecutionStatus.FAILED


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("missing.py:ok", "no such file"),
        ("{flows}:nope", "no attribute 'nope'"),
        ("{flows}:not_a_pipeline", "not a pipeline"),
        ("{flows}:1x", "not a Python name"),
        ("{flows}", "defines 2 pipelines"),
    ],
)
def test_bad_target_exits_2_with_one_line(flows: Path, target: str, expected: str) -> None:
    result = invoke("run", target.format(flows=flows))
    assert result.exit_code == 2
    assert expected in one_error_line(result)


def test_module_that_fails_to_import_exits_2(flows: Path) -> None:
    broken = flows.parent / "broken.py"
    broken.write_text("def oops(:\n")
    result = invoke("run", f"{broken}:p")
    assert result.exit_code == 2
    assert "cannot import" in one_error_line(result)


@pytest.mark.parametrize("param", ["novalue", "=3", "1n=2"])
def test_bad_param_syntax_exits_2(flows: Path, param: str) -> None:
    result = invoke("run", f"{flows}:ok", "-p", param)
    assert result.exit_code == 2
    assert "key=value" in one_error_line(result)


def test_compile_error_exits_2_before_any_run(flows: Path) -> None:
    result = invoke("run", f"{flows}:ok", "-p", "unknown=1")
    assert result.exit_code == 2
    assert "unknown" in one_error_line(result)
    assert Client().list_pipeline_runs() == []


@pytest.mark.anyio
async def test_live_display_renders_steps_and_summary(flows: Path) -> None:
    from rich.console import Console

    from engine._cli_live import run_followed
    from engine._cli_load import find_pipeline, import_file

    pipe = find_pipeline(import_file(flows), flows, "ok")
    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=100)
    view, error, started = await run_followed(pipe, {"n": 1}, "live", console)
    assert error is None
    assert started
    assert view is not None
    text = buffer.getvalue()
    assert "shout" in text
    assert "completed" in text
    assert "3/3 steps done" in text


def test_live_display_hides_quiet_steps_when_the_run_is_taller_than_the_terminal() -> None:
    import msgspec

    import projections
    from engine._cli_live import visible_steps
    from events import StepSpec

    def view(i: int, status: str) -> projections.StepView:
        return projections.StepView(
            run_id="r",
            id=f"s{i}",
            name="s",
            spec=StepSpec(id=f"s{i}", name="s"),
            status=projections.ExecutionStatus(status),
        )

    steps = [view(i, "completed") for i in range(50)] + [view(50, "running")]
    steps.append(msgspec.structs.replace(view(51, "failed"), error="bad"))
    shown, note = visible_steps(steps, rows=10)
    assert [s.id for s in shown] == ["s50", "s51"]
    assert note == "... 50 more steps (50 completed)"
    assert visible_steps(steps[:5], rows=10) == (steps[:5], "")


# -- runs list / show --------------------------------------------------------------------------


@pytest.fixture
def three_runs(flows: Path) -> list[str]:
    """Two runs of ``ok`` and one failed run of ``bad``; returns their ids, oldest first."""
    for target in ("ok", "ok", "bad"):
        invoke("run", f"{flows}:{target}")
    return [r.id for r in reversed(Client().list_pipeline_runs())]


def test_runs_list_table(three_runs: list[str]) -> None:
    result = invoke("runs", "list")
    assert result.exit_code == 0, result.output
    for run_id in three_runs:
        assert run_id[:8] in result.stdout
    assert "failed" in result.stdout
    assert "3/3" in result.stdout


def test_runs_list_json_and_filters(three_runs: list[str]) -> None:
    result = invoke("runs", "list", "--json")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in rows] == three_runs[::-1]  # newest first
    assert {"id", "name", "pipeline", "status", "created", "ended", "tags"} <= set(rows[0])
    assert isinstance(rows[0]["created"], float)
    failed = invoke("runs", "list", "--json", "--status", "failed").stdout.splitlines()
    assert [json.loads(line)["pipeline"] for line in failed] == ["bad"]
    assert len(invoke("runs", "list", "--json", "--pipeline", "ok").stdout.splitlines()) == 2
    assert len(invoke("runs", "list", "--json", "--size", "1").stdout.splitlines()) == 1
    bad = invoke("runs", "list", "--status", "nope")
    assert bad.exit_code == 2
    assert "unknown status" in one_error_line(bad)


def test_runs_show_by_id_prefix_name_and_latest(three_runs: list[str]) -> None:
    first = three_runs[0]
    name = Client().get_pipeline_run(first).name
    for ref in (first, first[:8], name):
        result = invoke("runs", "show", ref)
        assert result.exit_code == 0, result.output
        assert first in result.stdout
        assert name in result.stdout
        assert "shout" in result.stdout
        assert "completed" in result.stdout
    latest = invoke("runs", "show", "latest")
    assert latest.exit_code == 0
    assert three_runs[-1] in latest.stdout
    assert "ValueError" in latest.stdout


def test_runs_show_json_structure(three_runs: list[str]) -> None:
    result = invoke("runs", "show", three_runs[0], "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["id"] == three_runs[0]
    assert data["status"] == "completed"
    assert data["pipeline"] == "ok"
    assert data["parameters"] == {"n": 2, "label": "x"}
    steps = {s["id"]: s for s in data["steps"]}
    assert list(steps) == ["make", "double", "shout"]
    assert steps["double"]["upstream"] == ["make"]
    assert steps["shout"]["upstream"] == ["double"]
    assert list(steps["double"]["outputs"]) == ["doubled"]
    assert len(steps["double"]["outputs"]["doubled"]) == 1
    assert steps["make"]["end"] >= steps["make"]["start"]


def test_unknown_run_exits_2_with_one_line(three_runs: list[str]) -> None:
    for ref in ("no-such-run", "abc"):
        result = invoke("runs", "show", ref)
        assert result.exit_code == 2
        assert ref in one_error_line(result)


def test_latest_without_runs_exits_2() -> None:
    result = invoke("runs", "show", "latest")
    assert result.exit_code == 2
    assert "no runs yet" in one_error_line(result)


# -- the entry point ---------------------------------------------------------------------------


def test_main_reports_usage_errors_on_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["run"], ["runs", "show"], ["nope"], ["runs", "list", "--bogus"]):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        one_error_line(capsys.readouterr().err)
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    assert "runs" in capsys.readouterr().out


def test_debug_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--debug", "runs", "show", "nope-nope"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" in err
    assert err.splitlines()[-1].startswith("error: ")


def test_real_process_failed_run_is_one_line_and_exit_1(flows: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", "from engine._cli import main; main()", "run", f"{flows}:bad"],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert proc.returncode == 1, proc.stderr
    assert "boom" in one_error_line(proc.stderr)
    assert "failed" in proc.stdout
