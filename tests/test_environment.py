"""Per-step environment variables: merging, and the gate that keeps conflicting steps apart."""

from __future__ import annotations

import os
import random

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from engine._environment import EnvironmentGate, merge_environment

pytestmark = pytest.mark.anyio

KEYS = ("EVENFLOW_T_A", "EVENFLOW_T_B", "EVENFLOW_T_C")


@pytest.fixture(autouse=True)
def clean_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in KEYS:
        monkeypatch.delenv(key, raising=False)


# -- merging ------------------------------------------------------------------------------


def test_merge_precedence() -> None:
    assert merge_environment(None, None, None) == {}
    assert merge_environment({"A": "p", "B": "p"}, {"B": "s", "C": "s"}) == {
        "A": "p",
        "B": "s",
        "C": "s",
    }
    # A secret fills keys nobody set; an explicit environment entry wins over a secret.
    merged = merge_environment({"A": "p"}, {"B": "s"}, {"A": "secret", "B": "secret", "K": "k"})
    assert merged == {"A": "p", "B": "s", "K": "k"}


def test_merge_stringifies_and_copies() -> None:
    step = {"N": 4}
    merged = merge_environment(None, step)  # type: ignore[arg-type]
    assert merged == {"N": "4"}
    merged["N"] = "5"
    assert step == {"N": 4}


# -- the gate -----------------------------------------------------------------------------


async def test_empty_environment_is_a_no_op() -> None:
    gate = EnvironmentGate()
    before = dict(os.environ)
    async with gate.apply({}):
        assert dict(os.environ) == before
    assert gate.apply({}) is gate.apply({})  # one shared object: nothing allocated per step


async def test_sets_and_restores_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENFLOW_T_A", "original")
    gate = EnvironmentGate()
    async with gate.apply({"EVENFLOW_T_A": "1", "EVENFLOW_T_B": "2"}):
        assert os.environ["EVENFLOW_T_A"] == "1"
        assert os.environ["EVENFLOW_T_B"] == "2"
        assert gate.held == {"EVENFLOW_T_A": "1", "EVENFLOW_T_B": "2"}
    assert os.environ["EVENFLOW_T_A"] == "original"
    assert "EVENFLOW_T_B" not in os.environ
    assert gate.held == {}


async def test_overlapping_holders_restore_when_the_last_leaves(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EVENFLOW_T_A", "original")
    gate = EnvironmentGate()
    first = gate.apply({"EVENFLOW_T_A": "x"})
    second = gate.apply({"EVENFLOW_T_A": "x", "EVENFLOW_T_B": "y"})
    await first.__aenter__()
    await second.__aenter__()
    await first.__aexit__(None, None, None)  # leaves first; the second still holds A
    assert os.environ["EVENFLOW_T_A"] == "x"
    assert os.environ["EVENFLOW_T_B"] == "y"
    await second.__aexit__(None, None, None)
    assert os.environ["EVENFLOW_T_A"] == "original"
    assert "EVENFLOW_T_B" not in os.environ


async def test_exception_inside_restores(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENFLOW_T_B", "kept")
    gate = EnvironmentGate()
    with pytest.raises(RuntimeError, match="step failed"):
        async with gate.apply({"EVENFLOW_T_A": "1", "EVENFLOW_T_B": "2"}):
            raise RuntimeError("step failed")
    assert "EVENFLOW_T_A" not in os.environ
    assert os.environ["EVENFLOW_T_B"] == "kept"


async def test_cancellation_inside_restores() -> None:
    gate = EnvironmentGate()
    entered = anyio.Event()

    async def step() -> None:
        async with gate.apply({"EVENFLOW_T_A": "1"}):
            entered.set()
            await anyio.sleep_forever()

    async with anyio.create_task_group() as tg:
        tg.start_soon(step)
        await entered.wait()
        assert os.environ["EVENFLOW_T_A"] == "1"
        tg.cancel_scope.cancel()
    assert "EVENFLOW_T_A" not in os.environ
    assert gate.held == {}


async def test_invalid_name_is_rolled_back() -> None:
    gate = EnvironmentGate()
    with pytest.raises(ValueError, match="illegal environment variable name"):
        async with gate.apply({"EVENFLOW_T_A": "1", "BAD=NAME": "2"}):
            pass  # pragma: no cover
    assert "EVENFLOW_T_A" not in os.environ
    assert gate.held == {}


async def test_conflicting_values_never_overlap() -> None:
    gate = EnvironmentGate()
    a_in, release_a = anyio.Event(), anyio.Event()
    seen: list[tuple[str, str | None]] = []

    async def a() -> None:
        async with gate.apply({"EVENFLOW_T_A": "1"}):
            a_in.set()
            await release_a.wait()
            seen.append(("a", os.environ.get("EVENFLOW_T_A")))

    async def b() -> None:
        async with gate.apply({"EVENFLOW_T_A": "2"}):
            seen.append(("b", os.environ.get("EVENFLOW_T_A")))

    async with anyio.create_task_group() as tg:
        tg.start_soon(a)
        await a_in.wait()
        tg.start_soon(b)
        await anyio.wait_all_tasks_blocked()
        assert seen == []  # b waits while a holds a different value
        assert gate.waiting == 1
        release_a.set()
    assert seen == [("a", "1"), ("b", "2")]


async def test_agreeing_values_and_disjoint_keys_overlap() -> None:
    gate = EnvironmentGate()
    inside = 0
    peak = 0
    all_in = anyio.Event()
    envs = [
        {"EVENFLOW_T_A": "1"},
        {"EVENFLOW_T_A": "1", "EVENFLOW_T_B": "x"},
        {"EVENFLOW_T_C": "z"},
    ]

    async def step(env: dict[str, str]) -> None:
        nonlocal inside, peak
        async with gate.apply(env):
            inside += 1
            peak = max(peak, inside)
            if inside == len(envs):
                all_in.set()
            with anyio.fail_after(2):
                await all_in.wait()  # only returns if every step is inside at once
            assert {k: os.environ[k] for k in env} == env
            inside -= 1

    async with anyio.create_task_group() as tg:
        for env in envs:
            tg.start_soon(step, env)
    assert peak == len(envs)


async def test_waiting_step_is_not_starved_by_agreeing_newcomers() -> None:
    gate = EnvironmentGate()
    order: list[str] = []
    first_in, release_first = anyio.Event(), anyio.Event()

    async def holder() -> None:
        async with gate.apply({"EVENFLOW_T_A": "1"}):
            first_in.set()
            await release_first.wait()
            order.append("first")

    async def step(name: str, value: str) -> None:
        async with gate.apply({"EVENFLOW_T_A": value}):
            order.append(name)
            await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as tg:
        tg.start_soon(holder)
        await first_in.wait()
        tg.start_soon(step, "conflicting", "2")
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(step, "agreeing-late", "1")  # agrees with the holder, not the waiter
        await anyio.wait_all_tasks_blocked()
        assert order == []
        assert gate.waiting == 2
        release_first.set()
    assert order == ["first", "conflicting", "agreeing-late"]


async def test_cancelled_waiter_unblocks_those_behind_it() -> None:
    gate = EnvironmentGate()
    order: list[str] = []
    a_in, release_a = anyio.Event(), anyio.Event()

    async def a() -> None:
        async with gate.apply({"EVENFLOW_T_A": "1"}):
            a_in.set()
            await release_a.wait()

    async def b(scope_out: list[anyio.CancelScope]) -> None:
        with anyio.CancelScope() as scope:
            scope_out.append(scope)
            async with gate.apply({"EVENFLOW_T_A": "2", "EVENFLOW_T_B": "b"}):
                order.append("b")  # pragma: no cover

    async def c() -> None:
        async with gate.apply({"EVENFLOW_T_B": "c"}):
            order.append("c")

    scopes: list[anyio.CancelScope] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(a)
        await a_in.wait()
        tg.start_soon(b, scopes)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(c)  # c conflicts with the waiting b on B, so it queues behind it
        await anyio.wait_all_tasks_blocked()
        assert gate.waiting == 2
        scopes[0].cancel()  # b gives up: c may go although a still holds A
        await anyio.wait_all_tasks_blocked()
        assert order == ["c"]
        release_a.set()
    assert gate.waiting == 0


@pytest.mark.parametrize("seed", range(5))
async def test_random_steps_each_see_only_their_own_values(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENFLOW_T_C", "pre-existing")
    rng = random.Random(seed)
    gate = EnvironmentGate()
    active: list[dict[str, str]] = []
    violations: list[str] = []

    async def step(i: int, env: dict[str, str], pauses: int) -> None:
        async with gate.apply(env):
            for other in active:
                for key, value in env.items():
                    if other.get(key, value) != value:
                        violations.append(f"step {i} overlaps a holder of {key}={other[key]}")
            active.append(env)
            for _ in range(pauses):
                observed = {key: os.environ.get(key) for key in env}
                if observed != env:
                    violations.append(f"step {i} saw {observed}, expected {env}")
                await anyio.lowlevel.checkpoint()
            active.remove(env)

    async with anyio.create_task_group() as tg:
        for i in range(40):
            keys = rng.sample(KEYS, rng.randint(1, 2))
            env = {key: rng.choice("xyz") for key in keys}
            tg.start_soon(step, i, env, rng.randint(0, 4))
            if rng.random() < 0.3:
                await anyio.lowlevel.checkpoint()
    assert violations == []
    assert gate.held == {}
    assert gate.waiting == 0
    assert os.environ["EVENFLOW_T_C"] == "pre-existing"
    assert "EVENFLOW_T_A" not in os.environ


async def test_sync_code_in_a_worker_thread_sees_the_values() -> None:
    gate = EnvironmentGate()
    async with gate.apply({"EVENFLOW_T_A": "thread"}):
        value = await anyio.to_thread.run_sync(os.environ.get, "EVENFLOW_T_A")
    assert value == "thread"
