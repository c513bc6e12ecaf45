"""Per-step environment variables, applied to ``os.environ`` without leaking between steps.

Steps run in one process (on the event loop or in worker threads) and ``os.environ`` is
process-global, so two steps cannot each see their own value of one variable at the same time.
evenflow **serializes** them: :class:`EnvironmentGate` lets a step in only while every variable
it sets is either unset by the running steps or set by them to the *same* value. Steps whose
values agree, or whose keys are disjoint, still run concurrently. (Running conflicting steps in
subprocesses was the alternative; it would change how sync steps see module globals and
in-memory objects, and cost a process per step. Users who want that pick the process executor.)

What the gate guarantees, and what it does not:

* A step holding the gate sees its own value for each of its variables in ``os.environ``
  for the whole block; no concurrently admitted step has a different value for them.
* When the last holder of a variable leaves, the variable is put back exactly as it was
  before the first holder came (its old value, or removed if it did not exist), whether the
  block ended normally, by an exception or by cancellation.
* A step that does *not* set a variable may see a value another running step set for it;
  only conflicting settings are isolated.
* A sync step's thread abandoned after its timeout keeps running after the gate is released
  and may see the restored values.

Fairness: entrants are admitted in arrival order among those that conflict. A newcomer that
agrees with the running steps still waits if it conflicts with a step already waiting, so a
stream of agreeing steps cannot starve a waiting step; a waiter waits only for the holders and
earlier waiters it conflicts with.

Concurrency invariant: the gate's state and the variables it manages are changed only on the
event loop thread, in synchronous code between awaits, so no lock is needed; admission is a
hand-off (the releasing task applies the waiter's variables and then wakes it).
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping
from types import TracebackType

import anyio


def merge_environment(
    pipeline_env: Mapping[str, str] | None,
    step_env: Mapping[str, str] | None,
    secrets_env: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The variables a step runs with.

    Precedence: the step's ``environment`` over the pipeline's; secret values are added for
    the keys neither sets. An explicit ``environment`` entry wins over a secret with the same
    key: it is the more specific statement (written on the step or pipeline for this run),
    and this matches how a step's options override the pipeline's elsewhere. Values are
    converted with ``str``.

    Args:
        pipeline_env: The pipeline's ``environment``.
        step_env: The step's ``environment``.
        secrets_env: Keys and values of the step's (and pipeline's) secrets.

    Returns:
        A new dict; empty when nothing is set.
    """
    merged: dict[str, str] = {}
    if secrets_env:
        merged.update((k, str(v)) for k, v in secrets_env.items())
    if pipeline_env:
        merged.update((k, str(v)) for k, v in pipeline_env.items())
    if step_env:
        merged.update((k, str(v)) for k, v in step_env.items())
    return merged


class _Noop:
    """The context for an empty environment: nothing to wait for or change."""

    __slots__ = ()

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None


_NOOP = _Noop()


class _Entry:
    """One ``apply`` block: its variables, and (while queued) the event that admits it."""

    __slots__ = ("admitted", "env", "error", "event")

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.event: anyio.Event | None = None
        self.admitted = False
        self.error: BaseException | None = None  # setting the variables failed on admission


class _Slot:
    """A variable the gate has set: its value and how many blocks hold it."""

    __slots__ = ("count", "value")

    def __init__(self, value: str) -> None:
        self.value = value
        self.count = 1


def _conflicts(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    small, large = (a, b) if len(a) <= len(b) else (b, a)
    for key, value in small.items():
        other = large.get(key)
        if other is not None and other != value:
            return True
    return False


class _Applied:
    __slots__ = ("_entry", "_gate")

    def __init__(self, gate: EnvironmentGate, env: dict[str, str]) -> None:
        self._gate = gate
        self._entry = _Entry(env)

    async def __aenter__(self) -> None:
        await self._gate._enter(self._entry)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._gate._release(self._entry)


class EnvironmentGate:
    """Serializes steps whose environment variables conflict; see the module docstring.

    One gate per process is the only correct choice (``os.environ`` is per process); the
    engine builds it and passes it to every run. Use it from the event loop thread only.

    Example::

        async with gate.apply({"OMP_NUM_THREADS": "4"}):
            await run_the_step()
    """

    __slots__ = ("_held", "_saved", "_waiting")

    def __init__(self) -> None:
        # key -> its one current value and holder count; never two values for a key at once.
        self._held: dict[str, _Slot] = {}
        # key -> its value before the first holder set it (None: it did not exist).
        self._saved: dict[str, str | None] = {}
        self._waiting: deque[_Entry] = deque()

    def apply(self, env: Mapping[str, str]) -> _Noop | _Applied:
        """An async context manager that waits for a compatible moment, sets ``env`` in
        ``os.environ`` for the block, and restores what it changed when the block ends.

        An empty ``env`` neither waits nor changes anything.
        """
        if not env:
            return _NOOP
        return _Applied(self, dict(env))

    @property
    def held(self) -> dict[str, str]:
        """The variables currently set by the gate (a copy)."""
        return {key: slot.value for key, slot in self._held.items()}

    @property
    def waiting(self) -> int:
        """How many blocks are waiting to enter."""
        return len(self._waiting)

    # -- internals (event loop thread only; no await between a check and its action) --------

    def _compatible(self, env: Mapping[str, str]) -> bool:
        held = self._held
        for key, value in env.items():
            slot = held.get(key)
            if slot is not None and slot.value != value:
                return False
        return True

    async def _enter(self, entry: _Entry) -> None:
        waiting = self._waiting
        if self._compatible(entry.env) and not any(_conflicts(w.env, entry.env) for w in waiting):
            self._acquire(entry)
            return
        entry.event = anyio.Event()
        waiting.append(entry)
        try:
            await entry.event.wait()
        except BaseException:
            if entry.admitted:  # admitted and cancelled at once: give the variables back
                self._release(entry)
            elif entry.error is None:
                waiting.remove(entry)
                self._admit()  # its place in line may have held others back
            raise
        if entry.error is not None:
            raise entry.error

    def _acquire(self, entry: _Entry) -> None:
        held, saved, environ = self._held, self._saved, os.environ
        done: list[str] = []
        try:
            for key, value in entry.env.items():
                slot = held.get(key)
                if slot is None:
                    saved[key] = environ.get(key)
                    held[key] = _Slot(value)
                    done.append(key)  # before the write: a failed write is rolled back too
                    environ[key] = value
                else:
                    slot.count += 1
                    done.append(key)
        except BaseException:
            self._drop(done)
            raise
        entry.admitted = True

    def _release(self, entry: _Entry) -> None:
        if not entry.admitted:
            return
        entry.admitted = False
        self._drop(list(entry.env))
        if self._waiting:
            self._admit()

    def _drop(self, keys: list[str]) -> None:
        held, saved, environ = self._held, self._saved, os.environ
        for key in keys:
            slot = held[key]
            slot.count -= 1
            if slot.count:
                continue
            del held[key]
            old = saved.pop(key)
            if old is None:
                environ.pop(key, None)
            else:
                environ[key] = old

    def _admit(self) -> None:
        """Admit, in arrival order, every waiter compatible with the holders and with every
        earlier waiter still in line."""
        blocked: list[_Entry] = []
        for entry in list(self._waiting):
            if self._compatible(entry.env) and not any(
                _conflicts(b.env, entry.env) for b in blocked
            ):
                self._waiting.remove(entry)
                try:
                    self._acquire(entry)
                except Exception as exc:  # an invalid name: the waiter raises it, not us
                    entry.error = exc
                assert entry.event is not None
                entry.event.set()
            else:
                blocked.append(entry)


__all__ = ["EnvironmentGate", "merge_environment"]
