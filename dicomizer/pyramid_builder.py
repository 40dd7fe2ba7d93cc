"""The pyramid cascade: every output level, in one pass over each source level used.

The plan splits the output levels into segments (see :mod:`dicomizer.plan`): a level read from
a source level, then the levels generated from it. A segment is one pass over its source
level, one tile row at a time:

- a passed-through level copies the stored tiles into frames (:class:`StoredRun`: one
  positioned read per run of tiles, written with vectored writes, no per-tile copy; alone in
  its segment, in runs of whole tile rows, the next run read while this one is written); if
  a generated level follows, the same tiles are decoded at 1/factor scale in the DCT domain
  straight into the rows of that level (:mod:`dicomizer.tile_decoding`): no full-size
  pixels, no IDCT of the discarded frequencies, no separate box filter;
- a level re-encoded on the source's own tile grid is transcoded tile by tile: decode,
  encode, box-filter into the level below, with no band of its own;
- otherwise the source level is decoded at full size (stored JPEG tiles, any other format
  through ``read_region``) into bands, and encoded.

Each level that needs pixels has a :class:`BandCanvas`. When a band of ``tile`` rows is
complete its tiles are encoded in batches, and the rows the level below can use are box
filtered straight into that level's canvas, and so on down.

All pixel work runs as tasks on one :class:`PriorityPool` (simplejpeg, imagecodecs and
Pillow release the GIL); work that frees a band (encoding, box filtering) runs before work
that fills one (decoding). The calling thread reads stored tiles, submits tasks in order and
writes frames in order; it waits only for the oldest outstanding task.

Memory bound, for a level W pixels wide, tile size T and B = W·T·3 bytes per band: the stored
tiles of at most ``lookahead`` + 1 tile rows; per level, the bands those rows reach (≤ 2 when
the source and output grids differ, else 1) plus the bands whose tiles are still being encoded
(bounded by the sinks' ``max_pending`` frames, two tile rows); each level below holds a
quarter of the one above (factor 2). No level read from the source holds a band on its own
grid, so for a 40 000 x 30 000 slide at T = 240 (level 1: B = 14 MB) the measured peak RSS is
~165 MB passing tiles through and ~170 MB re-encoding, interpreter and libraries (~65 MB)
included; ~300 MB re-encoding at T = 256 on a 240 grid (base bands of 31 MB). A level that
is only copied holds two runs of stored tiles (whole tile rows, about ``_RUN_TILES`` tiles or
one row): ~80 MB peak for that slide with ``levels="source"``. Independent of the slide's
height.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass, field

import numpy as np

from dicomizer.bands import BandCanvas, Views, scatter
from dicomizer.encoder_pool import OrderedFrameSink, batch_encoder
from dicomizer.plan import LevelPlan, PyramidPlan
from dicomizer.tasks import DRAIN, FILL, PriorityPool
from dicomizer.tile_decoding import can_scale, decode_tiles_into, downsample, transcode_tiles
from wsi.readers.base import Level, SlideReader, StoredRun

_WHITE = 255
_MAX_BATCH = 16
"""Tiles per encoding task, at most."""
_REDUCE_BYTES = 2 << 20
"""Bytes of the level above per box-filter task, about."""
_RUN_TILES = 256
"""Stored tiles per read when a level is only passed through, about (whole tile rows)."""
_REGION_CHUNK = 2048
"""Width (pixels, rounded up to whole source tiles) of the region pieces decoded in parallel."""


def split_tiles(band: np.ndarray, tile: int) -> list[np.ndarray]:
    """The tiles of a band, left to right: views of full tiles, edge tiles padded with white
    to ``tile`` x ``tile``."""
    height, width = band.shape[:2]
    tiles = []
    for x in range(0, width, tile):
        piece = band[:, x : x + tile]
        if piece.shape[0] == tile and piece.shape[1] == tile:
            tiles.append(piece)
        else:
            padded = np.full((tile, tile, 3), _WHITE, dtype=np.uint8)
            padded[:height, : piece.shape[1]] = piece
            tiles.append(padded)
    return tiles


def reduce_into(rows: np.ndarray, factor: int, views: Views, y: int) -> None:
    """Box filter ``rows`` by ``factor`` into ``views`` at row ``y`` of the viewed range."""
    scatter(views, downsample(rows, factor), 0, y)


@dataclass
class _Stage:
    """One output level of a segment: where its pixels go and the level below it."""

    level: LevelPlan
    sink: OrderedFrameSink
    canvas: BandCanvas
    encode: bool
    below: _Stage | None = None
    reduced: int = 0
    """Rows of the level below already submitted."""


@dataclass
class _Block:
    """Tasks that complete rows ``[0, end)`` of a stage's level once they are done."""

    stage: _Stage
    end: int
    futures: list[Future[None]] = field(default_factory=list)


class PyramidBuilder:
    """Writes every level of ``plan`` from ``reader`` into ``sinks`` (one per level)."""

    def __init__(
        self,
        reader: SlideReader,
        plan: PyramidPlan,
        encode: Callable[[np.ndarray], bytes],
        sinks: Sequence[OrderedFrameSink],
        pool: PriorityPool,
        workers: int,
        lookahead: int = 2,
    ) -> None:
        self._reader = reader
        self._plan = plan
        self._encode_one = encode
        self._encode_batch = batch_encoder(encode)
        self._sinks = sinks
        self._pool = pool
        self._workers = max(1, workers)
        self._lookahead = max(1, lookahead)
        self._pending: deque[_Block] = deque()

    def run(self) -> None:
        """Write all levels; raises what the reader or a codec raised."""
        try:
            for segment in self._plan.segments():
                self._run_segment(segment)
            for sink in self._sinks:
                sink.drain()
        except BaseException:
            for block in self._pending:
                for future in block.futures:
                    future.cancel()
            for sink in self._sinks:
                sink.cancel()
            raise

    # -- one segment -----------------------------------------------------------------------

    def _run_segment(self, levels: Sequence[LevelPlan]) -> None:
        head = levels[0]
        assert head.source is not None
        source = self._reader.levels[head.source]
        factor = self._plan.factor
        stages = self._stages(levels)
        scaled = (head.passthrough is not None and len(levels) > 1
                  and can_scale(source.tile_width, source.tile_height, factor))
        if head.passthrough is not None and len(levels) == 1:
            self._copy_level(self._sinks[head.index], source)
        elif head.passthrough is not None:
            entry = stages[1] if scaled else stages[0]
            across = source.tiles_across
            for row in range(source.tiles_down):
                run = self._reader.read_stored_run(head.source, row * across, across)
                self._sinks[head.index].put_run(run)
                self._decode_row(entry, source, row, run.frames(), factor if scaled else 1)
                self._advance(self._lookahead)
        elif (source.stored is not None and source.tile_width == source.tile_height == head.tile
              and head.tile % factor == 0):
            for row in range(source.tiles_down):
                self._transcode_row(stages[0], source, row)
                self._advance(self._lookahead)
        elif source.stored is not None:
            for row in range(source.tiles_down):
                self._decode_row(stages[0], source, row, None, 1)
                self._advance(self._lookahead)
        else:
            for y in range(0, head.height, head.tile):
                self._read_band(stages[0], source, y)
                self._advance(self._lookahead)
        self._advance(0)

    def _copy_level(self, sink: OrderedFrameSink, source: Level) -> None:
        """Pass a level's stored tiles through, in runs of whole tile rows; the next run is
        read on the pool while this one is written."""
        across = source.tiles_across
        total = across * source.tiles_down
        step = max(1, _RUN_TILES // across) * across

        def read(start: int) -> StoredRun:
            return self._reader.read_stored_run(source.index, start, min(step, total - start))

        ahead = self._pool.submit(read, 0, priority=DRAIN)
        for start in range(0, total, step):
            run = ahead.result()
            if start + step < total:
                ahead = self._pool.submit(read, start + step, priority=DRAIN)
            sink.put_run(run)
            del run

    def _stages(self, levels: Sequence[LevelPlan]) -> list[_Stage]:
        stages = [
            _Stage(level, self._sinks[level.index],
                   BandCanvas(level.width, level.height, level.tile),
                   encode=level.passthrough is None)
            for level in levels
        ]
        for above, below in zip(stages, stages[1:], strict=False):
            above.below = below
        return stages

    # -- producing rows ------------------------------------------------------------------

    def _chunks(self, count: int) -> list[tuple[int, int]]:
        """``count`` items in about two contiguous chunks per worker."""
        size = max(1, -(-count // (2 * self._workers)))
        return [(start, min(start + size, count)) for start in range(0, count, size)]

    def _decode_row(self, stage: _Stage, source: Level, row: int,
                    frames: list[bytes] | None, scale: int) -> None:
        """Decode tile row ``row`` of ``source`` at 1/``scale`` into ``stage``'s rows."""
        canvas = stage.canvas
        y0 = row * source.tile_height // scale
        y1 = min((row + 1) * source.tile_height // scale, canvas.height)
        views = canvas.views(y0, y1)
        block = _Block(stage, y1)
        args = ((source.tile_width, source.tile_height), (source.width, source.height), scale)
        for start, end in self._chunks(source.tiles_across):
            if frames is not None:
                block.futures.append(self._pool.submit(
                    decode_tiles_into, frames[start:end], start, row, *args, views,
                    priority=FILL))
            else:
                block.futures.append(self._pool.submit(
                    self._read_and_decode, source.index, start, end, row, args, views,
                    priority=FILL))
        self._pending.append(block)

    def _transcode_row(self, stage: _Stage, source: Level, row: int) -> None:
        """Re-encode tile row ``row`` of ``source`` on its own grid, tile by tile, and box
        filter it into the level below (no band of this level's pixels is held)."""
        below = stage.below
        factor = self._plan.factor
        views = None
        if below is not None:
            y0 = row * source.tile_height // factor
            y1 = min((row + 1) * source.tile_height // factor, below.canvas.height)
            views = below.canvas.views(y0, y1)
            block = _Block(below, y1)
        for start, end in self._chunks(source.tiles_across):
            future = stage.sink.submit_task(
                end - start, self._read_and_transcode, source.index, start, end, row,
                (source.width, source.height), views, priority=FILL)
            if below is not None:
                block.futures.append(future)  # type: ignore[arg-type]
        if below is not None:
            self._pending.append(block)

    def _read_and_transcode(self, level: int, start: int, end: int, row: int,
                            size: tuple[int, int], views: Views | None) -> list[bytes]:
        frames = list(self._reader.read_tiles(level, [(col, row) for col in range(start, end)]))
        tile = self._reader.levels[level].tile_width
        return transcode_tiles(frames, start, row, tile, size, self._encode_one,
                               self._plan.factor, views)

    def _read_and_decode(self, level: int, start: int, end: int, row: int,
                         args: tuple[tuple[int, int], tuple[int, int], int],
                         views: Views) -> None:
        frames = list(self._reader.read_tiles(level, [(col, row) for col in range(start, end)]))
        decode_tiles_into(frames, start, row, *args, views)

    def _read_band(self, stage: _Stage, source: Level, y: int) -> None:
        """Decode rows ``[y, y + tile)`` of ``source`` through ``read_region``."""
        canvas = stage.canvas
        height = min(canvas.tile, canvas.height - y)
        views = canvas.views(y, y + height)
        source_tile = max(1, source.tile_width)
        chunk = max(source_tile, -(-_REGION_CHUNK // source_tile) * source_tile)
        block = _Block(stage, y + height)
        for x in range(0, canvas.width, chunk):
            width = min(chunk, canvas.width - x)
            block.futures.append(self._pool.submit(
                self._read_region_into, source.index, x, y, width, height, views,
                priority=FILL))
        self._pending.append(block)

    def _read_region_into(self, level: int, x: int, y: int, width: int, height: int,
                          views: Views) -> None:
        scatter(views, self._reader.read_region(level, x, y, width, height), x)

    # -- completing rows -----------------------------------------------------------------

    def _advance(self, limit: int) -> None:
        """Apply finished blocks in order; wait for the oldest while more than ``limit``
        are outstanding."""
        while self._pending:
            block = self._pending[0]
            if len(self._pending) > limit:
                wait(block.futures)
            elif not all(future.done() for future in block.futures):
                break
            self._pending.popleft()
            for future in block.futures:
                future.result()
            self._rows_complete(block.stage, block.end)
        for sink in self._sinks:
            sink.write_ready()

    def _rows_complete(self, stage: _Stage, end: int) -> None:
        canvas = stage.canvas
        for _, band in canvas.complete(end):
            if stage.encode:
                self._encode_band(stage, band)
        if stage.below is None:
            canvas.release(end)
        else:
            self._reduce(stage)

    def _encode_band(self, stage: _Stage, band: np.ndarray) -> None:
        tiles = split_tiles(band, stage.level.tile)
        size = min(_MAX_BATCH, max(1, -(-len(tiles) // (2 * self._workers))))
        for start in range(0, len(tiles), size):
            stage.sink.submit(self._encode_batch, tiles[start : start + size])

    def _reduce(self, stage: _Stage) -> None:
        """Box filter the complete rows of ``stage`` that the level below can use."""
        below = stage.below
        assert below is not None
        factor = self._plan.factor
        canvas = stage.canvas
        done = canvas.completed_rows
        ready = below.canvas.height if done == canvas.height else done // factor
        if ready <= stage.reduced:
            return
        y0, y1 = stage.reduced * factor, min(ready * factor, canvas.height)
        views = below.canvas.views(stage.reduced, ready)
        block = _Block(below, ready)
        y = y0
        while y < y1:
            # Pieces end at band boundaries (views, no copies), rounded down to whole boxes;
            # a box across a boundary (tile not a multiple of factor) is copied on its own.
            end = min(y1, (y // canvas.tile + 1) * canvas.tile)
            if end < y1:
                end = y + (end - y) // factor * factor
            end = end if end > y else min(y + factor, y1)
            rows = canvas.rows(y, end)
            step = max(1, _REDUCE_BYTES // max(1, rows[0].nbytes * factor)) * factor
            for start in range(0, rows.shape[0], step):
                block.futures.append(self._pool.submit(
                    reduce_into, rows[start : start + step], factor, views,
                    (y - y0 + start) // factor, priority=DRAIN))
            y = end
        self._pending.append(block)
        stage.reduced = ready
        canvas.release(y1)
