"""Retention: deleting finished runs, and the artifacts only they used, as one audited event.

Decide, append, then act (``docs/adr/0004-retention.md``):

1. *Decide* from the projections and the log which runs go, which of their artifact versions go
   with them (not those a kept run reuses through a cache hit, nor those a model version links)
   and which content files are then unreferenced (content is shared: equal bytes are one file).
2. *Append* one ``runs.deleted`` event to the ``retention`` stream, with ``expected_version``,
   so two concurrent deletions never both decide on a stale view (the loser plans again). The
   projections drop the runs' rows inside that transaction. The runs' own events stay in the
   log: it is append-only and hash-chained, and ``audit verify`` still passes.
3. *Act*: remove the content files and the runs' step logs (``logs/<run id>/``). A crash
   between 2 and 3 leaves files no row refers to; :func:`collect_garbage` removes them the next
   time (it re-checks every file a ``runs.deleted`` listed, and the log folder of every run one
   deleted).

Only finished runs are deleted; asking to delete a live one raises :class:`RetentionError`
(``gc`` skips them and says so).
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, TypeVar

import anyio

import projections
from events import ConcurrencyError, RunsDeleted

from ._lease import live_owner
from ._retention_plan import DeletionReport as DeletionReport
from ._retention_plan import content_path, is_content_hash, logs_dir, plan_deletion
from .errors import ArtifactError

if TYPE_CHECKING:
    from ._artifacts import ArtifactStore
    from ._engine import Engine
    from ._home import Home

T = TypeVar("T")

RETENTION_STREAM = "retention"
"""The stream ``runs.deleted`` events are appended to."""

_DAY = 86_400.0
_ATTEMPTS = 5  # plans made before giving up on concurrent deletions


def current_actor() -> str:
    """Who is deleting: ``user@host pid N`` (recorded in the event, never a secret)."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no name for this uid (containers)
        user = str(os.getuid()) if hasattr(os, "getuid") else "unknown"
    return f"{user}@{socket.gethostname()} pid {os.getpid()}"


def _remove_logs(home: Home, run_ids: Iterable[str]) -> list[str]:
    """Remove the runs' step log folders; the ``logs/<run id>`` of those that were there.

    Raises:
        OSError: a folder could not be removed.
    """
    removed: list[str] = []
    for run_id in run_ids:
        path = logs_dir(home, run_id)
        if path is None or not os.path.isdir(path):
            continue
        shutil.rmtree(path)
        removed.append(f"logs/{run_id}")
    return removed


def _remove(
    artifacts: ArtifactStore, hashes: Sequence[str], home: Home, run_ids: Sequence[str], seq: int
) -> None:
    for content_hash in hashes:
        try:
            artifacts.delete(content_hash)
        except ArtifactError as exc:
            raise ArtifactError(
                f"the runs were deleted (event seq {seq}), but {exc}; `evenflow gc` retries"
            ) from exc
    try:
        _remove_logs(home, run_ids)
    except OSError as exc:
        raise ArtifactError(
            f"the runs were deleted (event seq {seq}), but a step log folder could not be"
            f" removed: {exc}; `evenflow gc` retries"
        ) from exc


def _forget_cache_hits(engine: Engine, run_ids: set[str]) -> None:
    """This process's memory of recent cache entries must not serve the deleted runs' outputs
    (other processes read cache entries from the projections, which no longer have them)."""
    from ._caching import SHARED

    db = str(engine.home.db)
    stale = [key for key, e in SHARED.recent.items() if key[0] == db and e.run_id in run_ids]
    for key in stale:
        del SHARED.recent[key]


async def delete_runs(
    engine: Engine,
    run_ids: Iterable[str],
    *,
    reason: str = "",
    actor: str | None = None,
    dry_run: bool = False,
) -> DeletionReport:
    """Delete finished runs and the artifacts only they use (see the module docstring).

    Args:
        engine: the open home.
        run_ids: exact run ids (resolve names and prefixes first); ids with no run are ignored.
        reason: why, recorded in the event.
        actor: who, recorded in the event (default ``user@host pid N``).
        dry_run: only report what would be removed.

    Raises:
        RetentionError: a run has not finished (nothing is deleted).
        ConcurrencyError: other deletions kept committing first, five times in a row.
    """
    wanted = list(run_ids)
    conflict: ConcurrencyError | None = None
    for _ in range(_ATTEMPTS):
        version = await engine.store.stream_version(RETENTION_STREAM)
        plan, hashes = await plan_deletion(engine, wanted)
        if dry_run:
            return plan
        if not plan.runs:
            return DeletionReport()
        event = RunsDeleted(
            run_ids=[r.id for r in plan.runs],
            artifacts=plan.artifacts,
            reason=reason,
            uris=plan.uris,
            bytes_freed=plan.bytes_freed,
            actor=actor if actor is not None else current_actor(),
        )
        try:
            [seq] = await engine.store.append(RETENTION_STREAM, [event], version)
        except ConcurrencyError as exc:
            conflict = exc  # another deletion committed since we read: plan again
            continue
        _forget_cache_hits(engine, set(event.run_ids))
        await anyio.to_thread.run_sync(
            _remove, engine.artifacts, hashes, engine.home, event.run_ids, seq
        )
        return DeletionReport(
            runs=plan.runs,
            artifacts=plan.artifacts,
            kept=plan.kept,
            uris=plan.uris,
            bytes_freed=plan.bytes_freed,
            logs=plan.logs,
            log_bytes=plan.log_bytes,
            seq=seq,
        )
    assert conflict is not None
    raise conflict


async def _sweep(engine: Engine) -> tuple[list[str], list[str]]:
    """Remove files earlier deletions decided on but did not get to (a crash between the commit
    and the removal); a file an artifact version uses again is left alone. Returns the content
    files and the step log folders removed."""
    listed: set[str] = set()
    deleted_runs: set[str] = set()
    for rec in await engine.store.read_stream(RETENTION_STREAM):
        if isinstance(rec.event, RunsDeleted):
            hashes = (uri.rsplit("/", 1)[-1] for uri in rec.event.uris)
            listed.update(h for h in hashes if is_content_hash(h))
            deleted_runs.update(rec.event.run_ids)
    root = engine.artifacts.root
    present = await anyio.to_thread.run_sync(
        lambda: [h for h in sorted(listed) if os.path.lexists(content_path(root, h))]
    )
    orphans: list[str] = []
    if present:
        used = await engine.store.run_read(projections.artifacts_with_content, present)
        orphans = sorted(set(present).difference(a.content_hash for a in used))
        await anyio.to_thread.run_sync(lambda: [engine.artifacts.delete(h) for h in orphans])
    logs = await anyio.to_thread.run_sync(_remove_logs, engine.home, sorted(deleted_runs))
    return [f"{h[:2]}/{h}" for h in orphans], logs


async def collect_garbage(
    engine: Engine,
    older_than_days: float,
    *,
    dry_run: bool = False,
    reason: str | None = None,
    now: float | None = None,
) -> DeletionReport:
    """Delete every finished run created more than ``older_than_days`` days ago.

    Runs that have not finished are skipped (listed in ``skipped``). Files and step log
    folders earlier deletions left behind are removed too (and listed in ``uris`` and
    ``logs``).

    Raises:
        ValueError: ``older_than_days`` is negative.
    """
    if older_than_days < 0:
        raise ValueError(f"older_than_days must be >= 0, got {older_than_days}")
    cutoff = (time.time() if now is None else now) - older_than_days * _DAY
    old = await engine.store.run_read(projections.runs_created_before, cutoff)
    leases = engine.home.leases
    done = {r.id for r in old if r.status.is_finished and live_owner(leases, r.id) is None}
    finished = [r.id for r in old if r.id in done]
    skipped = [r for r in old if r.id not in done]  # running, or being resumed
    why = reason if reason is not None else f"gc --older-than {older_than_days:g} days"
    report = await delete_runs(engine, finished, reason=why, dry_run=dry_run)
    swept, swept_logs = ([], []) if dry_run else await _sweep(engine)
    return DeletionReport(
        runs=report.runs,
        artifacts=report.artifacts,
        kept=report.kept,
        uris=[*report.uris, *(u for u in swept if u not in report.uris)],
        bytes_freed=report.bytes_freed,
        logs=[*report.logs, *(u for u in swept_logs if u not in report.logs)],
        log_bytes=report.log_bytes,
        skipped=skipped,
        dry_run=dry_run,
        seq=report.seq,
    )
