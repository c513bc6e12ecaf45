"""Where evenflow keeps its files: ``$EVENFLOW_HOME`` (default ``~/.evenflow``).

Resolved when asked, never at import time, so tests and tools can point it elsewhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Home:
    """The files of one evenflow home directory."""

    root: Path

    @classmethod
    def resolve(cls, root: str | Path | None = None) -> Home:
        """The home at ``root``, else ``$EVENFLOW_HOME``, else ``~/.evenflow``."""
        if root is None:
            root = os.environ.get("EVENFLOW_HOME") or Path.home() / ".evenflow"
        return cls(Path(root).expanduser().absolute())

    @property
    def db(self) -> Path:
        """The event log (and its projections): ``evenflow.db``."""
        return self.root / "evenflow.db"

    @property
    def artifacts(self) -> Path:
        """The content-addressed artifact store."""
        return self.root / "artifacts"

    @property
    def logs(self) -> Path:
        """Captured step logs: ``logs/<run id>/<step>.log``."""
        return self.root / "logs"

    @property
    def secrets(self) -> Path:
        """The secret store: its own file (mode 0600), never part of the event log."""
        return self.root / "secrets.json"

    @property
    def leases(self) -> Path:
        """Per-run owner locks (crash detection)."""
        return self.root / "leases"
