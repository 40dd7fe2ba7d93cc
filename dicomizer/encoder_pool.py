"""Frames encoded in batches on a shared thread pool and written in row-major order.

imagecodecs releases the GIL while encoding, so a thread pool uses every core. Each
level has an :class:`OrderedFrameSink`: batches of tiles are submitted in TILED_FULL order,
encoded in any order, and their frames written strictly in submission order. A batch (a few
tiles, one task) keeps the per-frame Python work and thread hand-overs small.

Memory bound: at most ``max_pending`` frames (their input tiles or their encoded bytes) per
sink, plus one batch; a submit beyond that first writes the oldest batch, waiting for it if
need be.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np

from dicomizer.tasks import DRAIN, PriorityPool
from dicomizer.writer import FrameWriter
from wsi.readers.base import StoredRun

EncodeBatch = Callable[[Sequence[np.ndarray]], list[bytes]]


def _done(frames: list[bytes]) -> Future[list[bytes]]:
    future: Future[list[bytes]] = Future()
    future.set_result(frames)
    return future


def batch_encoder(encode: Callable[[np.ndarray], bytes]) -> EncodeBatch:
    """A function that encodes a batch of tiles with ``encode``, one after the other."""
    def encode_batch(tiles: Sequence[np.ndarray]) -> list[bytes]:
        return [encode(tile) for tile in tiles]
    return encode_batch


class OrderedFrameSink:
    """Frames of one instance, written in the order they were submitted."""

    def __init__(
        self,
        pool: PriorityPool,
        writer: FrameWriter,
        max_pending: int,
        on_frames: Callable[[int], None] = lambda count: None,
    ) -> None:
        self._pool = pool
        self._writer = writer
        self._max_pending = max(1, max_pending)
        self._pending: deque[tuple[Future[list[bytes]], int]] = deque()
        self._pending_frames = 0
        self._on_frames = on_frames

    def put(self, frames: list[bytes]) -> None:
        """Queue already encoded frames (passthrough); written at once if none are queued."""
        if not self._pending:
            self._write(frames)
            return
        self._make_room(len(frames))
        self._pending.append((_done(frames), len(frames)))
        self._pending_frames += len(frames)

    def put_run(self, run: StoredRun) -> None:
        """Write stored tiles passed through (after whatever is queued)."""
        self.drain()
        self._writer.write_run(run)
        self._on_frames(len(run))

    def submit(self, encode_batch: EncodeBatch, tiles: Sequence[np.ndarray]) -> None:
        """Queue ``encode_batch(tiles)`` on the pool."""
        self.submit_task(len(tiles), encode_batch, tiles, priority=DRAIN)

    def submit_task(self, count: int, fn: Callable[..., list[bytes]], *args: Any,
                    priority: int = DRAIN) -> Future[list[bytes]]:
        """Queue ``fn(*args)``, a task that returns the next ``count`` frames."""
        self._make_room(count)
        future = self._pool.submit(fn, *args, priority=priority)
        self._pending.append((future, count))
        self._pending_frames += count
        return future

    def write_ready(self) -> None:
        """Write the batches at the head of the queue that are already encoded."""
        while self._pending and self._pending[0][0].done():
            self._write_oldest()

    def drain(self) -> None:
        """Wait for and write every queued frame."""
        while self._pending:
            self._write_oldest()

    def cancel(self) -> None:
        """Drop queued frames (after a failure elsewhere)."""
        while self._pending:
            self._pending.popleft()[0].cancel()
        self._pending_frames = 0

    def _make_room(self, count: int) -> None:
        self.write_ready()
        while self._pending and self._pending_frames + count > self._max_pending:
            self._write_oldest()

    def _write_oldest(self) -> None:
        future, count = self._pending.popleft()
        self._pending_frames -= count
        self._write(future.result())

    def _write(self, frames: list[bytes]) -> None:
        self._writer.write_frames(frames)
        self._on_frames(len(frames))
