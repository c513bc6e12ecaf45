"""Hooks end to end: firing order from the event log for success, failure, retry and a failing
on_init; hook failures recorded without changing outcomes; signatures checked at definition."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from engine import (
    CachePolicy,
    Client,
    ExecutionStatus,
    PipelineRunFailedError,
    StepRetryConfig,
    get_pipeline_context,
    get_step_context,
    log_metadata,
    pipeline,
    step,
)
from engine.errors import HookSignatureError
from tests.pipelines import hooked

SKIP = {"artifact.stored", "metadata.logged", "step.ready"}


@pytest.fixture(autouse=True)
def _reset_calls() -> Iterator[None]:
    hooked.CALLS.clear()
    yield
    hooked.CALLS.clear()


def timeline(run: Any) -> list[str]:
    """The run's events as ``type:detail`` tokens (hooks as ``hook.x:kind@step|pipeline``)."""
    out = []
    for e in run.events():
        if e.type in SKIP:
            continue
        if e.type.startswith("hook."):
            out.append(f"{e.type}:{e.hook}@{e.step or 'pipeline'}")
        elif e.type.startswith("step."):
            out.append(f"{e.type}:{e.step}")
        else:
            out.append(e.type)
    return out


def fired(hook: str, where: str = "pipeline", outcome: str = "succeeded") -> list[str]:
    return [f"hook.started:{hook}@{where}", f"hook.{outcome}:{hook}@{where}"]


def hook_events(run: Any, kind: str) -> list[Any]:
    return [e for e in run.events() if e.type == kind]


# -- firing order -------------------------------------------------------------------------------


def test_success_fires_every_hook_once_in_order() -> None:
    calls: list[tuple[str, Any]] = []

    def on_start() -> None:
        ctx = get_step_context()
        calls.append(("on_start", (ctx.invocation_id, ctx.pipeline_state)))

    async def on_end(exception: BaseException | None) -> None:
        calls.append(("on_end", exception))

    def step_success() -> None:
        calls.append(("step_success", get_step_context().step_name))

    def run_success() -> None:
        calls.append(("run_success", get_pipeline_context().name))

    @step(enable_cache=False, on_start=on_start, on_end=on_end, on_success=step_success)
    def work() -> int:
        state = get_step_context().pipeline_state
        calls.append(("work", state))
        return int(state["base"])

    @pipeline(
        on_init="tests.pipelines.hooked.init_state_async",
        on_init_kwargs={"base": 5},
        on_success=run_success,
        on_failure="tests.pipelines.hooked:record_failure",
        on_cleanup="tests.pipelines.hooked.record_cleanup_async",
    )
    def hooked_ok() -> int:
        return work()

    run = hooked_ok()
    assert run.status is ExecutionStatus.COMPLETED
    assert run.steps["work"].output.load() == 5
    assert timeline(run) == [
        "run.created",
        "run.started",
        *fired("on_init"),
        "step.started:work",
        *fired("on_start", "work"),
        "step.succeeded:work",
        *fired("on_end", "work"),
        *fired("on_success", "work"),
        "run.succeeded",
        *fired("on_success"),
        *fired("on_cleanup"),
    ]
    state = {"base": 5, "label": "state"}
    assert calls == [
        ("on_start", ("work", state)),
        ("work", state),
        ("on_end", None),
        ("step_success", "work"),
        ("run_success", "hooked_ok"),
    ]
    assert hooked.CALLS == [("on_init", 5), ("on_cleanup", None)]
    names = {e.hook: e.name for e in hook_events(run, "hook.started") if e.step is None}
    assert names["on_init"] == "tests.pipelines.hooked:init_state_async"


def test_step_hooks_fire_only_after_the_triggering_event_is_committed() -> None:
    @step(enable_cache=False, on_start=lambda: None, on_end=lambda e: None)
    def first() -> int:
        return 1

    @step(enable_cache=False, on_success=lambda: None)
    def second(x: int) -> int:
        return x

    @pipeline(on_success=lambda: None, on_cleanup=lambda: None)
    def two() -> None:
        second(first())

    run = two()
    seq = {}
    for e in run.events():
        key = (e.type, getattr(e, "step", None), getattr(e, "hook", None))
        seq.setdefault(key, e.seq)
    assert seq[("step.started", "first", None)] < seq[("hook.started", "first", "on_start")]
    assert seq[("step.succeeded", "first", None)] < seq[("hook.started", "first", "on_end")]
    assert seq[("step.succeeded", "second", None)] < seq[("hook.started", "second", "on_success")]
    assert seq[("run.succeeded", None, None)] < seq[("hook.started", None, "on_success")]
    assert seq[("hook.succeeded", None, "on_success")] < seq[("hook.started", None, "on_cleanup")]
    assert max(e.seq for e in run.events()) == seq[("hook.succeeded", None, "on_cleanup")]


def test_failure_fires_failure_hooks_with_the_exception() -> None:
    calls: list[tuple[str, Any]] = []

    def on_end(exception: BaseException | None) -> None:
        calls.append(("on_end", repr(exception)))

    def step_failure(exception: BaseException) -> None:
        calls.append(("step_failure", repr(exception)))

    @step(enable_cache=False, on_end=on_end, on_failure=step_failure, on_success=lambda: None)
    def breaks() -> int:
        raise ValueError("broken step")

    @step(enable_cache=False, on_start=lambda: calls.append(("never", None)))
    def after_break(x: int) -> int:
        return x

    @pipeline(
        on_success="tests.pipelines.hooked.record_success",
        on_failure="tests.pipelines.hooked.record_failure",
        on_cleanup="tests.pipelines.hooked.record_cleanup_async",
    )
    def hooked_bad() -> None:
        after_break(breaks())

    with pytest.raises(PipelineRunFailedError) as excinfo:
        hooked_bad()
    run = excinfo.value.run
    assert timeline(run) == [
        "run.created",
        "run.started",
        "step.started:breaks",
        "step.failed:breaks",
        "step.skipped:after_break",
        *fired("on_end", "breaks"),
        *fired("on_failure", "breaks"),
        "run.failed",
        *fired("on_failure"),
        *fired("on_cleanup"),
    ]
    assert calls == [
        ("on_end", "ValueError('broken step')"),
        ("step_failure", "ValueError('broken step')"),
    ]
    assert hooked.CALLS == [
        ("on_failure", "ValueError: broken step"),
        ("on_cleanup", None),
    ]


def test_on_failure_without_an_exception_parameter_is_called_without_it() -> None:
    got: list[Any] = []

    def keyword_only(*, error: BaseException) -> None:
        got.append(("kw", type(error).__name__))

    @step(enable_cache=False, on_failure=keyword_only)
    def breaks() -> None:
        raise KeyError("k")

    @pipeline(on_failure="tests.pipelines.hooked.record_failure_without_argument")
    def quiet() -> None:
        breaks()

    with pytest.raises(PipelineRunFailedError):
        quiet()
    assert got == [("kw", "KeyError")]
    assert hooked.CALLS == [("on_failure", None)]


def test_retry_fires_start_once_and_outcome_hooks_after_the_last_attempt() -> None:
    attempts: list[int] = []

    @step(
        enable_cache=False,
        retry=StepRetryConfig(max_retries=2),
        on_start=lambda: None,
        on_end=lambda exception: None,
        on_success=lambda: None,
        on_failure=lambda exception: None,
    )
    def shaky() -> int:
        attempts.append(1)
        if len(attempts) < 3:
            raise RuntimeError("not yet")
        return 1

    @pipeline(on_success=lambda: None, on_failure=lambda: None)
    def retrying() -> None:
        shaky()

    run = retrying()
    assert timeline(run) == [
        "run.created",
        "run.started",
        "step.started:shaky",
        *fired("on_start", "shaky"),
        "step.failed:shaky",
        "step.retry_scheduled:shaky",
        "step.started:shaky",
        "step.failed:shaky",
        "step.retry_scheduled:shaky",
        "step.started:shaky",
        "step.succeeded:shaky",
        *fired("on_end", "shaky"),
        *fired("on_success", "shaky"),
        "run.succeeded",
        *fired("on_success"),
    ]


def test_failing_on_init_fails_the_run_before_any_step_and_cleanup_still_runs() -> None:
    def init() -> None:
        raise RuntimeError("cannot initialise")

    @step(enable_cache=False, on_start=lambda: None)
    def never() -> int:
        return 1

    @pipeline(
        on_init=init,
        on_success="tests.pipelines.hooked.record_success",
        on_failure="tests.pipelines.hooked.record_failure",
        on_cleanup="tests.pipelines.hooked.record_cleanup_async",
    )
    def doomed() -> None:
        never()

    with pytest.raises(PipelineRunFailedError) as excinfo:
        doomed()
    assert isinstance(excinfo.value.__cause__, RuntimeError)
    run = excinfo.value.run
    assert run.status is ExecutionStatus.FAILED
    assert "cannot initialise" in (run.error or "")
    assert run.steps["never"].status is ExecutionStatus.SKIPPED
    assert timeline(run) == [
        "run.created",
        "run.started",
        "hook.started:on_init@pipeline",
        "hook.failed:on_init@pipeline",
        "step.skipped:never",
        "run.failed",
        *fired("on_failure"),
        *fired("on_cleanup"),
    ]
    (failed,) = hook_events(run, "hook.failed")
    assert failed.error == "RuntimeError: cannot initialise"
    assert hooked.CALLS == [
        ("on_failure", "RuntimeError: cannot initialise"),
        ("on_cleanup", None),
    ]


def test_failing_on_init_error_message_does_not_blame_a_step() -> None:
    def init() -> None:
        raise RuntimeError("cannot initialise")

    @step(enable_cache=False)
    def never() -> int:
        return 1

    @pipeline(on_init=init)
    def doomed() -> None:
        never()

    with pytest.raises(PipelineRunFailedError) as excinfo:
        doomed()
    message = str(excinfo.value)
    assert "cannot initialise" in message
    assert "step None" not in message


def test_step_failure_hooks_fire_when_the_cache_key_fails() -> None:
    calls: list[str] = []

    @step(
        cache_policy=CachePolicy(cache_func="tests.pipelines.cached:unencodable"),
        on_end=lambda exception: calls.append(f"on_end:{type(exception).__name__}"),
        on_failure=lambda exception: calls.append(f"on_failure:{type(exception).__name__}"),
    )
    def unkeyable() -> int:
        return 1

    @pipeline(on_failure=lambda: calls.append("pipeline:on_failure"))
    def unkeyable_flow() -> None:
        unkeyable()

    with pytest.raises(PipelineRunFailedError):
        unkeyable_flow()
    assert calls == [
        "on_end:CacheKeyError",
        "on_failure:CacheKeyError",
        "pipeline:on_failure",
    ]


# -- failing hooks never change the outcome ------------------------------------------------------


def test_failing_hooks_are_recorded_and_change_nothing_on_success() -> None:
    @step(
        enable_cache=False,
        on_start="tests.pipelines.hooked.explode",
        on_end="tests.pipelines.hooked.explode",
        on_success="tests.pipelines.hooked.explode",
    )
    def fine() -> int:
        return 3

    @pipeline(
        on_success="tests.pipelines.hooked.explode",
        on_cleanup="tests.pipelines.hooked.explode",
    )
    def noisy() -> int:
        return fine()

    run = noisy()  # no exception
    assert run.status is ExecutionStatus.COMPLETED
    assert run.steps["fine"].status is ExecutionStatus.COMPLETED
    assert run.steps["fine"].output.load() == 3
    failed = hook_events(run, "hook.failed")
    assert [(e.hook, e.step) for e in failed] == [
        ("on_start", "fine"),
        ("on_end", "fine"),
        ("on_success", "fine"),
        ("on_success", None),
        ("on_cleanup", None),
    ]
    assert {e.error for e in failed} == {"RuntimeError: hook exploded on purpose"}
    assert all(e.name == "tests.pipelines.hooked:explode" for e in failed)
    assert hook_events(run, "hook.succeeded") == []


def test_failing_failure_hooks_keep_the_original_error() -> None:
    @step(enable_cache=False, on_failure="tests.pipelines.hooked.explode")
    def breaks() -> None:
        raise ValueError("the real error")

    @pipeline(
        on_failure="tests.pipelines.hooked.explode",
        on_cleanup="tests.pipelines.hooked.record_cleanup_async",
    )
    def noisy_failure() -> None:
        breaks()

    with pytest.raises(PipelineRunFailedError) as excinfo:
        noisy_failure()
    assert isinstance(excinfo.value.__cause__, ValueError)
    assert str(excinfo.value.__cause__) == "the real error"
    run = excinfo.value.run
    assert run.steps["breaks"].error == "the real error"
    assert len(hook_events(run, "hook.failed")) == 2
    assert hooked.CALLS == [("on_cleanup", None)]
    assert timeline(run)[-2:] == fired("on_cleanup")


# -- signatures are checked when the pipeline or step is defined ---------------------------------


def needs_two(a: Any, b: Any) -> None:
    return None


def needs_one(a: Any) -> None:
    return None


def no_args() -> None:
    return None


@pytest.mark.parametrize(
    ("kind", "hook"),
    [
        ("on_start", needs_one),
        ("on_success", needs_one),
        ("on_end", needs_two),
        ("on_failure", needs_two),
        ("on_failure", "tests.pipelines.hooked.no_such_hook"),
        ("on_success", "not a path"),
        ("on_start", 42),
    ],
)
def test_bad_step_hook_is_rejected_at_definition(kind: str, hook: Any) -> None:
    with pytest.raises(HookSignatureError) as excinfo:

        @step(**{kind: hook})
        def defined() -> None:
            return None

    assert kind in str(excinfo.value)
    assert "defined" in str(excinfo.value)


@pytest.mark.parametrize(
    ("options"),
    [
        {"on_success": needs_one},
        {"on_cleanup": needs_one},
        {"on_failure": needs_two},
        {"on_init": needs_one},
        {"on_init": no_args, "on_init_kwargs": {"unexpected": 1}},
        {"on_init": needs_two, "on_init_kwargs": {"a": 1}},
    ],
    ids=["success", "cleanup", "failure", "init-missing", "init-extra", "init-partial"],
)
def test_bad_pipeline_hook_is_rejected_at_definition(options: dict[str, Any]) -> None:
    kind = next(k for k in options if k != "on_init_kwargs")
    with pytest.raises(HookSignatureError) as excinfo:

        @pipeline(**options)
        def defined_pipeline() -> None:
            return None

    assert kind in str(excinfo.value)
    assert "defined_pipeline" in str(excinfo.value)


def test_bad_hooks_given_through_with_options_are_rejected_at_once() -> None:
    @step
    def plain() -> None:
        return None

    @pipeline
    def plain_pipeline() -> None:
        plain()

    with pytest.raises(HookSignatureError, match="on_end"):
        plain.with_options(on_end=needs_two)
    with pytest.raises(HookSignatureError, match="on_cleanup"):
        plain_pipeline.with_options(on_cleanup=needs_one)


def test_accepted_hook_signatures() -> None:
    def star(*args: Any) -> None:
        return None

    def optional(exception: BaseException | None = None, extra: int = 0) -> None:
        return None

    @step(on_end=star, on_failure=no_args, on_success=optional, on_start=star)
    def flexible() -> None:
        return None

    @pipeline(
        on_init=needs_two,
        on_init_kwargs={"a": 1, "b": 2},
        on_failure=optional,
        on_cleanup=star,
    )
    def flexible_pipeline() -> None:
        flexible()

    assert flexible_pipeline().status is ExecutionStatus.COMPLETED


# -- metadata logged by hooks -------------------------------------------------------------------


def test_metadata_logged_by_step_hooks_and_on_init_is_recorded() -> None:
    @step(enable_cache=False, on_success=lambda: log_metadata(metadata={"from_hook": 1}))
    def measured() -> int:
        return 1

    @pipeline(on_init=lambda: log_metadata(metadata={"from_init": 1}))
    def metered() -> None:
        measured()

    run = Client().get_pipeline_run(metered().id)
    assert run.steps["measured"].metadata == {"from_hook": 1}
    assert run.metadata == {"from_init": 1}


def test_metadata_logged_by_pipeline_outcome_hooks_is_recorded() -> None:
    @step(enable_cache=False)
    def plain() -> int:
        return 1

    @pipeline(on_success=lambda: log_metadata(metadata={"from_success": 1}))
    def metered() -> None:
        plain()

    run = Client().get_pipeline_run(metered().id)
    assert run.metadata == {"from_success": 1}
