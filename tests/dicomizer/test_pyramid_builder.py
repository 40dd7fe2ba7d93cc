"""The downsample cascade's pieces: box filter, bands, scaled decoding, the task pool, and the
builder against a whole-level reference on synthetic readers."""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from pathlib import Path

import imagecodecs
import numpy as np
import pytest

from dicomizer.bands import BandCanvas, scatter
from dicomizer.encoder_pool import OrderedFrameSink
from dicomizer.plan import LevelPlan, PyramidPlan
from dicomizer.pyramid_builder import PyramidBuilder, split_tiles
from dicomizer.tasks import DRAIN, FILL, PriorityPool
from dicomizer.tile_decoding import decode_jpeg, decode_tiles_into, downsample
from wsi.readers.base import (
    AssociatedImage,
    Level,
    SlideProperties,
    SlideReader,
    StoredRun,
    StoredTiles,
)


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def smooth_image(height: int, width: int) -> np.ndarray:
    """Tissue-like content (JPEG-friendly, unlike noise)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    r = 180 + 60 * np.sin(x / 13.0) * np.cos(y / 17.0)
    g = 120 + 80 * np.sin((x + y) / 23.0)
    b = 200 + 40 * np.cos(x / 7.0 - y / 11.0)
    return np.clip(np.stack([r, g, b], axis=-1), 0, 255).astype(np.uint8)


def psnr(actual: np.ndarray, expected: np.ndarray) -> float:
    mse = float(np.mean((actual.astype(np.float64) - expected.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@pytest.mark.parametrize("factor", [2, 3, 4])
def test_downsample_is_a_rounded_box_filter_with_partial_edge_boxes(factor: int) -> None:
    image = random_image(37, 51)

    h, w = -(-37 // factor), -(-51 // factor)
    expected = np.empty((h, w, 3))
    for y in range(h):
        for x in range(w):
            box = image[y * factor : (y + 1) * factor, x * factor : (x + 1) * factor]
            expected[y, x] = box.reshape(-1, 3).mean(axis=0)

    error = np.abs(downsample(image, factor).astype(int) - np.floor(expected + 0.5))
    # Exact for the default factor 2; Pillow's fixed-point division may be off by one else.
    assert error.max() == 0 if factor == 2 else error.max() <= 1


def test_band_canvas_hands_out_views_and_complete_bands_in_order() -> None:
    canvas = BandCanvas(width=7, height=25, tile=10)
    level = random_image(25, 7)

    views = canvas.views(6, 23)
    scatter(views, level[6:23], 0)
    scatter(canvas.views(0, 6), level[0:6], 0)
    first = canvas.complete(12)
    scatter(canvas.views(23, 25), level[23:25], 0)
    rest = canvas.complete(25)

    assert [offset for offset, _ in views] == [0, 4, 14]
    assert [index for index, _ in first] == [0]
    assert [index for index, _ in rest] == [1, 2]
    assert [band.shape[0] for _, band in first + rest] == [10, 10, 5]
    assert np.array_equal(np.concatenate([band for _, band in first + rest]), level)
    assert np.shares_memory(canvas.rows(10, 20), rest[0][1])
    assert np.array_equal(canvas.rows(8, 13), level[8:13])


def test_band_canvas_release_drops_bands_and_refuses_them_later() -> None:
    canvas = BandCanvas(width=3, height=30, tile=10)
    canvas.views(0, 30)
    canvas.complete(30)

    canvas.release(20)

    with pytest.raises(ValueError):
        canvas.rows(5, 15)
    with pytest.raises(ValueError):
        canvas.views(0, 5)
    assert canvas.rows(20, 30).shape == (10, 3, 3)


def test_split_tiles_pads_edges_with_white() -> None:
    band = random_image(5, 21)

    tiles = split_tiles(band, 8)

    assert [t.shape for t in tiles] == [(8, 8, 3)] * 3
    assert np.array_equal(tiles[2][:5, :5], band[:, 16:21])
    assert (tiles[2][5:] == 255).all() and (tiles[2][:, 5:] == 255).all()


def jpeg_tiles(image: np.ndarray, tile: int) -> list[list[bytes]]:
    """Tile rows of baseline JPEG tiles (4:4:4, quality 95), edge tiles padded with black."""
    rows = []
    for y in range(0, image.shape[0], tile):
        row = []
        for x in range(0, image.shape[1], tile):
            padded = np.zeros((tile, tile, 3), np.uint8)
            piece = image[y : y + tile, x : x + tile]
            padded[: piece.shape[0], : piece.shape[1]] = piece
            row.append(bytes(imagecodecs.jpeg8_encode(padded, level=95, subsampling="444")))
        rows.append(row)
    return rows


def decoded_level(rows: list[list[bytes]], width: int, height: int) -> np.ndarray:
    full = np.concatenate([np.concatenate([decode_jpeg(t) for t in row], axis=1)
                           for row in rows])
    return full[:height, :width]


@pytest.mark.parametrize("scale", [2, 4])
def test_scaled_decoding_is_close_to_the_box_filter_and_exact_at_edges(scale: int) -> None:
    width, height, tile = 150, 100, 32
    rows = jpeg_tiles(smooth_image(height, width), tile)
    reference = downsample(decoded_level(rows, width, height), scale)
    canvas = BandCanvas(-(-width // scale), -(-height // scale), tile)

    for row, frames in enumerate(rows):
        y0 = row * tile // scale
        y1 = min((row + 1) * tile // scale, canvas.height)
        decode_tiles_into(frames, 0, row, (tile, tile), (width, height), scale,
                          canvas.views(y0, y1))
    canvas.complete(canvas.height)
    actual = canvas.rows(0, canvas.height) if canvas.height <= tile else \
        np.concatenate([canvas.rows(y, min(y + tile, canvas.height))
                        for y in range(0, canvas.height, tile)])

    # The right and bottom edge tiles (cut by the level's edge) are box-filtered exactly.
    edge_x, edge_y = (width // tile) * tile // scale, (height // tile) * tile // scale
    assert np.array_equal(actual[:, edge_x:], reference[:, edge_x:])
    assert np.array_equal(actual[edge_y:], reference[edge_y:])
    assert psnr(actual, reference) >= 40.0


def test_priority_pool_drains_before_it_fills_and_hands_over_errors() -> None:
    order: list[str] = []
    gate = threading.Event()

    with PriorityPool(1) as pool:
        blocker = pool.submit(gate.wait, priority=DRAIN)
        fills = [pool.submit(order.append, f"fill{i}", priority=FILL) for i in range(2)]
        drains = [pool.submit(order.append, f"drain{i}", priority=DRAIN) for i in range(2)]
        cancelled = pool.submit(order.append, "cancelled", priority=FILL)
        cancelled.cancel()
        failing = pool.submit(lambda: 1 / 0, priority=FILL)
        gate.set()
        for future in [blocker, *fills, *drains]:
            future.result()

    assert order == ["drain0", "drain1", "fill0", "fill1"]
    with pytest.raises(ZeroDivisionError):
        failing.result()


# -- the builder on synthetic readers ------------------------------------------------------


class ArrayReader(SlideReader):
    """A one-level slide held in memory; stored JPEG tiles when ``jpeg`` is given."""

    name = "array"

    def __init__(self, image: np.ndarray, tile: int, jpeg: list[list[bytes]] | None = None):
        super().__init__(Path("array"))
        self.image, self.tile, self.jpeg = image, tile, jpeg
        stored = StoredTiles("1.2.840.10008.1.2.4.50", "RGB") if jpeg else None
        self._levels = [Level(0, image.shape[1], image.shape[0], tile, tile, 1.0, stored)]

    @classmethod
    def accepts(cls, path: Path, head: bytes) -> bool:
        return False

    @property
    def levels(self) -> Sequence[Level]:
        return self._levels

    @property
    def properties(self) -> SlideProperties:
        return SlideProperties("test")

    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        out = np.full((height, width, 3), 255, np.uint8)
        piece = self.image[y : y + height, x : x + width]
        out[: piece.shape[0], : piece.shape[1]] = piece
        return out

    def read_tile(self, level: int, col: int, row: int) -> bytes:
        assert self.jpeg is not None
        return self.jpeg[row][col]

    def associated(self, kind: str) -> AssociatedImage | None:  # type: ignore[override]
        return None


class FramesOf:
    """A writer that keeps the frames (raw tiles) of one level."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []

    def write_frames(self, frames: list[bytes]) -> None:
        self.frames += frames

    def write_run(self, run: StoredRun) -> None:
        self.frames += run.frames()

    def level(self, plan: LevelPlan) -> np.ndarray:
        tile = plan.tile
        tiles = [np.frombuffer(f, np.uint8).reshape(tile, tile, 3) for f in self.frames]
        rows = [np.concatenate(tiles[r * plan.tiles_across : (r + 1) * plan.tiles_across],
                               axis=1) for r in range(plan.tiles_down)]
        return np.concatenate(rows)[: plan.height, : plan.width]


def build(reader: ArrayReader, tile: int, factor: int,
          passthrough: bool = False) -> tuple[PyramidPlan, list[FramesOf]]:
    base = reader.levels[0]
    levels = [LevelPlan(0, base.width, base.height, tile, base.stored if passthrough else None,
                        0)]
    while levels[-1].width > tile or levels[-1].height > tile:
        above = levels[-1]
        levels.append(LevelPlan(len(levels), -(-above.width // factor),
                                -(-above.height // factor), tile, None))
    plan = PyramidPlan(tuple(levels), tile, factor)
    writers = [FramesOf() for _ in levels]
    with PriorityPool(2) as pool:
        sinks = [OrderedFrameSink(pool, w, level.tiles_across)  # type: ignore[arg-type]
                 for w, level in zip(writers, levels, strict=True)]
        PyramidBuilder(reader, plan, lambda tile: tile.tobytes(), sinks, pool, 2).run()
    return plan, writers


def cascade(level: np.ndarray, count: int, factor: int) -> list[np.ndarray]:
    levels = [level]
    while len(levels) < count:
        levels.append(downsample(levels[-1], factor))
    return levels


@pytest.mark.parametrize(("width", "height", "source_tile", "tile", "factor"), [
    (300, 190, 64, 64, 2),    # aligned bands
    (301, 203, 40, 48, 2),    # source rows straddle output bands, odd sizes
    (250, 170, 32, 40, 3),    # boxes straddle bands (tile not a multiple of the factor)
])
def test_region_pyramid_equals_the_cascaded_box_filter(width: int, height: int,
                                                       source_tile: int, tile: int,
                                                       factor: int) -> None:
    image = random_image(height, width, seed=3)

    plan, writers = build(ArrayReader(image, source_tile), tile, factor)

    expected = cascade(image, len(plan.levels), factor)
    for level, writer, reference in zip(plan.levels, writers, expected, strict=True):
        assert np.array_equal(writer.level(level), reference), f"level {level.index}"


@pytest.mark.parametrize("tile", [32, 40])  # on the source grid (tile by tile), or not
def test_stored_jpeg_pyramid_equals_the_cascade_of_the_decoded_tiles(tile: int) -> None:
    width, height, source_tile = 230, 150, 32
    rows = jpeg_tiles(smooth_image(height, width), source_tile)

    plan, writers = build(ArrayReader(smooth_image(height, width), source_tile, rows), tile, 2)

    expected = cascade(decoded_level(rows, width, height), len(plan.levels), 2)
    for level, writer, reference in zip(plan.levels, writers, expected, strict=True):
        assert np.array_equal(writer.level(level), reference), f"level {level.index}"


def test_passthrough_pyramid_copies_tiles_and_decodes_level_one_scaled() -> None:
    width, height, tile = 230, 150, 32
    rows = jpeg_tiles(smooth_image(height, width), tile)

    plan, writers = build(ArrayReader(smooth_image(height, width), tile, rows), tile, 2,
                          passthrough=True)

    assert writers[0].frames == [frame for row in rows for frame in row]
    expected = cascade(decoded_level(rows, width, height), len(plan.levels), 2)
    for level, writer, reference in zip(plan.levels[1:], writers[1:], expected[1:],
                                        strict=True):
        assert psnr(writer.level(level), reference) >= 40.0, f"level {level.index}"
