"""The composition root: one home's event store (with the projections registered inside its
transactions) and artifact store, opened together.

Nothing here is global: ``Engine.open()`` builds what a run needs from ``$EVENFLOW_HOME`` (or
the given home) and closes it on exit. Pass an open engine to ``run_async(engine=...)`` to share
one writer between many runs.
"""

from __future__ import annotations

import contextlib
import os
import random
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import anyio
import anyio.abc

from events import Durability, EventStore
from projections import Projector

from ._artifacts import INLINE_MAX, ArtifactStore
from ._environment import EnvironmentGate
from ._home import Home
from ._retry import Clock, SystemClock
from ._secrets import SecretStore
from .errors import ConfigurationError

PROCESS_ENV_GATE = EnvironmentGate()
"""The one gate for ``os.environ`` (process-wide state, so one gate for every engine)."""


def _durability(value: str | None) -> Durability:
    value = value or os.environ.get("EVENFLOW_DURABILITY") or "normal"
    if value not in ("normal", "full"):
        raise ConfigurationError(
            f"durability must be 'normal' or 'full', got {value!r} (EVENFLOW_DURABILITY)"
        )
    return cast(Durability, value)


def _inline_max() -> int:
    raw = os.environ.get("EVENFLOW_INLINE_MAX")
    if raw is None or raw == "":
        return INLINE_MAX
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if value < 0:
        raise ConfigurationError(
            f"EVENFLOW_INLINE_MAX must be a number of bytes >= 0 (0: always files), got {raw!r}"
        )
    return value


class Engine:
    """An open home: ``store`` (the event log), ``artifacts``, and this process's owner id."""

    def __init__(
        self,
        home: Home,
        store: EventStore,
        artifacts: ArtifactStore,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.home = home
        self.store = store
        self.artifacts = artifacts
        self.clock: Clock = clock or SystemClock()
        self.rng = rng or random.Random()
        # os.environ is process-wide: one gate per process serializes conflicting steps.
        self.env_gate = PROCESS_ENV_GATE
        self.secrets = SecretStore(home.secrets)
        self.owner_id = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls,
        home: str | Path | None = None,
        *,
        durability: str | None = None,
        clock: Clock | None = None,
    ) -> AsyncIterator[Engine]:
        """Open the home at ``home`` (default ``$EVENFLOW_HOME`` or ``~/.evenflow``).

        ``durability`` is ``"normal"`` (default) or ``"full"``; ``$EVENFLOW_DURABILITY`` sets
        the default.
        """
        resolved = Home.resolve(home)
        mode = _durability(durability)
        async with EventStore.open(resolved.db, durability=mode, hooks=[Projector()]) as store:
            artifacts = ArtifactStore(
                resolved.artifacts, fsync=mode == "full", inline_max=_inline_max()
            )
            yield cls(resolved, store, artifacts, clock=clock)

    async def serve(
        self, *, task_status: anyio.abc.TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Fire the schedules of this home until cancelled (what ``evenflow serve`` runs).

        Each due tick is claimed in the log (``schedule.triggered``) and its run started on
        this engine; schedules created, paused or deleted by other processes take effect
        within the log tail's latency. Use ``await tg.start(engine.serve)`` to wait until the
        schedules are loaded. See ``engine/_serve.py`` for the guarantees.
        """
        from ._serve import ScheduleService

        await ScheduleService(self).serve(task_status=task_status)
