"""A thread pool that runs tasks by priority, then in submission order.

The pyramid builder queues two kinds of work: *filling* work (decoding source tiles into a
band) and *draining* work (encoding a complete band, box-filtering it into the level below).
Draining first frees each band as soon as it is complete, so the bands alive at once are the
ones being filled plus a short tail, instead of everything a FIFO queue has accepted.

Each task is a :class:`concurrent.futures.Future`; cancelled futures are skipped.
"""

from __future__ import annotations

import itertools
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

T = TypeVar("T")

DRAIN = 0
"""Priority of work that frees memory (encoding, box filtering)."""
FILL = 1
"""Priority of work that takes memory (decoding into bands)."""

_LAST = 2
"""Priority of the stop markers: after all queued work."""


class PriorityPool:
    """``workers`` threads taking the lowest priority number first, FIFO within one."""

    def __init__(self, workers: int, name: str = "worker") -> None:
        self._queue: queue.PriorityQueue[tuple[int, int, Any, tuple[Any, ...], Any]] = \
            queue.PriorityQueue()
        self._order = itertools.count()
        self._threads = [threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
                         for i in range(max(1, workers))]
        for thread in self._threads:
            thread.start()

    def submit(self, fn: Callable[..., T], *args: Any, priority: int = FILL) -> Future[T]:
        """Run ``fn(*args)`` on a worker; the future holds its result or exception."""
        future: Future[T] = Future()
        self._queue.put((priority, next(self._order), fn, args, future))
        return future

    def shutdown(self) -> None:
        """Let the workers finish what is queued, then stop them."""
        for _ in self._threads:
            self._queue.put((_LAST, next(self._order), None, (), None))
        for thread in self._threads:
            thread.join()

    def _work(self) -> None:
        while True:
            _, _, fn, args, future = self._queue.get()
            if fn is None:
                return
            if not future.set_running_or_notify_cancel():
                continue
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to whoever waits for the future
                future.set_exception(exc)
            else:
                future.set_result(result)
            del fn, args, future  # drop the task's references (its bands) before waiting

    def __enter__(self) -> PriorityPool:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.shutdown()
