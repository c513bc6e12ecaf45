"""Run configuration end to end: with_options, PipelineRunConfiguration, YAML files and their
precedence; settings validation and recording; tags."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from engine import (
    Client,
    DockerSettings,
    ExecutionStatus,
    PipelineRunConfiguration,
    ResourceSettings,
    pipeline,
    step,
)
from engine.errors import ConfigurationError, EngineError, PipelineDefinitionError


def write_yaml(tmp_path: Path, text: str, name: str = "run.yaml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return str(path)


def no_runs() -> bool:
    return Client().list_pipeline_runs() == []


@step(enable_cache=False)
def report(n: int, m: int) -> str:
    return f"{n},{m},{os.environ.get('QA_LEVEL')}"


@step
def pick(value: int = 1) -> int:
    return value


@pipeline(tags=["decorator"], environment={"QA_LEVEL": "decorator"})
def configurable(n: int = 1, m: int = 10) -> None:
    report(n=n, m=m)
    pick()


def reported(run: Any) -> str:
    return str(run.steps["report"].output.load())


# -- PipelineRunConfiguration and with_options ------------------------------------------------


def test_run_configuration_is_a_mapping_unpacked_into_with_options() -> None:
    config = PipelineRunConfiguration(run_name="nightly", enable_cache=False, tags=["t1"])
    assert dict(config) == {"run_name": "nightly", "enable_cache": False, "tags": ["t1"]}
    assert set(config) == {"run_name", "enable_cache", "tags"}
    configurable()
    run = configurable.with_options(**config)()
    assert run.name == "nightly"
    assert run.tags == ["t1"]
    assert run.steps["pick"].status is ExecutionStatus.COMPLETED  # caching off for the run
    assert Client().get_pipeline_run("nightly").id == run.id


def test_a_run_name_that_is_taken_gets_a_suffix() -> None:
    first = configurable.with_options(run_name="daily")()
    second = configurable.with_options(run_name="daily")()
    assert first.name == "daily"
    assert second.name == "daily_2"


def test_unknown_with_options_key_is_an_error() -> None:
    with pytest.raises(PipelineDefinitionError, match="run_nme"):
        configurable.with_options(run_nme="x")


def test_run_configuration_steps_mapping_is_applied() -> None:
    attempts: list[int] = []

    @step(enable_cache=False)
    def wobbly() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first attempt")
        return 1

    @pipeline
    def wobbling() -> None:
        wobbly()
        pick()

    config = PipelineRunConfiguration(
        steps={"wobbly": {"retry": {"max_retries": 1}}, "pick": {"parameters": {"value": 4}}}
    )
    run = wobbling.with_options(**config)()
    assert run.status is ExecutionStatus.COMPLETED
    assert attempts == [1, 1]
    assert run.steps["pick"].output.load() == 4


def test_with_options_steps_accepts_plain_mappings_like_the_run_configuration() -> None:
    attempts: list[int] = []

    @step(enable_cache=False)
    def wobbly() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first attempt")
        return 1

    @pipeline
    def wobbling() -> None:
        wobbly()

    run = wobbling.with_options(steps={"wobbly": {"retry": {"max_retries": 1}}})()
    assert run.status is ExecutionStatus.COMPLETED
    assert attempts == [1, 1]


# -- YAML files -----------------------------------------------------------------------------------


def test_yaml_file_configures_the_run(tmp_path: Path) -> None:
    attempts: list[int] = []

    @step(enable_cache=False)
    def wobbly() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("first attempt")
        return 1

    @pipeline
    def from_file(n: int = 1, m: int = 10) -> None:
        report(n=n, m=m)
        pick()
        wobbly()

    path = write_yaml(
        tmp_path,
        """
        run_name: yaml-run
        enable_cache: false
        parameters:
          n: 2
          m: 20
        tags: [from-yaml, nightly]
        settings:
          resources:
            cpu_count: 2
            memory: 1GB
        environment:
          QA_LEVEL: yaml
        steps:
          pick:
            parameters:
              value: 7
          wobbly:
            retry:
              max_retries: 1
        """,
    )
    run = from_file.with_options(config_path=path)()
    again = from_file.with_options(config_path=path)()
    assert again.steps["pick"].status is ExecutionStatus.COMPLETED  # enable_cache: false
    assert again.name == "yaml-run_2"
    assert run.name == "yaml-run"
    assert run.parameters == {"n": 2, "m": 20}
    assert run.tags == ["from-yaml", "nightly"]
    assert run.config["settings"]["resources"]["cpu_count"] == 2
    assert reported(run) == "2,20,yaml"
    assert run.steps["pick"].output.load() == 7
    assert run.steps["pick"].status is ExecutionStatus.COMPLETED
    assert run.steps["wobbly"].status is ExecutionStatus.COMPLETED
    assert run.steps["wobbly"].attempt == 2  # the file's retry
    assert attempts == [1, 1, 1]  # two attempts in the first run, one in the second
    assert "QA_LEVEL" not in os.environ


def test_yaml_steps_enable_cache_false_turns_one_step_off(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "steps:\n  pick:\n    enable_cache: false\n")
    configurable()
    run = configurable.with_options(config_path=path)()
    assert run.steps["pick"].status is ExecutionStatus.COMPLETED
    assert configurable().steps["pick"].status is ExecutionStatus.CACHED


def test_precedence_yaml_over_decorator(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """
        run_name: from-yaml
        tags: [yaml]
        environment: {QA_LEVEL: yaml}
        parameters: {n: 2}
        """,
    )
    run = configurable.with_options(config_path=path)()
    assert run.name == "from-yaml"
    assert run.tags == ["yaml"]
    assert reported(run) == "2,10,yaml"


def test_precedence_with_options_over_yaml(tmp_path: Path) -> None:
    path = write_yaml(
        tmp_path,
        """
        run_name: from-yaml
        enable_cache: false
        tags: [yaml]
        environment: {QA_LEVEL: yaml}
        parameters: {n: 2, m: 20}
        steps:
          pick:
            parameters: {value: 7}
        """,
    )
    configurable()
    run = configurable.with_options(
        config_path=path,
        run_name="from-options",
        enable_cache=True,
        tags=["options"],
        environment={"QA_LEVEL": "options"},
        parameters={"n": 3},
        steps={"pick": {"parameters": {"value": 9}}},
    )()
    assert run.name == "from-options"
    assert run.tags == ["options"]
    assert reported(run) == "3,20,options"
    assert run.steps["pick"].output.load() == 9


def test_precedence_of_enable_cache(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "enable_cache: false\n")
    configurable()
    from_file = configurable.with_options(config_path=path)()
    assert from_file.steps["pick"].status is ExecutionStatus.COMPLETED
    from_options = configurable.with_options(config_path=path, enable_cache=True)()
    assert from_options.steps["pick"].status is ExecutionStatus.CACHED


def test_precedence_call_over_with_options(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "parameters: {m: 20}\n")
    run = configurable.with_options(config_path=path, parameters={"n": 3, "m": 30})(n=4)
    assert run.parameters == {"n": 4, "m": 30}
    assert reported(run) == "4,30,decorator"


def test_call_agreeing_with_the_yaml_file_is_fine(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "parameters: {n: 2}\n")
    run = configurable.with_options(config_path=path)(n=2)
    assert run.parameters["n"] == 2


def test_call_conflicting_with_the_yaml_file_is_an_error(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "parameters: {n: 2}\n")
    with pytest.raises(ConfigurationError) as excinfo:
        configurable.with_options(config_path=path)(n=3)
    message = str(excinfo.value)
    assert "'n'" in message
    assert "3" in message
    assert "2" in message
    assert no_runs()


def test_with_options_steps_merge_with_the_yaml_steps_per_key(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "steps:\n  pick:\n    enable_cache: false\n")
    options = {"config_path": path, "steps": {"pick": {"parameters": {"value": 9}}}}
    configurable.with_options(**options)()
    run = configurable.with_options(**options)()
    assert run.steps["pick"].output.load() == 9
    assert run.steps["pick"].status is ExecutionStatus.COMPLETED  # still not cached


def test_yaml_environment_merges_with_the_decorator_environment(tmp_path: Path) -> None:
    @step(enable_cache=False)
    def read_env() -> str:
        return f"{os.environ.get('QA_KEEP')},{os.environ.get('QA_LEVEL')}"

    @pipeline(environment={"QA_KEEP": "kept", "QA_LEVEL": "decorator"})
    def env_flow() -> None:
        read_env()

    path = write_yaml(tmp_path, "environment: {QA_LEVEL: yaml}\n")
    run = env_flow.with_options(config_path=path)()
    assert run.steps["read_env"].output.load() == "kept,yaml"


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("run_name: x\nenable_cach: false\n", "enable_cach"),
        ("steps:\n  pick:\n    retries: 2\n", "retries"),
        ("config_path: other.yaml\n", "config_path"),
    ],
    ids=["top-level", "step-level", "config_path"],
)
def test_unknown_yaml_key_is_an_error_naming_key_and_file(
    tmp_path: Path, text: str, key: str
) -> None:
    path = write_yaml(tmp_path, text, name="nightly.yaml")
    with pytest.raises(ConfigurationError) as excinfo:
        configurable.with_options(config_path=path)()
    message = str(excinfo.value)
    assert repr(key) in message
    assert path in message
    assert no_runs()


def test_unknown_step_id_in_yaml_is_an_error_naming_it(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "steps:\n  no_such_step:\n    enable_cache: false\n")
    with pytest.raises(ConfigurationError, match="no_such_step"):
        configurable.with_options(config_path=path)()
    assert no_runs()


def test_missing_or_invalid_yaml_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = str(tmp_path / "missing.yaml")
    with pytest.raises(ConfigurationError, match=r"missing\.yaml"):
        configurable.with_options(config_path=missing)()
    broken = write_yaml(tmp_path, "run_name: [unclosed\n", name="broken.yaml")
    with pytest.raises(ConfigurationError, match=r"broken\.yaml"):
        configurable.with_options(config_path=broken)()
    bad_value = write_yaml(tmp_path, "enable_cache: sometimes\n", name="bad.yaml")
    with pytest.raises(ConfigurationError, match="enable_cache"):
        configurable.with_options(config_path=bad_value)()
    assert no_runs()


# -- settings -------------------------------------------------------------------------------------


def test_pipeline_settings_are_validated_and_recorded() -> None:
    @pipeline(
        settings={
            "docker": DockerSettings(parent_image="python:3.11-slim", requirements=["polars"]),
            "resources": {"cpu_count": 4, "memory": "2GB"},
        }
    )
    def with_settings() -> None:
        pick()

    run = with_settings()
    settings = run.config["settings"]
    assert settings["docker"]["parent_image"] == "python:3.11-slim"
    assert settings["resources"]["cpu_count"] == 4
    assert settings["resources"]["memory"] == "2GB"
    assert Client().get_pipeline_run(run.id).config["settings"] == settings


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"dokcer": {"parent_image": "x"}}, "dokcer"),
        ({"resources": {"memory": "lots"}}, "memory"),
        ({"resources": {"cpu_cnt": 1}}, "cpu_cnt"),
        ({"resources": DockerSettings()}, "resources"),
    ],
    ids=["unknown-key", "bad-value", "unknown-field", "wrong-class"],
)
def test_bad_pipeline_settings_are_a_clear_error(settings: dict[str, Any], named: str) -> None:
    @pipeline(settings=settings)
    def bad_settings() -> None:
        pick()

    with pytest.raises(ConfigurationError, match=named):
        bad_settings()
    assert no_runs()


def test_settings_classes_validate_on_construction() -> None:
    with pytest.raises(ConfigurationError, match="memory"):
        ResourceSettings(memory="lots")
    with pytest.raises(ConfigurationError):
        DockerSettings(python_package_installer="conda-but-wrong")


def test_step_settings_are_recorded() -> None:
    @step(
        enable_cache=False,
        settings={
            "docker": DockerSettings(parent_image="python:3.11-slim"),
            "resources": ResourceSettings(cpu_count=2),
        },
    )
    def heavy() -> int:
        return 1

    @pipeline
    def heavy_flow() -> None:
        heavy()

    run = heavy_flow()
    config = run.steps["heavy"].spec.config
    assert config["settings"]["docker"]["parent_image"] == "python:3.11-slim"
    assert config["settings"]["resources"]["cpu_count"] == 2


def test_yaml_step_settings_are_recorded(tmp_path: Path) -> None:
    path = write_yaml(tmp_path, "steps:\n  pick:\n    settings:\n      resources: {gpu_count: 1}\n")
    run = configurable.with_options(config_path=path)()
    assert run.steps["pick"].spec.config["settings"]["resources"]["gpu_count"] == 1


def test_bad_step_settings_are_a_clear_error() -> None:
    def define_and_run() -> None:  # the error may come at definition or at compile time
        @step(settings={"dokcer": {"parent_image": "x"}})
        def misconfigured() -> int:
            return 1

        @pipeline
        def misconfigured_flow() -> None:
            misconfigured()

        misconfigured_flow()

    with pytest.raises(ConfigurationError, match="dokcer"):
        define_and_run()
    assert no_runs()


# -- tags -----------------------------------------------------------------------------------------


@pipeline(tags=["decorator"])
def pick_only() -> None:
    pick()


@pipeline
def untagged_flow() -> None:
    pick()


def test_runs_are_filtered_by_tags() -> None:
    both = configurable.with_options(tags=["team-a", "nightly"], run_name="both")()
    configurable.with_options(tags=["team-b"], run_name="b")()
    untagged = untagged_flow()
    client = Client()
    assert both.tags == ["team-a", "nightly"]
    assert untagged.tags == []

    def names(**kwargs: Any) -> set[str]:
        return {r.name for r in client.list_pipeline_runs(**kwargs)}

    assert names(tags=["team-a"]) == {"both"}
    assert names(tags="nightly") == {"both"}
    assert names(tags=["team-a", "nightly"]) == {"both"}
    assert names(tags=["team-a", "team-b"]) == set()
    assert names(tags=["decorator"]) == set()  # with_options replaced the decorator's tags
    assert names(tags=["team-b"], pipeline="configurable") == {"b"}
    assert len(client.list_pipeline_runs()) == 3


def test_decorator_tags_are_recorded() -> None:
    run = pick_only.with_options(tags=None)()
    assert run.tags == ["decorator"]
    assert {r.id for r in Client().list_pipeline_runs(tags=["decorator"])} == {run.id}


def test_yaml_retry_and_execution_mode_apply(tmp_path: Path) -> None:
    attempts: list[int] = []

    @step(enable_cache=False)
    def wobbly() -> int:
        attempts.append(1)
        raise ValueError("always")

    @step(enable_cache=False)
    def other(x: int) -> int:
        return x

    @pipeline
    def modes() -> None:
        other(wobbly())
        pick(value=5)

    path = write_yaml(
        tmp_path,
        """
        execution_mode: stop_on_failure
        retry: {max_retries: 2}
        """,
    )
    with pytest.raises(EngineError):
        modes.with_options(config_path=path)()
    assert attempts == [1, 1, 1]
