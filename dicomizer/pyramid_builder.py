"""The downsample cascade: one pass over the base level writes every pyramid level.

The base level is read one tile row (a *band*) at a time on a producer thread: stored tiles
for passthrough (decoded as well when lower levels need pixels), decoded regions otherwise.
Each band goes to its level's frame sink and into a :class:`Downsampler`, whose output bands
feed the next level, and so on: all levels are written at once, each from the level above.

Memory bound, for a base level W pixels wide, tile size T and B = W·T·3 bytes per band:
the producer queue (2 bands), one band per level being downsampled (≤ B + B/4 + … < 2B) and
two tile rows of frames per level in the sinks (≤ 2B + 2B/4 + … < 3B): below about 7B,
e.g. ~210 MB for a 40 000 pixel wide slide at T = 256, whatever the slide's height
(measured: 355 MB peak RSS for 40 000 x 30 000 at T = 240, interpreter and libraries
included).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor

import imagecodecs
import numpy as np
from PIL import Image

from dicomizer.encoder_pool import OrderedFrameSink
from dicomizer.plan import PyramidPlan
from wsi.errors import InvalidInput
from wsi.readers.base import SlideReader

_WHITE = 255
_DOWNSAMPLE_CHUNK = 4096
_REGION_CHUNK = 2048
"""Width (pixels, rounded up to whole source tiles) of the region pieces decoded in parallel."""


def downsample(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Box filter by ``factor``, rounded to nearest; a partial box at the right or bottom
    edge averages the pixels it has.

    Pillow's ``Image.reduce`` (C, GIL released) is about twice as fast as summing strided
    numpy views; it rounds the same way.
    """
    image = Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")
    return np.asarray(image.reduce(factor))


def parallel_downsample(pixels: np.ndarray, factor: int, pool: Executor | None) -> np.ndarray:
    """:func:`downsample` on column slices in ``pool`` (Pillow releases the GIL)."""
    width = pixels.shape[1]
    step = -(-_DOWNSAMPLE_CHUNK // factor) * factor
    if pool is None or width <= step:
        return downsample(pixels, factor)
    starts = range(0, width, step)
    pieces = pool.map(lambda x: downsample(pixels[:, x : x + step], factor), starts)
    return np.concatenate(list(pieces), axis=1)


class Downsampler:
    """Turns bands of one level into bands (``tile`` rows) of the level below.

    Memory bound: fewer than ``factor`` carried-over rows of the level above plus one
    output band.
    """

    def __init__(self, factor: int, tile: int, width_above: int,
                 pool: Executor | None = None) -> None:
        self._pool = pool
        self._factor = factor
        self._tile = tile
        self._carry: np.ndarray | None = None
        self._out = np.empty((tile, -(-width_above // factor), 3), dtype=np.uint8)
        self._filled = 0

    def push(self, band: np.ndarray) -> list[np.ndarray]:
        """Add a band of the level above; return the completed bands of this level."""
        if self._carry is not None:
            band = np.concatenate([self._carry, band])
        usable = band.shape[0] - band.shape[0] % self._factor
        self._carry = band[usable:].copy() if usable < band.shape[0] else None
        return self._append(self._downsample(band[:usable])) if usable else []

    def finish(self) -> list[np.ndarray]:
        """Flush the carried rows (a partial box row) and the last, partial band."""
        bands = []
        if self._carry is not None:
            bands = self._append(self._downsample(self._carry))
            self._carry = None
        if self._filled:
            bands.append(self._out[: self._filled].copy())
            self._filled = 0
        return bands

    def _downsample(self, rows: np.ndarray) -> np.ndarray:
        return parallel_downsample(rows, self._factor, self._pool)

    def _append(self, rows: np.ndarray) -> list[np.ndarray]:
        bands = []
        start = 0
        while start < rows.shape[0]:
            take = min(self._tile - self._filled, rows.shape[0] - start)
            self._out[self._filled : self._filled + take] = rows[start : start + take]
            self._filled += take
            start += take
            if self._filled == self._tile:
                bands.append(self._out.copy())
                self._filled = 0
        return bands


def split_tiles(band: np.ndarray, tile: int) -> Iterator[np.ndarray]:
    """The tiles of a band, left to right, padded with white to ``tile`` x ``tile``."""
    height, width = band.shape[:2]
    for x in range(0, width, tile):
        piece = band[:, x : x + tile]
        if piece.shape[0] == tile and piece.shape[1] == tile:
            yield np.ascontiguousarray(piece)
        else:
            padded = np.full((tile, tile, 3), _WHITE, dtype=np.uint8)
            padded[:height, : piece.shape[1]] = piece
            yield padded


class _Band:
    __slots__ = ("pixels", "stored")

    def __init__(self, pixels: np.ndarray | None, stored: list[bytes] | None) -> None:
        self.pixels = pixels
        self.stored = stored


_END = object()


class PyramidBuilder:
    """Writes every level of ``plan`` from ``reader`` into ``sinks`` (one per level)."""

    def __init__(
        self,
        reader: SlideReader,
        plan: PyramidPlan,
        encode: Callable[[np.ndarray], bytes],
        sinks: Sequence[OrderedFrameSink],
        pool: ThreadPoolExecutor,
    ) -> None:
        self._reader = reader
        self._plan = plan
        self._encode = encode
        self._sinks = sinks
        self._pool = pool
        self._stop = threading.Event()
        self._downsamplers: list[Downsampler] = []

    def run(self) -> None:
        """Read the base level once and write all levels; raises what the reader raised."""
        levels = self._plan.levels
        self._downsamplers = [
            Downsampler(self._plan.factor, self._plan.tile, level.width, self._pool)
            for level in levels[:-1]
        ]
        try:
            for band in self._produce():
                if band.stored is not None:
                    for frame in band.stored:
                        self._sinks[0].put(frame)
                else:
                    assert band.pixels is not None
                    self._encode_band(0, band.pixels)
                if band.pixels is not None and len(levels) > 1:
                    self._feed_below(0, band.pixels)
                for sink in self._sinks:
                    sink.write_ready()
            # Flush top-down: what level i flushes feeds level i + 1 before it flushes.
            for index, downsampler in enumerate(self._downsamplers):
                for below in downsampler.finish():
                    self._emit(index + 1, below)
            for sink in self._sinks:
                sink.drain()
        except BaseException:
            self._stop.set()
            for sink in self._sinks:
                sink.cancel()
            raise

    def _feed_below(self, level: int, band: np.ndarray) -> None:
        """Downsample a band of ``level`` and emit what completes in the level below."""
        for below in self._downsamplers[level].push(band):
            self._emit(level + 1, below)

    def _emit(self, level: int, band: np.ndarray) -> None:
        """Encode a band of a generated level and feed it on to the next level."""
        self._encode_band(level, band)
        if level < len(self._downsamplers):
            self._feed_below(level, band)

    def _encode_band(self, level: int, band: np.ndarray) -> None:
        sink = self._sinks[level]
        for tile in split_tiles(band, self._plan.tile):
            sink.submit(self._encode, tile)

    # -- producer ------------------------------------------------------------------------

    def _produce(self) -> Iterator[_Band]:
        """Bands of the base level from a producer thread, through a queue of two."""
        bands: queue.Queue[object] = queue.Queue(maxsize=2)

        def offer(item: object) -> bool:
            """Put ``item`` unless the consumer has stopped; never blocks for good."""
            while not self._stop.is_set():
                try:
                    bands.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def produce() -> None:
            try:
                for band in self._read_bands():
                    if not offer(band):
                        return
                offer(_END)
            except BaseException as exc:  # handed to the consumer
                offer(exc)

        thread = threading.Thread(target=produce, name="dicomizer-reader", daemon=True)
        thread.start()
        try:
            while True:
                item = bands.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                assert isinstance(item, _Band)
                yield item
        finally:
            self._stop.set()
            thread.join()

    def _read_bands(self) -> Iterator[_Band]:
        base = self._plan.levels[0]
        tile = self._plan.tile
        need_pixels = len(self._plan.levels) > 1
        for row in range(base.tiles_down):
            if self._stop.is_set():
                return
            y = row * tile
            height = min(tile, base.height - y)
            if base.passthrough is not None:
                stored = self._reader.read_tile_row(0, row)
                pixels = self._decode_row(stored, height, base.width) if need_pixels else None
                yield _Band(pixels, stored)
            else:
                yield _Band(self._read_region_band(y, height, base.width), None)

    def _decode_row(self, stored: list[bytes], height: int, width: int) -> np.ndarray:
        tile = self._plan.tile
        band = np.empty((height, width, 3), dtype=np.uint8)
        for col, pixels in enumerate(self._pool.map(_decode_jpeg, stored)):
            x = col * tile
            piece = pixels[:height, : min(tile, width - x)]
            band[:, x : x + piece.shape[1]] = piece[..., :3]
        return band

    def _read_region_band(self, y: int, height: int, width: int) -> np.ndarray:
        source_tile = max(1, self._reader.levels[0].tile_width)
        chunk = max(source_tile, -(-_REGION_CHUNK // source_tile) * source_tile)
        starts = list(range(0, width, chunk))
        pieces = self._pool.map(
            lambda x: self._reader.read_region(0, x, y, min(chunk, width - x), height), starts
        )
        return np.concatenate(list(pieces), axis=1) if len(starts) > 1 else next(iter(pieces))


def _decode_jpeg(frame: bytes) -> np.ndarray:
    try:
        return np.asarray(imagecodecs.jpeg8_decode(frame))
    except Exception as exc:  # codec errors come as many types
        raise InvalidInput(f"cannot decode a stored tile ({exc})") from None
