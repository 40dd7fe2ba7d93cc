"""The one bridge from async handlers to the synchronous core: worker threads with a limit."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, ParamSpec, TypeVar

import anyio
import anyio.to_thread

P = ParamSpec("P")
T = TypeVar("T")

_DONE: Any = object()


class Blocking:
    """Runs blocking calls in at most ``threads`` worker threads at once."""

    def __init__(self, threads: int) -> None:
        self._threads = threads
        self._limiter: anyio.CapacityLimiter | None = None

    def _get_limiter(self) -> anyio.CapacityLimiter:
        if self._limiter is None:
            # Created lazily: a CapacityLimiter binds to the event loop that first uses it.
            self._limiter = anyio.CapacityLimiter(self._threads)
        return self._limiter

    async def run(self, func: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``func`` in a worker thread and await its result."""
        return await anyio.to_thread.run_sync(
            functools.partial(func, *args, **kwargs), limiter=self._get_limiter()
        )

    async def iterate(self, iterator: Iterator[T]) -> AsyncIterator[T]:
        """Drive a blocking iterator from worker threads, one item per thread hop.

        Producers should yield chunks of at least ~1 MiB (or whole frames) so that the hop
        cost stays small next to the work per item.
        """
        try:
            while True:
                item = await self.run(next, iterator, _DONE)
                if item is _DONE:
                    return
                yield item
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                await self.run(close)
