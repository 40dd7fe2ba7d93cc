"""The downsample cascade's pieces: box filter, band accumulation, tile splitting."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from dicomizer.pyramid_builder import Downsampler, downsample, parallel_downsample, split_tiles


def random_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


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


def test_parallel_downsample_equals_serial() -> None:
    image = random_image(20, 9001)

    with ThreadPoolExecutor(2) as pool:
        assert np.array_equal(parallel_downsample(image, 2, pool), downsample(image, 2))


@pytest.mark.parametrize(("factor", "tile", "height"), [(2, 16, 100), (3, 16, 100), (2, 10, 7)])
def test_downsampler_bands_equal_downsampling_the_whole_level(factor: int, tile: int,
                                                              height: int) -> None:
    level = random_image(height, 45, seed=1)
    downsampler = Downsampler(factor, tile, 45)

    bands = []
    for y in range(0, height, tile):
        bands += downsampler.push(level[y : y + tile])
    bands += downsampler.finish()

    assert all(band.shape[0] == tile for band in bands[:-1])
    assert np.array_equal(np.concatenate(bands), downsample(level, factor))


def test_split_tiles_pads_edges_with_white() -> None:
    band = random_image(5, 21)

    tiles = list(split_tiles(band, 8))

    assert [t.shape for t in tiles] == [(8, 8, 3)] * 3
    assert np.array_equal(tiles[2][:5, :5], band[:, 16:21])
    assert (tiles[2][5:] == 255).all() and (tiles[2][:, 5:] == 255).all()
