"""Step caching for one run: compute each ready step's key, find a reusable earlier result.

The run's cache entries (``cache_entries`` projection rows for the plan's step names) are read
once when the run starts, so a lookup inside the run loop's synchronous decision is a dict
lookup: a fully cached chain resolves in one decision and one commit. A hit is used only if it
has not expired and every output file still exists (a cache entry whose artifacts are gone is a
miss, not a crash).

Single flight: while a step with key K runs, other runs in this process that need K wait for it
and then record ``step.cached``. That needs one table shared by the runs of a process (keyed by
database and cache key); it is the only process-wide state evenflow keeps. Runs in other
processes do not wait for each other; they may both compute K (documented).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from events import AnyEvent, ArtifactRef, StepCached
from projections import CacheEntry

from ._cache_key import KeyTemplate, code_fingerprint, inputs_from_refs, is_expired
from ._retry import Clock

if TYPE_CHECKING:
    from ._artifacts import ArtifactStore
    from ._run import RunLoop
    from ._run_plan import _Node

_RECENT_MAX = 65_536


@dataclass(slots=True)
class Hit:
    """A usable cache entry: the ``step.cached`` event and the outputs it reuses."""

    event: AnyEvent
    outputs: dict[str, ArtifactRef]


class Flight:
    """A cache key a run of this process is computing. Runs wait for it on their own event
    loops, which may be other threads' (a pipeline called from several threads at once): an
    asyncio or anyio event belongs to one loop, and a second loop waiting on it fails.

    Cheaper to make than an ``anyio.Event`` (one is made per step that misses the cache).
    """

    __slots__ = ("_done", "_lock", "_waiters")

    def __init__(self) -> None:
        self._done = False
        self._lock = threading.Lock()
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def set(self) -> None:
        """Mark it computed (or abandoned) and wake every waiter, on its own loop."""
        with self._lock:
            self._done = True
            waiters, self._waiters = self._waiters, []
        if not waiters:
            return  # the common case: nobody waited
        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        for loop, future in waiters:
            if loop is here:
                _wake(future)
            else:
                with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits
                    loop.call_soon_threadsafe(_wake, future)

    async def wait(self) -> None:
        """Return once :meth:`set` was called (at once if it was already)."""
        with self._lock:
            if self._done:
                return
            loop = asyncio.get_running_loop()
            future: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, future))
        await future


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():  # not cancelled meanwhile
        future.set_result(None)


@dataclass(slots=True)
class Wait:
    """Another run in this process is computing the same key right now."""

    key: str
    done: Flight


class _Shared:
    """Keys being computed, and entries recorded, by the runs of this process (on any thread)."""

    def __init__(self) -> None:
        self.inflight: dict[tuple[str, str], Flight] = {}
        self.recent: OrderedDict[tuple[str, str], CacheEntry] = OrderedDict()

    def remember(self, db: str, entry: CacheEntry) -> None:
        self.recent[(db, entry.cache_key)] = entry
        while len(self.recent) > _RECENT_MAX:
            self.recent.popitem(last=False)


SHARED = _Shared()


def _enabled(
    run_setting: bool | None, step_setting: bool | None, pipeline_setting: bool | None
) -> bool:
    """Run-level False (with_options, PipelineRunConfiguration, YAML) turns caching off; else
    the step's value, else the run's, else the pipeline decorator's, else True."""
    if run_setting is False:
        return False
    for setting in (step_setting, run_setting, pipeline_setting):
        if setting is not None:
            return setting
    return True


class RunCache:
    """Cache decisions for one run (built by the pipeline before the run starts)."""

    def __init__(
        self,
        db: str,
        entries: dict[str, CacheEntry],
        artifacts: ArtifactStore,
        clock: Clock,
        *,
        run_enable: bool | None,
        policy: Any,
        pipeline_enable: bool | None = None,
    ) -> None:
        self.db = db
        self.entries = entries
        self.artifacts = artifacts
        self.clock = clock
        self.run_enable = run_enable
        self.pipeline_enable = pipeline_enable
        self.policy = policy
        self.owned: dict[str, Flight] = {}  # keys this run computes, and their flights
        self._templates: dict[int, tuple[Any, Any, KeyTemplate]] = {}

    def _policy(self, node: _Node) -> Any:
        return node.inv.step.options.cache_policy or self.policy

    def _template(self, loop: RunLoop, step: Any, policy: Any) -> KeyTemplate:
        """What a step's key takes from the step itself (the same for all its invocations in a
        run), encoded once per step and run."""
        found = self._templates.get(id(step))
        if found is None or found[0] is not step or found[1] is not policy:
            include_code = policy is None or getattr(policy, "include_step_code", True)
            template = KeyTemplate(
                step.name,
                code_fingerprint(step.entrypoint) if include_code else "",
                {**loop.plan.environment, **(step.options.environment or {})},
                sorted({*loop.plan.secrets, *(step.options.secrets or ())}),
                step.spec_config().get("materializers", {}),
                policy,
            )
            found = (step, policy, template)
            self._templates[id(step)] = found
        return found[2]

    def key(self, loop: RunLoop, node: _Node) -> str:
        inv = node.inv
        produced = loop.produced
        refs: dict[str, Any] = {}
        for name, ref in inv.inputs.items():
            if isinstance(ref, list):
                refs[name] = [produced[r.step][r.output] for r in ref]
            else:
                refs[name] = produced[ref.step][ref.output]
        hashes, ids = inputs_from_refs(refs)
        template = self._template(loop, inv.step, self._policy(node))
        return template.key(inv.parameters, hashes, ids)

    def _usable(self, entry: CacheEntry, node: _Node) -> bool:
        if is_expired(entry.created_at, self.clock.now(), self._policy(node)):
            return False
        # The step must still declare the outputs the entry holds (a key that leaves the code
        # out does not see a step that now returns more, or other, outputs).
        outputs = node.inv.step.signature.outputs
        if len(outputs) != len(entry.outputs) or any(o.name not in entry.outputs for o in outputs):
            return False
        return all(self.artifacts.exists(ref) for ref in entry.outputs.values())

    def lookup(self, loop: RunLoop, node: _Node) -> Hit | Wait | None:
        """A hit, a key another run is computing, or None (then ``node.cache_key`` is set and
        this run owns the key until :meth:`record` or :meth:`release`)."""
        step_setting = node.inv.step.options.enable_cache
        if not _enabled(self.run_enable, step_setting, self.pipeline_enable):
            return None
        key = self.key(loop, node)
        entry = SHARED.recent.get((self.db, key)) or self.entries.get(key)
        if entry is not None and self._usable(entry, node):
            return Hit(
                StepCached(
                    step=node.id,
                    cache_key=key,
                    source_run=entry.run_id,
                    source_step=entry.step_id,
                    outputs=entry.outputs,
                ),
                dict(entry.outputs),
            )
        mine = Flight()
        # setdefault: one atomic step, so that runs on two threads never both own the key.
        flight = SHARED.inflight.setdefault((self.db, key), mine)
        if flight is not mine:  # another run, or another step of this run, computes it
            return Wait(key, flight)
        self.owned[key] = mine
        node.cache_key = key
        return None

    def record(self, key: str, run_id: str, node: _Node, refs: dict[str, ArtifactRef]) -> None:
        """The step computing ``key`` succeeded: its outputs serve later lookups."""
        entry = CacheEntry(key, run_id, node.id, node.inv.step.name, self.clock.now(), dict(refs))
        self.entries[key] = entry
        SHARED.remember(self.db, entry)
        self.release(key)

    def release(self, key: str) -> None:
        """Stop owning ``key`` (computed, failed or cancelled): wake the runs waiting for it."""
        flight = self.owned.pop(key, None)
        if flight is not None:
            if SHARED.inflight.get((self.db, key)) is flight:
                SHARED.inflight.pop((self.db, key), None)
            flight.set()

    def release_all(self) -> None:
        for key in list(self.owned):
            self.release(key)
