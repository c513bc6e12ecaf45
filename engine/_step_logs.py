"""Step logs: what each step attempt prints and logs, in a file of its own beside the artifacts.

``$EVENFLOW_HOME/logs/<run id>/<step>.log`` holds every attempt of one step, appended in order;
an attempt after the first starts with a ``--- attempt N ---`` line. The file is created on the
first byte a step writes (a silent step leaves no file and no event) and written line by line,
so ``evenflow logs --follow`` streams a running step. When an attempt ends, its outcome's batch
carries a ``step.logs`` event with the file's uri (relative to the home) and its size in bytes.

Capture is on unless ``enable_step_logs=False``; the step's option wins over the pipeline's (and
a run's ``with_options`` over the decorator's, as for every option). How output reaches the file
is :mod:`engine._log_capture`'s business: routed by context, so concurrent steps never mix
(``docs/adr/0007-step-logs.md``).
"""

from __future__ import annotations

import contextvars
import hashlib
import logging
import os
import re
import threading
from pathlib import Path
from typing import Any, TextIO

from events import AnyEvent, StepLogs

from ._home import Home
from ._log import get_logger
from ._log_capture import SINK, format_record, install

log = get_logger("evenflow.logs")

_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def log_uri(run_id: str, step: str) -> str:
    """Where step ``step`` of run ``run_id`` keeps its log, relative to the home.

    An invocation id that is not a plain file name gets its unsafe characters replaced and a
    short hash of the id appended, so two ids never share a file.
    """
    name = _UNSAFE.sub("_", step)
    if name != step or name.startswith("."):
        name = f"{name}-{hashlib.sha256(step.encode()).hexdigest()[:8]}"
    return f"logs/{run_id}/{name}.log"


def log_path(home: Home, uri: str) -> Path:
    """The file of a log ``uri`` (as :func:`log_uri` makes it, or a ``step.logs`` names it).

    Raises:
        ValueError: the uri would leave the home's ``logs`` directory.
    """
    parts = uri.split("/")
    if os.path.isabs(uri) or "\\" in uri or ".." in parts or parts[0] != "logs":
        raise ValueError(f"invalid step log uri {uri!r}")
    return home.root.joinpath(*parts)


def read_log(home: Home, uri: str, offset: int = 0) -> bytes:
    """The bytes of a step log from ``offset`` on (empty when there is no such file)."""
    try:
        with open(log_path(home, uri), "rb") as f:
            f.seek(offset)
            return f.read()
    except FileNotFoundError:
        return b""


class StepLogFile:
    """The sink of one step attempt: its log file, opened on the first write.

    Written from the step's task or thread and from threads it hands work to, so writes are
    serialized by a lock (re-entrant: a failed write logs a warning, which comes back here).
    After :meth:`close` writes are dropped: a timed-out sync step's thread cannot be stopped
    and may keep printing, but its attempt is over.
    """

    __slots__ = ("_closed", "_file", "_lock", "_run_id", "_step", "attempt", "home")

    def __init__(self, home: Home, run_id: str, step: str, attempt: int) -> None:
        self.home = home
        self._run_id = run_id
        self._step = step
        self.attempt = attempt
        self._file: TextIO | None = None
        self._closed = False
        self._lock = threading.RLock()

    def write(self, text: str) -> None:
        if not text:
            return
        with self._lock:
            if self._closed:
                return
            try:
                f = self._file if self._file is not None else self._open()
                f.write(text)
            except (OSError, ValueError) as exc:  # never fail the step over its log
                self._closed = True
                log.warning("step_log_unwritable", uri=self.uri, error=str(exc))

    @property
    def uri(self) -> str:
        return log_uri(self._run_id, self._step)  # on demand: most steps print nothing

    def write_record(self, record: logging.LogRecord) -> None:
        self.write(format_record(record))

    def _open(self) -> TextIO:
        path = log_path(self.home, self.uri)  # here, not in __init__: most steps print nothing
        path.parent.mkdir(parents=True, exist_ok=True)
        # Line buffered: each complete line reaches the file at once (``--follow``). Not a
        # ``with``: the file stays open across writes until close() (hence the noqa).
        f = open(path, "a", encoding="utf-8", errors="replace", buffering=1)  # noqa: SIM115
        self._file = f
        if self.attempt > 1 or f.tell() > 0:
            f.write(f"--- attempt {self.attempt} ---\n")
        return f

    def close(self) -> int | None:
        """Stop writing; the file's size if this attempt wrote to it, else None."""
        with self._lock:
            self._closed = True
            f, self._file = self._file, None
            if f is None:
                return None
            try:
                size = f.tell()
                f.close()
            except (OSError, ValueError) as exc:
                log.warning("step_log_unwritable", uri=self.uri, error=str(exc))
                return None
            return size


class RunLogs:
    """The step logs of one run: capture around each attempt, then the ``step.logs`` event."""

    def __init__(self, home: Home, run_id: str, enabled: bool | None) -> None:
        self.home = home
        self.run_id = run_id
        self.enabled = enabled is not False  # the pipeline's (or the run's) option; default on
        self._written: dict[str, int] = {}

    def begin(
        self, step: str, attempt: int, option: bool | None
    ) -> tuple[StepLogFile, contextvars.Token[Any]] | None:
        """Route what the attempt prints and logs to ``step``'s log from here on (``option``:
        the step's own ``enable_step_logs``, which wins over the pipeline's); pass the result
        to :meth:`end` when the attempt is over. (Two calls, not a context manager: this runs
        once per step attempt, on the engine's hot path.)"""
        if not (self.enabled if option is None else option):
            return None
        install()
        sink = StepLogFile(self.home, self.run_id, step, attempt)
        return sink, SINK.set(sink)

    def end(self, step: str, capture: tuple[StepLogFile, contextvars.Token[Any]] | None) -> None:
        if capture is None:
            return
        sink, token = capture
        SINK.reset(token)
        size = sink.close()
        if size is not None:
            self._written[step] = size

    def announce(self, step: str) -> list[AnyEvent]:
        """``[step.logs]`` if the attempt that just ended wrote to its log, else ``[]``."""
        if not self._written:
            return []
        size = self._written.pop(step, None)
        if size is None:
            return []
        return [StepLogs(step=step, uri=log_uri(self.run_id, step), size=size)]
