"""Run leases: which process owns a run, kept outside the event log.

The owner of a run holds an exclusive ``flock`` on ``$EVENFLOW_HOME/leases/<run_id>.lease`` for
as long as it drives the run, and rewrites the file's heartbeat every few seconds. The kernel
drops the lock when the process dies (``kill -9`` included), so on this machine a dead owner is
seen at once: the lock can be taken. An owner on another machine (a home on a shared disk,
where ``flock`` does not reach) is considered gone once its heartbeat is older than
:data:`LEASE_TTL`.

The lease is taken before ``run.created`` is appended and released after the run's terminal
event, so a run without a terminal event and without a live lease is a crashed run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from .errors import RunResumeError

HEARTBEAT_EVERY = 5.0
"""Seconds between heartbeats."""
LEASE_TTL = 30.0
"""Seconds after its last heartbeat that a lease held from another machine expires."""


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """What a lease file says about its owner."""

    owner: str
    pid: int
    host: str
    heartbeat: float


def lease_path(leases: Path, run_id: str) -> Path:
    return leases / f"{run_id}.lease"


def _read(fd: int) -> LeaseInfo | None:
    try:
        raw = os.pread(fd, 4096, 0)
        data = json.loads(raw) if raw else None
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    return LeaseInfo(
        str(data.get("owner", "")),
        int(data.get("pid", 0)),
        str(data.get("host", "")),
        float(data.get("heartbeat", 0.0)),
    )


class Lease:
    """This process's claim on one run; :meth:`acquire` it, :meth:`beat`, :meth:`release`."""

    def __init__(self, path: Path, fd: int, owner: str) -> None:
        self.path = path
        self._fd: int | None = fd
        self.owner = owner
        self.host = socket.gethostname()
        self.last_beat = 0.0

    @classmethod
    def acquire(cls, leases: Path, run_id: str, owner: str) -> Lease:
        """Take the run's lease, or raise :class:`RunResumeError` naming the live owner."""
        leases.mkdir(parents=True, exist_ok=True)
        path = lease_path(leases, run_id)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            info = _read(fd)
            os.close(fd)
            who = f"pid {info.pid} on {info.host}" if info else "another process"
            raise RunResumeError(f"run {run_id} is still running ({who} holds its lease)") from None
        info = _read(fd)
        if info is not None and _remote_and_fresh(info):
            os.close(fd)
            raise RunResumeError(
                f"run {run_id} is still running (pid {info.pid} on {info.host}; its lease "
                f"expires {LEASE_TTL:.0f} s after its last heartbeat)"
            )
        lease = cls(path, fd, owner)
        lease.beat()
        return lease

    def beat(self) -> None:
        """Rewrite the heartbeat (cheap: one small write, no fsync)."""
        if self._fd is None:
            return
        now = time.time()
        data = json.dumps(
            {"owner": self.owner, "pid": os.getpid(), "host": self.host, "heartbeat": now}
        ).encode()
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, data, 0)
        self.last_beat = now

    def release(self) -> None:
        """Drop the lease (after the run's terminal event is committed)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        os.close(fd)  # closing drops the lock


def _remote_and_fresh(info: LeaseInfo) -> bool:
    return info.host != socket.gethostname() and time.time() - info.heartbeat < LEASE_TTL


def live_owner(leases: Path, run_id: str) -> LeaseInfo | None:
    """The live owner of ``run_id``'s lease, or None when nobody holds it (owner gone)."""
    path = lease_path(leases, run_id)
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        info = _read(fd)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return info or LeaseInfo("", 0, "", 0.0)
        fcntl.flock(fd, fcntl.LOCK_UN)
        if info is not None and _remote_and_fresh(info):
            return info
        return None
    finally:
        os.close(fd)
