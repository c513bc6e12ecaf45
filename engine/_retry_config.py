"""How a failing step is retried: :class:`StepRetryConfig`.

The delays it describes are computed in :mod:`engine._retry`.
"""

from __future__ import annotations

import datetime as dt

from ._config_base import ConfigObject
from ._config_checks import (
    as_int,
    as_number,
    as_seconds,
)
from .errors import ConfigurationError


class StepRetryConfig(ConfigObject):
    """How a failing step is retried: up to ``max_retries`` more attempts, the n-th after
    ``delay * backoff ** (n - 1)`` seconds, capped at ``max_delay``, randomized by up to
    ``jitter`` (a fraction of the delay, 0..1)."""

    max_retries: int
    delay: float
    backoff: float
    max_delay: float | None
    jitter: float

    def __init__(
        self,
        *,
        max_retries: int = 1,
        delay: float | dt.timedelta = 0,
        backoff: float = 1,
        max_delay: float | dt.timedelta | None = None,
        jitter: float = 0.0,
    ) -> None:
        w = "StepRetryConfig"
        self._set(
            max_retries=as_int(w, "max_retries", max_retries, minimum=0),
            delay=as_seconds(w, "delay", delay),
            backoff=as_number(w, "backoff", backoff, minimum=1),
            max_delay=None if max_delay is None else as_seconds(w, "max_delay", max_delay),
            jitter=as_number(w, "jitter", jitter, minimum=0, maximum=1),
        )
        if self.max_delay is not None and self.max_delay < self.delay:
            raise ConfigurationError(
                f"{w}: max_delay ({self.max_delay:g}) must be >= delay ({self.delay:g})"
            )
