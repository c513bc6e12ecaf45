"""``evenflow run FILE.py:PIPELINE --watch``: run the pipeline again whenever a source changes.

Each run is a fresh ``evenflow run`` subprocess with the same arguments (without ``--watch``).
That is the only way every module of the project is imported anew: re-importing the pipeline
file in this process would keep stale helper modules in ``sys.modules``, and importing it under
a new module name each time would change the qualified names that step cache keys include, so
no step would ever be cached. In a fresh process an unchanged step has the same cache key as
before and is a cache hit; a changed step, and whatever its new output feeds, runs again.

What is watched: the ``.py`` files under the pipeline file's directory, recursively (without
``.venv``, ``__pycache__``, ``.git`` and the like, nor ``$EVENFLOW_HOME``). The watcher is
started before the first run, so no change is missed. A change during a run does not interrupt
it: changes are collected while it runs and start one more run when it ends. Ctrl-C (or
SIGTERM) stops watching and the run in progress, which records ``run.cancelled``; the exit code
is then 0.
A run that fails, or a file that no longer imports, is reported and watching goes on.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

_HEARTBEAT_MS = 250  # how often an idle watcher wakes up (it says "ready" on its first wake)
_GRACE_SECONDS = 10.0  # how long a run may take to record its cancellation after Ctrl-C

Batch = set[tuple[Any, str]]
"""Changed files as ``(change kind, path)`` pairs (watchfiles' ``FileChange``)."""
Changes = Iterable[Batch]
Runner = Callable[[Sequence[str]], int]


def child_command(target: str, params: Sequence[str], *, as_json: bool, debug: bool) -> list[str]:
    """The ``evenflow run`` command line of one run, for this interpreter."""
    argv = [sys.executable, "-c", "from engine._cli import main; main()"]
    if debug:
        argv.append("--debug")
    argv += ["run", target]
    for item in params:
        argv += ["-p", item]
    if as_json:
        argv.append("--json")
    return argv


def watched_changes(root: Path, ignore: Sequence[Path]) -> Iterator[Batch]:
    """Batches of changed ``.py`` files under ``root``; an empty batch every heartbeat.

    The first item (a heartbeat) arrives once the watcher is running: changes after it are
    never lost, even those made while the caller is busy between two items.
    """
    import watchfiles

    return watchfiles.watch(
        root,
        watch_filter=watchfiles.PythonFilter(ignore_paths=[str(p) for p in ignore]),
        rust_timeout=_HEARTBEAT_MS,
        yield_on_timeout=True,
        raise_interrupt=False,
    )


class Terminated(KeyboardInterrupt):
    """The watcher got SIGTERM: stop as after Ctrl-C, but the run in progress did not get the
    signal (it went to this process only), so it is interrupted first."""


def _on_sigterm(signum: int, frame: object) -> None:
    raise Terminated


def run_child(argv: Sequence[str]) -> int:
    """Run one ``evenflow run`` to its end; its exit code.

    On Ctrl-C the terminal interrupts the child too (same process group); on SIGTERM (sent to
    this process alone) the child is sent SIGINT. Either way: wait for it to record its
    cancellation, then stop it if it takes too long, and re-raise. The child never outlives
    the watcher.
    """
    proc = subprocess.Popen(argv)
    try:
        return proc.wait()
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated) and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=_GRACE_SECONDS)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.terminate()
            proc.wait()
        raise
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def _forget_bytecode(paths: Iterable[str]) -> None:
    """Drop the cached bytecode of changed files: the import check compares whole-second
    mtimes and sizes, so a same-size edit within a second of the last import would otherwise
    run the old code."""
    for path in paths:
        try:
            os.remove(importlib.util.cache_from_source(path))
        except (FileNotFoundError, NotImplementedError, ValueError):
            pass


class WatchLoop:
    """Runs the pipeline, then again after every batch of changes, until interrupted.

    Args:
        argv: the command of one run (:func:`child_command`).
        root: the directory watched (paths are shown relative to it).
        changes: batches of ``(change, path)``; an empty batch is a heartbeat.
        run: runs ``argv`` and returns its exit code.
        out: where the loop's own lines go (stderr: stdout belongs to the runs).
    """

    def __init__(
        self,
        argv: Sequence[str],
        root: Path,
        changes: Changes,
        *,
        run: Runner = run_child,
        out: TextIO | None = None,
    ) -> None:
        self.argv = list(argv)
        self.root = root
        self.changes = changes
        self.run = run
        self.out = out
        self.runs = 0

    def _say(self, message: str) -> None:
        print(f"[watch] {message}", file=self.out or sys.stderr, flush=True)

    def _run(self) -> None:
        self.runs += 1
        code = self.run(self.argv)
        if code != 0:
            self._say(f"the run exited with code {code}; save a change to run again")
        self._say(f"watching {self.root} for changes (Ctrl-C to stop)")

    def _relative(self, path: str) -> str:
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return path

    def loop(self) -> int:
        """Watch and run until Ctrl-C (or the end of ``changes``); returns 0."""
        batches = iter(self.changes)
        try:
            next(batches, None)  # the watcher is running: nothing is missed from here on
            self._run()
            for batch in batches:
                if not batch:
                    continue  # a heartbeat
                paths = sorted({path for _change, path in batch})
                _forget_bytecode(paths)
                shown = ", ".join(self._relative(p) for p in paths[:5])
                more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
                self._say(f"changed: {shown}{more}; running again")
                self._run()
        except KeyboardInterrupt:
            pass
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
        self._say("stopped watching")
        return 0


def watch(target: str, params: Sequence[str], *, as_json: bool, debug: bool) -> int:
    """``evenflow run TARGET --watch``: see the module docstring. Returns the exit code.

    Raises:
        CliError: the target is not ``FILE.py[:PIPELINE]`` or the file does not exist (a
            pipeline name the file lacks is reported by each run instead: it may be added).
    """
    from ._cli_load import CliError, split_target
    from ._home import Home

    path, _name = split_target(target)
    if not path.is_file():
        raise CliError(f"no such file: {path}")
    if path.suffix != ".py":
        raise CliError(f"{path} is not a Python file (expected FILE.py:PIPELINE)")
    root = path.resolve().parent
    argv = child_command(target, params, as_json=as_json, debug=debug)
    changes = watched_changes(root, ignore=[Home.resolve().root])
    previous = signal.signal(signal.SIGTERM, _on_sigterm)  # the CLI runs in the main thread
    try:
        return WatchLoop(argv, root, changes).loop()
    finally:
        signal.signal(signal.SIGTERM, previous)
