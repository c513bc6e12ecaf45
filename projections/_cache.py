"""What the projector keeps in memory between folds, and when it may trust it."""

from __future__ import annotations

from itertools import islice
from typing import TypeVar

from events import StepSpec

from ._views import RunView, StepView

StepKey = tuple[str, str]
"""A step view's key: (run id, invocation id)."""
K = TypeVar("K")
V = TypeVar("V")


def _trim(views: dict[K, V], size: int) -> None:
    excess = len(views) - size
    if excess > 0:
        for key in list(islice(views, excess)):
            del views[key]


class Creation:
    """A run's creating ``run.created`` (its seq and the specs it declares), and which of the
    run's steps have a ``step_runs`` row.

    ``rows`` is known only for a run created while this cache was valid: every row of its steps
    was then written by a fold under this cache, which adds the step here when it flushes it.
    Otherwise it is None, and a step missing from the cache is looked up in the table.
    """

    __slots__ = ("rows", "seq", "specs")

    def __init__(self, seq: int, specs: dict[str, StepSpec], rows: set[str] | None) -> None:
        self.seq = seq
        self.specs = specs
        self.rows = rows


class Cache:
    """What is known of the tables between batches, valid at one (seq, hash) of the log: views
    (each kind up to ``size``, oldest evicted first), runs' creations, artifact versions.

    A fold writes into the cache as it goes. That is safe because the cache is trusted only
    while its ``at`` is the checkpoint in the database: ``at`` is None during a fold, set once
    the fold has completed, and a transaction rolled back afterwards leaves a checkpoint that
    no longer matches it (the cache is then cleared).
    """

    def __init__(self, size: int) -> None:
        self.size = size
        self.runs: dict[str, RunView] = {}
        self.steps: dict[StepKey, StepView] = {}
        # The seq of the step.declared that declared a cached step, for those a step.declared
        # declared (a row stores it; 0 stands for the run's run.created). Trimmed with steps.
        self.declared: dict[StepKey, int] = {}
        self.creations: dict[str, Creation] = {}
        self.specs = 0  # how many specs the creations hold (they are bounded by ``size`` too)
        self.versions: dict[str, int] = {}  # artifact name -> its newest version
        self.at: tuple[int, bytes] | None = None

    def clear(self) -> None:
        self.runs.clear()
        self.steps.clear()
        self.declared.clear()
        self.creations.clear()
        self.specs = 0
        self.versions.clear()
        self.at = None

    def created(self, run_id: str, creation: Creation) -> Creation:
        """Keep ``creation`` as ``run_id``'s; return it."""
        old = self.creations.get(run_id)
        if old is not None:
            self.specs -= len(old.specs)
        self.creations[run_id] = creation
        self.specs += len(creation.specs)
        return creation

    def trim(self) -> None:
        # First-in, first-out: assigning an existing key keeps its position, which is much
        # cheaper than moving keys to the end (this runs inside every write transaction).
        _trim(self.runs, self.size)
        steps, declared = self.steps, self.declared
        excess = len(steps) - self.size
        if excess > 0:
            for key in list(islice(steps, excess)):
                del steps[key]
                declared.pop(key, None)
        _trim(self.versions, self.size)
        creations = self.creations
        while self.specs > self.size and len(creations) > 1:
            oldest = next(iter(creations))
            self.specs -= len(creations.pop(oldest).specs)
