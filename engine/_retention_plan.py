"""Planning a deletion: which runs, artifact versions and content files go (the *decide* of
decide, append, act; see ``engine._retention`` and ``docs/adr/0004-retention.md``).

Everything here only reads: the projections (runs, artifact rows) and the log (``step.cached``
and ``model.artifact_linked`` events, which say who else holds an artifact version).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import anyio

import projections
from events import ModelArtifactLinked, StepCached

from ._lease import live_owner
from .errors import RetentionError

if TYPE_CHECKING:
    from ._engine import Engine
    from ._home import Home

_PAGE = 5_000  # events read per query while looking for references


@dataclass(frozen=True, slots=True)
class DeletionReport:
    """What a deletion removed (or, for a dry run, would remove).

    Attributes:
        runs: the runs deleted, oldest first.
        artifacts: ids of the artifact versions removed with them.
        kept: ids of their artifact versions kept because a kept run or a model version uses
            them.
        uris: the content files removed (relative to the artifact store).
        bytes_freed: the size of those files on disk.
        logs: the runs' step log folders removed (``logs/<run id>``, relative to the home).
        log_bytes: the size of those folders.
        skipped: runs ``gc`` left alone because they have not finished.
        dry_run: nothing was changed.
        seq: the seq of the ``runs.deleted`` event (None when nothing was appended).
    """

    runs: list[projections.RunView] = field(default_factory=list)
    artifacts: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    uris: list[str] = field(default_factory=list)
    bytes_freed: int = 0
    logs: list[str] = field(default_factory=list)
    log_bytes: int = 0
    skipped: list[projections.RunView] = field(default_factory=list)
    dry_run: bool = False
    seq: int | None = None


def content_path(root: os.PathLike[str] | str, content_hash: str) -> str:
    return os.path.join(root, content_hash[:2], content_hash)


def is_content_hash(text: str) -> bool:
    """Whether ``text`` names a content file (64 hex digits), not an inline ``data:`` uri."""
    return len(text) == 64 and not text.strip("0123456789abcdef")


def logs_dir(home: Home, run_id: str) -> str | None:
    """``run_id``'s step log folder (``logs/<run id>``); None for an id that is not a plain
    file name (it could name a folder outside the run's own)."""
    if not run_id or run_id.startswith(".") or "/" in run_id or "\\" in run_id:
        return None
    return os.path.join(home.logs, run_id)


def _disk_size(path: str) -> int:
    """Bytes under ``path`` (a file or a directory); 0 when it is gone."""
    try:
        if not os.path.isdir(path) or os.path.islink(path):
            return os.stat(path).st_size
    except FileNotFoundError:
        return 0
    total = 0
    for folder, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except FileNotFoundError:
                pass
    return total


async def _holders(engine: Engine, deleting: set[str], candidates: set[str]) -> set[str]:
    """The candidate artifact ids that a kept run reuses (``step.cached``) or that a model
    version links (``model.artifact_linked``)."""
    store = engine.store
    held: set[str] = set()
    by_run: dict[str, set[str]] = {}
    for prefix in ("step.cached", "model.artifact_linked"):
        after = 0
        while True:
            page = await store.read_by_type(prefix, after_seq=after, limit=_PAGE)
            for rec in page:
                event = rec.event
                if isinstance(event, StepCached) and rec.stream not in deleting:
                    ids = candidates.intersection(ref.id for ref in event.outputs.values())
                    if ids:
                        by_run.setdefault(rec.stream, set()).update(ids)
                elif isinstance(event, ModelArtifactLinked) and event.artifact_id in candidates:
                    held.add(event.artifact_id)
            if len(page) < _PAGE:
                break
            after = page[-1].seq
    for run_id, ids in by_run.items():
        if not await _gone(engine, run_id):  # a run deleted before holds nothing
            held |= ids
    return held


async def _gone(engine: Engine, run_id: str) -> bool:
    return await engine.store.run_read(projections.get_run, run_id) is None


async def plan_deletion(engine: Engine, run_ids: Iterable[str]) -> tuple[DeletionReport, list[str]]:
    """The deletion of ``run_ids`` as it would happen now, and the content hashes to remove.

    Ids with no run (deleted meanwhile) are left out.

    Raises:
        RetentionError: a run has not finished.
    """
    store = engine.store
    runs: list[projections.RunView] = []
    for run_id in dict.fromkeys(run_ids):
        view = await store.run_read(projections.get_run, run_id)
        if view is None:
            continue
        if not view.status.is_finished:
            raise RetentionError(
                f"run {view.name!r} ({view.id}) is {view.status.value}: only finished runs can"
                " be deleted (cancel it, or wait for it to end)"
            )
        owner = live_owner(engine.home.leases, view.id)
        if owner is not None:  # a crashed run that another process is resuming right now
            raise RetentionError(
                f"run {view.name!r} ({view.id}) is being resumed (pid {owner.pid} on "
                f"{owner.host} holds its lease): only finished runs can be deleted"
            )
        runs.append(view)
    runs.sort(key=lambda r: (r.created_at, r.id))
    ids = [r.id for r in runs]
    deleting = set(ids)
    used = await store.run_read(projections.artifacts_of_runs, ids) if ids else []
    # Candidates: what these runs produced, and what they reuse from runs deleted before
    # (nothing else holds those any more once these runs go).
    owners = {a.run_id for a in used} - deleting
    gone = deleting | {run_id for run_id in owners if await _gone(engine, run_id)}
    produced = [a for a in used if a.run_id in gone]
    held = await _holders(engine, deleting, {a.id for a in produced}) if produced else set()
    removed = [a for a in produced if a.id not in held]
    removed_ids = {a.id for a in removed}
    # Content-addressed: a file goes only when no remaining artifact version has its content,
    # inline or not (the hash is what is shared). Small contents are inline in their reference
    # (``data:`` uris) and have no file, unless an earlier setting (EVENFLOW_INLINE_MAX) wrote
    # one for an equal content: that file goes with the content's last version, whichever.
    hashed = {a.content_hash for a in removed if is_content_hash(a.content_hash)}
    sharing = await store.run_read(projections.artifacts_with_content, sorted(hashed))
    unused = sorted(hashed.difference(a.content_hash for a in sharing if a.id not in removed_ids))
    root = engine.artifacts.root
    home = engine.home
    folders = [(run.id, logs_dir(home, run.id)) for run in runs]

    def on_disk() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        files = [
            (h, _disk_size(content_path(root, h)))
            for h in unused
            if os.path.lexists(content_path(root, h))
        ]
        logs = [
            (f"logs/{run_id}", _disk_size(path))
            for run_id, path in folders
            if path is not None and os.path.isdir(path)
        ]
        return files, logs

    files, logs = await anyio.to_thread.run_sync(on_disk)
    hashes = [h for h, _size in files]
    sizes = [size for _h, size in files]
    report = DeletionReport(
        runs=runs,
        artifacts=[a.id for a in removed],
        kept=[a.id for a in produced if a.id in held],
        uris=[f"{h[:2]}/{h}" for h in hashes],
        bytes_freed=sum(sizes),
        logs=[uri for uri, _size in logs],
        log_bytes=sum(size for _uri, size in logs),
        dry_run=True,
    )
    return report, hashes
