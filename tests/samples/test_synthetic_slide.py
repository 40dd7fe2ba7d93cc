"""The synthetic Aperio-like slide generator."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import openslide
import tifffile

from samples.synthetic_slide import write_synthetic_svs


def test_synthetic_svs_is_read_as_aperio(tmp_path: Path) -> None:
    path = write_synthetic_svs(tmp_path / "s.svs", 1500, 1000, seed=7)

    with tifffile.TiffFile(path) as tiff, openslide.OpenSlide(str(path)) as slide:
        page = tiff.pages.first
        region = np.asarray(slide.read_region((0, 0), 0, (1500, 1000)))[..., :3]
        assert tiff.is_svs and page.photometric == 2 and page.jpegtables is not None
        assert (page.tilewidth, page.imagewidth) == (240, 1500)
        assert slide.properties["openslide.vendor"] == "aperio"
        assert slide.properties["openslide.mpp-x"] == "0.25"
        assert "thumbnail" in slide.associated_images
    assert 100 < region.mean() < 250 and region.std() > 10  # tissue, not a flat fill


def test_reused_tiles_make_large_slides_fast(tmp_path: Path) -> None:
    started = time.monotonic()

    path = write_synthetic_svs(tmp_path / "big.svs", 12000, 9000, reuse=8)

    assert time.monotonic() - started < 20
    with tifffile.TiffFile(path) as tiff:
        assert tiff.pages.first.shape == (9000, 12000, 3)
