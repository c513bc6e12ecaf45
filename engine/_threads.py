"""The threads a run's sync steps run in, handing their results back to the loop in batches.

``anyio.to_thread.run_sync`` costs, per call, a limiter token, a cancel scope and one wake-up of
the event loop (a write to its self-pipe). With thousands of short sync steps those are most of
a step's overhead (W2 with sync steps: about 430 µs per step with it, 300 µs with this). Here a
call is a job on a queue; a thread is started only when none is idle; a finished job's outcome
goes on a deque, and the loop is woken once for all that finished since it last looked.

What is kept from anyio: the call runs in a copy of the caller's context (step logs are routed
by a context variable), whatever it raises is raised to the caller, and a caller cancelled while
waiting abandons the call: a call not yet started is skipped, one running runs to its end (a
thread cannot be killed) and its outcome is dropped. How many calls run at once is the caller's
business (the run loop's worker tasks bound it); a thread busy with an abandoned call does not
count, as with anyio.

What is not kept: these are not anyio worker threads, so code in a sync step cannot reach the
event loop through ``anyio.from_thread`` (it raises anyio's ``NoEventLoopError``). A step that
needs async code makes itself an async step.
"""

from __future__ import annotations

import asyncio
import contextvars
import queue
import threading
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

_Job = tuple["asyncio.Future[Any]", contextvars.Context, Callable[..., Any], tuple[Any, ...]]
_Outcome = tuple["asyncio.Future[Any]", Any, BaseException | None]


THREAD_NAME = "evenflow step"
"""The name of every thread that runs sync steps (``evenflow serve`` waits for those alone)."""


class StepThreads:
    """Worker threads for one event loop, started as calls need them (see the module doc).

    :meth:`close` lets them end; a thread still busy ends when its call returns. They are not
    daemon threads: Python waits for a running step at exit, as it does for anyio's threads
    (``evenflow serve`` says so, and exits at a second signal).
    """

    def __init__(self, name: str = THREAD_NAME) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._idle = 0
        self._threads = 0
        self._done: deque[_Outcome] = deque()
        self._woken = False
        self._closed = False

    @property
    def threads(self) -> int:
        """How many threads were started and have not ended."""
        return self._threads

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread, in a copy of the current context."""
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        job = (future, contextvars.copy_context(), fn, args)
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name} threads are closed")
            start = self._idle <= 0  # below 0: a skipped job is owed (see below)
            if start:
                self._threads += 1
            else:
                self._idle -= 1
            # Queued under the lock: a close() from another thread queues its ends after it.
            self._jobs.put(job)
        if start:
            try:
                threading.Thread(target=self._work, name=self.name, daemon=False).start()
            except BaseException:
                # Its job stays queued: whichever thread gets it skips it and counts itself
                # idle again, which this job never reserved: owe that in advance.
                future.cancel()
                with self._lock:
                    self._threads -= 1
                    self._idle -= 1
                raise
        return await future

    def close(self) -> None:
        """Let every thread end once it is idle (callable from any thread, more than once)."""
        with self._lock:
            threads = 0 if self._closed else self._threads
            self._closed = True
        for _ in range(threads):
            self._jobs.put(None)

    def _work(self) -> None:
        try:
            while (job := self._jobs.get()) is not None:
                future, context, fn, args = job
                if future.cancelled():  # abandoned before it started: do not start it
                    with self._lock:
                        self._idle += 1
                    continue
                try:
                    outcome: _Outcome = (future, context.run(fn, *args), None)
                except BaseException as exc:  # the caller's to raise, whatever it is
                    outcome = (future, None, exc)
                with self._lock:
                    self._done.append(outcome)
                    wake = not self._woken
                    self._woken = True
                    self._idle += 1
                if wake:
                    self._wake(future.get_loop())
                del job, future, context, fn, args, outcome  # keep nothing while idle
        finally:
            with self._lock:
                self._threads -= 1
                self._idle -= 1 if self._idle > 0 else 0

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            loop.call_soon_threadsafe(self._deliver)
        except RuntimeError:  # the loop is closed: nobody waits for these outcomes any more
            with self._lock:
                self._done.clear()
                self._woken = False

    def _deliver(self) -> None:
        with self._lock:
            outcomes = list(self._done)
            self._done.clear()
            self._woken = False
        for future, result, error in outcomes:
            if future.cancelled():
                continue  # abandoned by its caller
            if isinstance(error, StopIteration):  # a future refuses it: say what happened
                wrapped = RuntimeError(f"the call raised {type(error).__name__}")
                wrapped.__cause__ = error
                future.set_exception(wrapped)
            elif error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)
