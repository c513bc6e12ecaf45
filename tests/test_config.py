"""engine.config: validation, normalization and serialization of configuration values."""

from __future__ import annotations

import ast
import copy
import datetime as dt
import enum
import pickle
import time
from pathlib import Path
from typing import Any

import msgspec
import pytest

from engine.config import (
    CachePolicy,
    DockerSettings,
    ExecutorSettings,
    Model,
    PipelineRunConfiguration,
    ResourceSettings,
    Schedule,
    StepConfigurationUpdate,
    StepRetryConfig,
    validate_settings,
)
from engine.errors import ConfigurationError

UTC = dt.UTC
ENGINE = Path(__file__).resolve().parent.parent / "engine"


class _Mode(enum.StrEnum):  # what engine.enums.ExecutionMode is
    CONTINUE_ON_FAILURE = "continue_on_failure"


def _cache_token() -> str:
    return "token-1"


def _needs_argument(x: int) -> str:
    return str(x)


@pytest.fixture
def new_york_local_time(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Make the process's local time zone America/New_York for one test."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


# -- Schedule --------------------------------------------------------------------------------


def test_schedule_cron_round_trips_through_dict() -> None:
    schedule = Schedule(cron_expression="0  2 * * *", name="nightly", catchup=True)
    assert schedule.cron_expression == "0 2 * * *"
    assert schedule.kind == "cron"
    data = schedule.to_dict()
    assert msgspec.json.decode(msgspec.json.encode(data)) == data
    assert Schedule.from_dict(data) == schedule
    assert hash(Schedule.from_dict(data)) == hash(schedule)
    assert repr(schedule) == "Schedule(cron_expression='0 2 * * *', catchup=True, name='nightly')"


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("61 * * * *", "out of range"),
        ("* * *", "columns"),
        ("every day", "columns"),
        ("0 0 31 2 *", "never matches"),
    ],
)
def test_schedule_rejects_an_invalid_cron_expression(expression: str, reason: str) -> None:
    with pytest.raises(ConfigurationError, match=r"cron_expression") as info:
        Schedule(cron_expression=expression)
    assert repr(expression) in str(info.value)
    assert reason in str(info.value)


def test_schedule_rejects_a_non_string_cron_expression() -> None:
    with pytest.raises(ConfigurationError, match=r"cron_expression must be .*got 5"):
        Schedule(cron_expression=5)  # type: ignore[arg-type]


def test_schedule_needs_exactly_one_kind() -> None:
    with pytest.raises(ConfigurationError, match=r"exactly one of .* got none"):
        Schedule()
    with pytest.raises(ConfigurationError, match=r"cron_expression='\* \* \* \* \*'.*interval"):
        Schedule(cron_expression="* * * * *", interval_second=60)


def test_schedule_interval_accepts_seconds_or_timedelta() -> None:
    assert Schedule(interval_second=dt.timedelta(minutes=5)).interval_second == 300.0
    assert Schedule(interval_second=90).interval_second == 90.0
    assert Schedule(interval_second=90).kind == "interval"
    assert Schedule(interval_second=90) == Schedule(interval_second=dt.timedelta(seconds=90))


@pytest.mark.parametrize("bad", [0, -5, dt.timedelta(0), True, "60", float("inf")])
def test_schedule_rejects_a_bad_interval(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match=r"interval_second") as info:
        Schedule(interval_second=bad)
    assert repr(bad) in str(info.value)


def test_naive_datetimes_are_local_time_stored_as_utc(new_york_local_time: None) -> None:
    schedule = Schedule(interval_second=60, start_time=dt.datetime(2024, 1, 15, 12, 0))
    assert schedule.start_time == dt.datetime(2024, 1, 15, 17, 0, tzinfo=UTC)
    assert schedule.start_time is not None
    assert schedule.start_time.tzinfo is UTC
    summer = Schedule(run_once_start_time=dt.datetime(2024, 7, 1, 9, 30))
    assert summer.run_once_start_time == dt.datetime(2024, 7, 1, 13, 30, tzinfo=UTC)
    assert summer.kind == "once"
    zone = Schedule(cron_expression="0 2 * * *").tzinfo
    assert zone.utcoffset(dt.datetime(2024, 1, 15)) == dt.timedelta(hours=-5)
    assert zone.utcoffset(dt.datetime(2024, 7, 15)) == dt.timedelta(hours=-4)  # DST-aware


def test_naive_datetimes_use_the_schedule_timezone_when_given() -> None:
    schedule = Schedule(
        cron_expression="0 9 * * *",
        timezone="Asia/Tokyo",
        start_time=dt.datetime(2024, 1, 15, 9, 0),
        end_time="2024-02-01T00:00:00+00:00",
    )
    assert schedule.start_time == dt.datetime(2024, 1, 15, 0, 0, tzinfo=UTC)
    assert schedule.end_time == dt.datetime(2024, 2, 1, tzinfo=UTC)
    assert schedule.utc_start_time == "2024-01-15T00:00:00+00:00"
    assert str(schedule.tzinfo) == "Asia/Tokyo"
    assert Schedule.from_dict(schedule.to_dict()) == schedule


def test_aware_datetimes_keep_their_instant() -> None:
    paris = dt.timezone(dt.timedelta(hours=1))
    schedule = Schedule(interval_second=1, start_time=dt.datetime(2024, 1, 1, 12, tzinfo=paris))
    assert schedule.start_time == dt.datetime(2024, 1, 1, 11, tzinfo=UTC)


def test_schedule_rejects_bad_times_and_zones() -> None:
    start = dt.datetime(2024, 1, 2, tzinfo=UTC)
    with pytest.raises(ConfigurationError, match=r"end_time .* must be after start_time"):
        Schedule(interval_second=60, start_time=start, end_time=start)
    with pytest.raises(ConfigurationError, match=r"timezone must be .*'Mars/Olympus'"):
        Schedule(cron_expression="* * * * *", timezone="Mars/Olympus")
    with pytest.raises(ConfigurationError, match=r"start_time must be .*'tomorrow'"):
        Schedule(interval_second=60, start_time="tomorrow")
    with pytest.raises(ConfigurationError, match=r"start_time must be a datetime, got datetime\."):
        Schedule(interval_second=60, start_time=dt.date(2024, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"do not apply to a run_once_start_time"):
        Schedule(run_once_start_time=start, start_time=start)
    with pytest.raises(ConfigurationError, match=r"catchup must be true or false, got 'yes'"):
        Schedule(cron_expression="* * * * *", catchup="yes")  # type: ignore[arg-type]


def test_schedule_is_read_only_and_rejects_unknown_fields() -> None:
    schedule = Schedule(cron_expression="* * * * *")
    with pytest.raises(AttributeError, match=r"read-only"):
        schedule.catchup = True  # type: ignore[misc]
    with pytest.raises(ConfigurationError, match=r"Schedule: unknown field 'cron'"):
        Schedule(cron="* * * * *")  # type: ignore[call-arg]
    assert schedule.replace(catchup=True).catchup is True


# -- CachePolicy -----------------------------------------------------------------------------


def test_cache_policy_max_age_days_and_expires_after_are_one_setting() -> None:
    by_days = CachePolicy(max_age_days=7, ignore_fields=["timestamp"])
    by_seconds = CachePolicy(expires_after=7 * 86_400, ignored_inputs=["timestamp"])
    assert by_days == by_seconds
    assert by_days.effective_max_age_seconds == 604_800.0
    assert by_seconds.max_age_days == 7.0
    assert CachePolicy(expires_after=dt.timedelta(hours=1)).effective_max_age_seconds == 3600.0
    assert CachePolicy(max_age_days=1, expires_after=86_400).expires_after == 86_400.0
    assert CachePolicy().effective_max_age_seconds is None


def test_cache_policy_rejects_disagreeing_or_bad_ages() -> None:
    with pytest.raises(ConfigurationError, match=r"max_age_days=1 .*expires_after=60.*disagree"):
        CachePolicy(max_age_days=1, expires_after=60)
    with pytest.raises(ConfigurationError, match=r"max_age_days must be > 0, got -1"):
        CachePolicy(max_age_days=-1)
    with pytest.raises(ConfigurationError, match=r"expires_after must be > 0, got 0"):
        CachePolicy(expires_after=0)


def test_cache_policy_merges_ignored_names() -> None:
    policy = CachePolicy(ignore_fields=["timestamp", "seed"], ignored_inputs=["seed", "run_at"])
    assert policy.ignore_fields == ("run_at", "seed", "timestamp")
    assert policy.ignored_inputs == policy.ignore_fields
    assert policy.ignored_names == frozenset({"run_at", "seed", "timestamp"})
    with pytest.raises(ConfigurationError, match=r"ignore_fields must be a list of strings"):
        CachePolicy(ignore_fields="timestamp")
    with pytest.raises(ConfigurationError, match=r"ignored_inputs must be .*got \[1\]"):
        CachePolicy(ignored_inputs=[1])  # type: ignore[list-item]


def test_cache_policy_cache_func_as_callable_or_import_path() -> None:
    policy = CachePolicy(cache_func=_cache_token)
    assert policy.cache_func == f"{__name__}:_cache_token"
    assert policy.resolve_cache_func() is _cache_token
    assert policy.to_dict()["cache_func"] == f"{__name__}:_cache_token"
    # Only the path is compared and recorded: rebuilt from its dict it resolves by import.
    rebuilt = CachePolicy.from_dict(policy.to_dict())
    assert rebuilt == policy
    assert rebuilt.resolve_cache_func() is _cache_token
    assert CachePolicy(cache_func="os.getcwd").resolve_cache_func() is __import__("os").getcwd
    assert CachePolicy(cache_func="os.path:basename").resolve_cache_func() is not None
    with pytest.raises(ConfigurationError, match=r"cache_func 'no_such_mod.f' cannot be imported"):
        CachePolicy(cache_func="no_such_mod.f").resolve_cache_func()


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (lambda: "x", "module-level function"),
        (_needs_argument, "takes no arguments"),
        ("not a path", "import path"),
        ("func", "import path"),
        (42, "a function or its import path"),
    ],
)
def test_cache_policy_rejects_a_bad_cache_func(bad: Any, expected: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"cache_func must be .*{expected}"):
        CachePolicy(cache_func=bad)


def test_cache_policy_default_and_dict() -> None:
    assert CachePolicy.default() == CachePolicy()
    assert CachePolicy.from_string("default") == CachePolicy()
    data = CachePolicy(include_step_code=False).to_dict()
    assert data["include_step_code"] is False
    assert msgspec.json.decode(msgspec.json.encode(data)) == data
    with pytest.raises(ConfigurationError, match=r"include_artifact_ids must be true or false"):
        CachePolicy(include_artifact_ids=1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=r"unknown field 'file_dependencies'"):
        CachePolicy(file_dependencies=["a.txt"])  # type: ignore[call-arg]


# -- StepRetryConfig -------------------------------------------------------------------------


def test_retry_config_defaults_and_round_trip() -> None:
    retry = StepRetryConfig(max_retries=3, delay=dt.timedelta(seconds=2), backoff=2, jitter=0.1)
    assert (retry.max_retries, retry.delay, retry.backoff, retry.max_delay) == (3, 2.0, 2.0, None)
    assert StepRetryConfig.from_dict(retry.to_dict()) == retry
    assert StepRetryConfig() == StepRetryConfig(max_retries=1, delay=0, backoff=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"max_retries": -1}, "max_retries must be >= 0, got -1"),
        ({"max_retries": 1.5}, "max_retries must be an integer, got 1.5"),
        ({"delay": -2}, "delay must be >= 0, got -2"),
        ({"backoff": 0.5}, "backoff must be >= 1, got 0.5"),
        ({"jitter": 1.5}, "jitter must be <= 1, got 1.5"),
        ({"jitter": -0.1}, "jitter must be >= 0, got -0.1"),
        ({"delay": 10, "max_delay": 5}, r"max_delay \(5\) must be >= delay \(10\)"),
        ({"retries": 3}, "unknown field 'retries'"),
    ],
)
def test_retry_config_rejects_bad_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=rf"StepRetryConfig: {message}"):
        StepRetryConfig(**kwargs)


# -- Model -----------------------------------------------------------------------------------


def test_model_versions_names_numbers_and_stages() -> None:
    model = Model(name="customer_churn", version="Production", tags=["classification"])
    assert model.version == "production"
    assert model.version_stage == "production"
    assert model.tags == ("classification",)
    assert Model("churn", 3).version_number == 3
    assert Model("churn", "v1.2").version_stage is None
    data = model.to_dict()
    assert data["tags"] == ["classification"]
    assert Model.from_dict(data) == model


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "Model: name is required"),
        ({"name": ""}, "Model: name must be a non-empty string, got ''"),
        ({"name": "m", "version": 0}, "Model: version must be >= 1, got 0"),
        ({"name": "m", "version": True}, "Model: version must be .*got True"),
        ({"name": "m", "stage": "production"}, "Model: unknown field 'stage'"),
    ],
)
def test_model_rejects_bad_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Model(**kwargs)


# -- PipelineRunConfiguration ----------------------------------------------------------------


def test_run_configuration_unpacks_only_the_fields_that_were_set() -> None:
    def with_options(**options: Any) -> dict[str, Any]:
        return options

    run_config = PipelineRunConfiguration(enable_cache=False, run_name="experimental_run")
    assert with_options(**run_config) == {"enable_cache": False, "run_name": "experimental_run"}
    assert len(run_config) == 2
    assert run_config.enable_cache is False
    assert run_config.schedule is None  # not set reads as None
    assert "schedule" not in run_config
    assert dict(PipelineRunConfiguration(run_name=None, tags=None)) == {}  # None is "not set"


def test_run_configuration_converts_dicts_to_config_objects() -> None:
    config = PipelineRunConfiguration(
        schedule={"cron_expression": "0 2 * * *"},
        cache_policy="default",
        retry={"max_retries": 2},
        model={"name": "churn", "version": "staging"},
        settings={"docker": {"parent_image": "python:3.11"}},
        steps={"trainer": {"enable_cache": False, "parameters": {"lr": 0.1}}, "loader": None},
        execution_mode=_Mode.CONTINUE_ON_FAILURE,
        environment={"OMP_NUM_THREADS": 4},
        tags=("a", "b"),
    )
    assert config.schedule == Schedule(cron_expression="0 2 * * *")
    assert config.cache_policy == CachePolicy()
    assert config.retry == StepRetryConfig(max_retries=2)
    assert config.model == Model("churn", "staging")
    assert config.settings == {"docker": DockerSettings(parent_image="python:3.11")}
    assert config.execution_mode == "continue_on_failure"
    assert config.environment == {"OMP_NUM_THREADS": "4"}
    assert config.tags == ["a", "b"]
    assert config.steps is not None
    trainer = config.steps["trainer"]
    assert isinstance(trainer, StepConfigurationUpdate)
    assert dict(trainer) == {"enable_cache": False, "parameters": {"lr": 0.1}}
    assert dict(config.steps["loader"]) == {}
    data = config.to_dict()
    assert msgspec.json.decode(msgspec.json.encode(data)) == data
    assert PipelineRunConfiguration.from_dict(data) == config
    assert pickle.loads(pickle.dumps(config)) == config
    assert copy.deepcopy(config) == config


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"enable_cach": True}, r"unknown field 'enable_cach' \(did you mean 'enable_cache'\?\)"),
        ({"enable_cache": "no"}, "enable_cache must be true or false, got 'no'"),
        ({"run_name": ""}, "run_name must be a non-empty string, got ''"),
        ({"max_concurrency": 0}, "max_concurrency must be >= 1, got 0"),
        ({"execution_mode": "yolo"}, "execution_mode must be one of 'fail_fast'.*got 'yolo'"),
        ({"tags": "prod"}, "tags must be a list of strings, got 'prod'"),
        ({"parameters": [1]}, r"parameters must be a mapping, got \[1\]"),
        ({"environment": {"A": None}}, r"environment\['A'\] must be a string or number"),
        ({"schedule": 5}, "schedule must be a Schedule or a mapping, got 5"),
        ({"schedule": {"interval_second": -1}}, "Schedule: interval_second must be > 0, got -1"),
        ({"steps": ["trainer"]}, r"steps must be a mapping .*got \['trainer'\]"),
        ({"steps": {"t": {"timeout": 0}}}, r"steps\['t'\]: timeout must be > 0, got 0"),
        (
            {"steps": {"trainer": {"enable_cach": True}}},
            r"PipelineRunConfiguration.steps\['trainer'\]: unknown field 'enable_cach'",
        ),
    ],
)
def test_run_configuration_rejects_bad_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PipelineRunConfiguration(**kwargs)


def test_run_configuration_records_parameters_verbatim() -> None:
    when = dt.datetime(2024, 1, 1, tzinfo=UTC)
    config = PipelineRunConfiguration(parameters={"when": when}, schedule={"interval_second": 5})
    data = config.to_dict()
    assert data["parameters"] == {"when": when}  # msgspec encodes it canonically
    assert data["schedule"]["interval_second"] == 5.0
    assert msgspec.msgpack.decode(msgspec.msgpack.encode(data))["schedule"] == data["schedule"]


def test_run_configuration_is_read_only_and_replaceable() -> None:
    config = PipelineRunConfiguration(run_name="a", parameters={"x": 1})
    with pytest.raises(AttributeError, match=r"read-only"):
        config.run_name = "b"  # type: ignore[misc]
    assert dict(config.replace(run_name="b")) == {"run_name": "b", "parameters": {"x": 1}}
    assert dict(config.replace(run_name=None)) == {"parameters": {"x": 1}}
    assert repr(config) == "PipelineRunConfiguration(run_name='a', parameters={'x': 1})"
    assert config != {"run_name": "a", "parameters": {"x": 1}}


def test_run_configuration_merge_overrides_and_merges_mappings() -> None:
    base = PipelineRunConfiguration(
        run_name="a",
        enable_cache=True,
        parameters={"x": 1, "y": 2},
        steps={"trainer": {"parameters": {"lr": 0.1}, "enable_cache": True}},
    )
    merged = base.merged(
        {
            "enable_cache": False,
            "parameters": {"y": 3},
            "steps": {"trainer": {"enable_cache": False}},
        }
    )
    assert merged.run_name == "a"
    assert merged.enable_cache is False
    assert merged.parameters == {"x": 1, "y": 3}
    assert merged.steps is not None
    assert dict(merged.steps["trainer"]) == {"parameters": {"lr": 0.1}, "enable_cache": False}


# -- YAML files ------------------------------------------------------------------------------

GOOD_YAML = """\
run_name: nightly_{date}
enable_cache: false
parameters:
  name: Bob
tags: [nightly]
settings:
  docker:
    parent_image: python:3.11
environment:
  OMP_NUM_THREADS: 4
secrets: [aws_credentials]
execution_mode: stop_on_failure
schedule:
  cron_expression: "0 2 * * *"
  timezone: Europe/Paris
steps:
  trainer:
    parameters: {lr: 0.1}
    enable_cache: true
    retry: {max_retries: 3, delay: 1, backoff: 2}
    settings:
      executor: {kind: process}
"""


def _write(tmp_path: Path, text: str, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_from_yaml_loads_every_section(tmp_path: Path) -> None:
    config = PipelineRunConfiguration.from_yaml(_write(tmp_path, GOOD_YAML))
    assert config.run_name == "nightly_{date}"
    assert config.enable_cache is False
    assert config.parameters == {"name": "Bob"}
    assert config.environment == {"OMP_NUM_THREADS": "4"}
    assert config.execution_mode == "stop_on_failure"
    assert config.schedule == Schedule(cron_expression="0 2 * * *", timezone="Europe/Paris")
    assert config.steps is not None
    trainer = config.steps["trainer"]
    assert trainer.retry == StepRetryConfig(max_retries=3, delay=1, backoff=2)
    assert trainer.settings == {"executor": ExecutorSettings(kind="process")}
    assert "config_path" not in config


def test_from_yaml_empty_file_is_an_empty_configuration(tmp_path: Path) -> None:
    assert dict(PipelineRunConfiguration.from_yaml(_write(tmp_path, "# nothing\n"))) == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("run_name: x\nenable_cach: true\n", r"run.yaml:2: unknown key 'enable_cach'"),
        ("config_path: other.yaml\n", r"run.yaml:1: unknown key 'config_path'"),
        (
            "steps:\n  trainer:\n    parameters: {}\n    enable_cach: true\n",
            r"run.yaml:4: steps.trainer: unknown key 'enable_cach' \(did you mean",
        ),
        (
            "steps:\n  trainer:\n    enable_cache: 'yes'\n",
            r"run.yaml:3: steps.trainer: enable_cache must be true or false, got 'yes'",
        ),
        ("steps:\n  trainer: [1]\n", r"run.yaml:2: steps\['trainer'\] must be a Step"),
        ("run_name: x\nparameters: {a: [1, 2}\n", r"run.yaml:2: invalid YAML"),
        ("key: [unclosed\n", r"run.yaml:2: invalid YAML"),
        ("- a\n- b\n", r"run.yaml:1: expected a mapping .* got list"),
        ("max_concurrency: 0\n", r"run.yaml:1: max_concurrency must be >= 1, got 0"),
        (
            "schedule:\n  cron_expression: '61 * * * *'\n",
            r"run.yaml:1: Schedule: cron_expression '61 \* \* \* \*' is not a valid",
        ),
        (
            "settings:\n  dockr: {}\n",
            r"run.yaml:1: unknown settings key 'dockr' \(did you mean 'docker'\?\)",
        ),
    ],
)
def test_from_yaml_errors_name_file_line_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigurationError, match=message) as info:
        PipelineRunConfiguration.from_yaml(path)
    assert str(info.value).startswith(str(path))


def test_from_yaml_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"nope.yaml: configuration file not found"):
        PipelineRunConfiguration.from_yaml(tmp_path / "nope.yaml")


# -- settings --------------------------------------------------------------------------------


def test_docker_settings_fields_and_compact_dict() -> None:
    docker = DockerSettings(
        requirements=["tensorflow==2.13.0", "pandas"],
        parent_image="tensorflow/tensorflow:latest-gpu",
        environment={"A": 1},
        python_package_installer="uv",
    )
    assert docker.requirements == ("tensorflow==2.13.0", "pandas")
    assert docker.to_dict() == {
        "parent_image": "tensorflow/tensorflow:latest-gpu",
        "python_package_installer": "uv",
        "requirements": ["tensorflow==2.13.0", "pandas"],
        "environment": {"A": "1"},
    }
    assert DockerSettings.from_dict(docker.to_dict()) == docker
    assert DockerSettings(requirements=Path("requirements.txt")).requirements == "requirements.txt"
    assert DockerSettings().to_dict() == {}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"parent_imag": "x"}, r"DockerSettings: unknown field 'parent_imag' \(did you mean"),
        ({"skip_build": True}, "DockerSettings: skip_build=True needs a parent_image"),
        ({"apt_packages": "git"}, "DockerSettings: apt_packages must be a list of strings"),
        ({"python_package_installer": "conda"}, "python_package_installer must be one of"),
        ({"build_config": {"nope": 1}}, "DockerSettings.build_config: unknown field 'nope'"),
    ],
)
def test_docker_settings_rejects_bad_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        DockerSettings(**kwargs)


def test_resource_settings_memory() -> None:
    resources = ResourceSettings(cpu_count=2, memory="4GB")
    assert resources.get_memory("MB") == 4000.0
    assert ResourceSettings(memory="512MiB").get_memory("KiB") == 512 * 1024
    assert ResourceSettings().get_memory() is None
    assert ResourceSettings().empty
    assert not resources.empty
    assert resources.to_dict() == {"cpu_count": 2.0, "memory": "4GB"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"memory": "4 GB"}, "ResourceSettings: memory must be .*got '4 GB'"),
        ({"memory": 4}, "ResourceSettings: memory must be .*got 4"),
        ({"cpu_count": 0}, "ResourceSettings: cpu_count must be > 0, got 0"),
        ({"gpu_count": -1}, "ResourceSettings: gpu_count must be >= 0, got -1"),
        ({"gpus": 1}, "ResourceSettings: unknown field 'gpus'"),
    ],
)
def test_resource_settings_rejects_bad_values(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ResourceSettings(**kwargs)


def test_validate_settings_accepts_instances_and_dicts() -> None:
    recorded = validate_settings(
        {
            "docker": DockerSettings(parent_image="python:3.11"),
            "resources": {"memory": "4GB"},
            "executor": {"kind": "process", "max_workers": 4},
        },
        owner="pipeline 'training'",
    )
    assert recorded == {
        "docker": {"parent_image": "python:3.11"},
        "resources": {"memory": "4GB"},
        "executor": {"kind": "process", "max_workers": 4},
    }
    assert msgspec.json.decode(msgspec.json.encode(recorded)) == recorded
    assert validate_settings(None, owner="step 'a'") == {}


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"dockr": {}}, r"step 'trainer': unknown settings key 'dockr' \(did you mean"),
        ({"orchestrator": {}}, "step 'trainer': unknown settings key 'orchestrator'"),
        (
            {"docker": ResourceSettings()},
            r"settings\['docker'\] must be a DockerSettings or a",
        ),
        (
            {"executor": {"kind": "gpu"}},
            r"\['executor'\]: ExecutorSettings: kind must be one of",
        ),
        ({"executor": {}}, "ExecutorSettings: kind is required"),
        (
            {"resources": {"memory": "lots"}},
            r"\['resources'\]: ResourceSettings: memory must be",
        ),
        (["docker"], "settings must be a mapping"),
    ],
)
def test_validate_settings_rejects_bad_settings(settings: Any, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message) as info:
        validate_settings(settings, owner="step 'trainer'")
    assert "step 'trainer'" in str(info.value)


# -- import cost ------------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["config.py", "_settings.py", "_config_file.py"])
def test_heavy_libraries_are_imported_lazily(module: str) -> None:
    tree = ast.parse((ENGINE / module).read_text(encoding="utf-8"))
    top_level: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top_level.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            top_level.add(node.module.split(".")[0])
    assert not top_level & {"croniter", "yaml", "zoneinfo", "importlib", "difflib"}
