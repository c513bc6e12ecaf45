"""Route what running code prints and logs to the sink of the step it runs for.

Steps run concurrently, on the event loop and in worker threads, so capture cannot swap
``sys.stdout`` per step: one swap would catch every step's output at once. Instead the sink of
the current step travels in a ``ContextVar`` (:data:`SINK`). anyio copies the context into the
worker thread of ``to_thread.run_sync`` and tasks inherit it, so the code of a step, and only
that code, sees its own sink; everything else sees None. :func:`install` (idempotent, done when
a run starts, never at import) puts the routing in place once per process:

- ``sys.stdout`` and ``sys.stderr`` become :class:`Tee` proxies: a write goes to the current
  sink, if any, and always to the stream that was there before (so terminals, the live
  ``evenflow run`` display and pytest's capture see what they saw before). structlog's default
  ``PrintLogger`` prints to ``sys.stdout`` at call time, so it is captured through the proxy.
- ``logging.Logger.callHandlers`` hands each record to the current sink (formatted once) before
  the logger's handlers run, with the sink hidden from them: a handler writing the record to a
  proxied stream does not capture it a second time. ``logging.Logger.isEnabledFor`` lets
  ``INFO`` and above through while a sink is set, so a step's ``logger.info(...)`` is captured
  under Python's default configuration (root at WARNING); such a record reaches only the sink,
  never the handlers that would have dropped it, so the console shows exactly what it showed.

Not a root ``logging.Handler``, although that is the usual tool: a root handler turns a later
``logging.basicConfig()`` into a silent no-op and silences ``logging.lastResort`` (warnings of
an application that configured nothing would stop reaching stderr), and loggers with
``propagate=False`` would escape it.

Not captured: threads a step starts itself with ``threading.Thread`` (they do not inherit the
context; ``anyio.to_thread`` and ``asyncio`` tasks do), writes to file descriptors 1 and 2 that
bypass ``sys.stdout`` (subprocesses, C extensions), and loggers holding a stream object taken
before :func:`install` replaced it.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import Any, Protocol, TextIO, cast

CAPTURE_LEVEL = logging.INFO
"""Records of this level and above are captured even when logging would drop them."""


class Sink(Protocol):
    """Where one step's output goes. Called from any thread; must not raise."""

    def write(self, text: str) -> None: ...

    def write_record(self, record: logging.LogRecord) -> None: ...


SINK: contextvars.ContextVar[Sink | None] = contextvars.ContextVar(
    "evenflow_log_sink", default=None
)
"""The sink of the step whose code runs in this context (None outside steps)."""


class Tee:
    """A stand-in for ``sys.stdout``/``sys.stderr``: writes go to the current step's sink (if
    any) and to the wrapped stream. Everything else is the wrapped stream's."""

    def __init__(self, stream: TextIO) -> None:
        self.wrapped = stream

    def write(self, text: str) -> int:
        sink = SINK.get()
        if sink is None:
            return self.wrapped.write(text)
        sink.write(text)
        # Hide the sink from the wrapped stream: if it is itself a Tee (someone wrapped ours,
        # and install() wrapped theirs), the text must reach the sink once.
        token = SINK.set(None)
        try:
            return self.wrapped.write(text)
        finally:
            SINK.reset(token)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        self.wrapped.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.wrapped, name)  # fileno, encoding, isatty, buffer, ...

    def __repr__(self) -> str:
        return f"<evenflow Tee of {self.wrapped!r}>"


class CurrentStream:
    """Writes to whatever ``sys.<name>`` is at the time of each write: for loggers configured
    once with a stream (structlog's ``PrintLoggerFactory(sys.stderr)``), so that what they
    print while a step runs goes through its :class:`Tee` and is captured."""

    def __init__(self, name: str) -> None:
        self.name = name

    def write(self, text: str) -> int:
        stream: TextIO = getattr(sys, self.name)
        return stream.write(text)

    def flush(self) -> None:
        getattr(sys, self.name).flush()


def current_stream(name: str) -> TextIO:
    """A :class:`CurrentStream` for ``sys.<name>``, typed as the text stream it stands for."""
    return cast(TextIO, CurrentStream(name))


_original_enabled = logging.Logger.isEnabledFor
_original_call_handlers = logging.Logger.callHandlers


def _is_enabled_for(self: logging.Logger, level: int) -> bool:
    if _original_enabled(self, level):
        return True
    return (
        level >= CAPTURE_LEVEL
        and SINK.get() is not None
        and not self.disabled
        and self.manager.disable < level
    )


def _call_handlers(self: logging.Logger, record: logging.LogRecord) -> None:
    sink = SINK.get()
    if sink is None:
        _original_call_handlers(self, record)
        return
    sink.write_record(record)
    if not _original_enabled(self, record.levelno):
        return  # created only because a step captures it: the handlers never saw these
    token = SINK.set(None)
    try:
        _original_call_handlers(self, record)
    finally:
        SINK.reset(token)


def _wrap_streams() -> None:
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        # None under pythonw; already ours after an earlier run. Checked on every run: a test
        # harness (pytest's capture) or an application may have replaced the stream since.
        if stream is not None and not isinstance(stream, Tee):
            setattr(sys, name, Tee(stream))


def install() -> None:
    """Route output by :data:`SINK` from now on (idempotent; cheap when already in place)."""
    _wrap_streams()
    if logging.Logger.callHandlers is not _call_handlers:
        logging.Logger.isEnabledFor = _is_enabled_for  # type: ignore[method-assign]
        logging.Logger.callHandlers = _call_handlers  # type: ignore[method-assign]


_FORMATTER = logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def format_record(record: logging.LogRecord) -> str:
    """One record as its step log shows it (a newline-terminated line, or several with a
    traceback)."""
    try:
        text = _FORMATTER.format(record)
    except Exception as exc:  # a bad format string must not fail the step that logged it
        text = f"{record.levelname} {record.name}: {record.msg!r} {record.args!r} ({exc})"
    return text + "\n"
