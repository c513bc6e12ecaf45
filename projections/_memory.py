"""How much memory this process may still take: what the rebuild's folding child is sized by.

Linux's MemAvailable (else the free memory), lowered to what the process's memory control group
leaves it (a container's limit, cgroup v1 or v2).
"""

from __future__ import annotations

import os
from pathlib import Path


def available_memory() -> int | None:
    """Bytes of memory this process may still take without swapping: Linux's MemAvailable
    (else the free memory), lowered to what the process's control group leaves (a container's
    limit); None if unknown."""
    found: int | None = None
    try:
        with open("/proc/meminfo", "rb") as f:
            for line in f:
                if line.startswith(b"MemAvailable:"):
                    found = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    if found is None:
        try:
            found = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, AttributeError):
            return None
    try:
        groups = Path("/proc/self/cgroup").read_text()
    except OSError:
        return found
    room = cgroup_room(groups, Path("/sys/fs/cgroup"))
    return found if room is None else min(found, room)


_NO_LIMIT = 1 << 60  # cgroup v1 writes "no limit" as a number near 2**63


def cgroup_room(groups: str, root: Path) -> int | None:
    """What the memory control group of a process whose ``/proc/self/cgroup`` reads ``groups``
    leaves it (limit minus usage, under ``root``: ``/sys/fs/cgroup``), or None without a limit
    (or when the files are not there)."""
    for line in groups.splitlines():
        number, controllers, path = [*line.split(":", 2), "", ""][:3]
        if number == "0" and controllers == "":  # v2: one hierarchy
            places = [
                (root / path.lstrip("/"), "memory.max", "memory.current"),
                (root, "memory.max", "memory.current"),
            ]
        elif "memory" in controllers.split(","):  # v1: the memory controller's hierarchy
            base = root / "memory"
            places = [
                (base / path.lstrip("/"), "memory.limit_in_bytes", "memory.usage_in_bytes"),
                (base, "memory.limit_in_bytes", "memory.usage_in_bytes"),
            ]
        else:
            continue
        for folder, limit_file, usage_file in places:
            try:
                limit = (folder / limit_file).read_text().strip()
                usage = int((folder / usage_file).read_text().strip())
            except (OSError, ValueError):
                continue
            if limit == "max" or not limit.isdigit() or int(limit) >= _NO_LIMIT:
                return None
            return max(0, int(limit) - usage)
    return None
