"""Frames encoded on a shared thread pool and written in row-major order, with back-pressure.

imagecodecs releases the GIL while encoding and decoding, so a plain thread pool uses every
core. Each level has an :class:`OrderedFrameSink`: frames are submitted in TILED_FULL order,
encoded in any order, and written strictly in submission order.

Memory bound: at most ``max_pending`` frames (their input tiles or their encoded bytes) per
sink; a submit beyond that first writes the oldest frame, waiting for it if need be.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np

from dicomizer.writer import FrameWriter


def _done(value: bytes) -> Future[bytes]:
    future: Future[bytes] = Future()
    future.set_result(value)
    return future


class OrderedFrameSink:
    """Frames of one instance, written in the order they were submitted."""

    def __init__(
        self,
        pool: ThreadPoolExecutor,
        writer: FrameWriter,
        max_pending: int,
        on_frame: Callable[[], None] = lambda: None,
    ) -> None:
        self._pool = pool
        self._writer = writer
        self._max_pending = max(1, max_pending)
        self._pending: deque[Future[bytes]] = deque()
        self._on_frame = on_frame

    def put(self, frame: bytes) -> None:
        """Queue an already encoded frame (passthrough)."""
        self._make_room()
        self._pending.append(_done(frame))

    def submit(self, encode: Callable[[np.ndarray], bytes], tile: np.ndarray) -> None:
        """Queue ``encode(tile)`` on the pool."""
        self._make_room()
        self._pending.append(self._pool.submit(encode, tile))

    def write_ready(self) -> None:
        """Write the frames at the head of the queue that are already encoded."""
        while self._pending and self._pending[0].done():
            self._write_oldest()

    def drain(self) -> None:
        """Wait for and write every queued frame."""
        while self._pending:
            self._write_oldest()

    def cancel(self) -> None:
        """Drop queued frames (after a failure elsewhere)."""
        while self._pending:
            self._pending.popleft().cancel()

    def _make_room(self) -> None:
        self.write_ready()
        while len(self._pending) >= self._max_pending:
            self._write_oldest()

    def _write_oldest(self) -> None:
        frame = self._pending.popleft().result()
        self._writer.write_frame(frame)
        self._on_frame()
