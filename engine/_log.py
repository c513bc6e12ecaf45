"""Diagnostics logging: structlog loggers on top of the standard ``logging`` module.

A library must not print by default: records go to ``logging.getLogger("evenflow.*")``, so
nothing below WARNING shows until the application configures logging, and warnings go to stderr
through logging's last-resort handler. structlog is imported on first use, not at import time.
The event log, not these lines, is the record of what happened.
"""

from __future__ import annotations

import logging
from typing import Any

_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "exception": logging.ERROR,
}


def _discard(*_: Any, **__: Any) -> None:
    return None


class _LazyLogger:
    __slots__ = ("_logger", "_name", "_stdlib")

    def __init__(self, name: str) -> None:
        self._name = name
        self._stdlib = logging.getLogger(name)
        self._logger: Any = None

    def _get(self) -> Any:
        if self._logger is None:
            import structlog

            self._logger = structlog.wrap_logger(
                logging.getLogger(self._name),
                wrapper_class=structlog.stdlib.BoundLogger,
                processors=[
                    structlog.stdlib.filter_by_level,
                    structlog.processors.format_exc_info,
                    structlog.processors.KeyValueRenderer(key_order=["event"], sort_keys=True),
                ],
            )
        return self._logger

    def __getattr__(self, method: str) -> Any:
        level = _LEVELS.get(method)
        if level is not None and not self._stdlib.isEnabledFor(level):
            return _discard  # nothing would be shown: skip structlog entirely (hot paths log)
        return getattr(self._get(), method)


def get_logger(name: str) -> Any:
    """A structlog logger writing to the stdlib logger ``name`` (created on first use)."""
    return _LazyLogger(name)
