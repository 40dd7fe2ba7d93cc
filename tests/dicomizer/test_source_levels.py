"""Lower source levels (Aperio's 4x, 16x) passed through, and the plan that picks them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pydicom
import pytest
from pydicom.encaps import generate_frames
from wsidicom import WsiDicom

from dicomizer.convert import convert
from dicomizer.encoders import make_encoder
from dicomizer.options import ConversionOptions
from dicomizer.plan import plan_pyramid
from samples.synthetic_slide import write_synthetic_svs
from tests.dicomizer.conftest import dciodvfy_errors
from wsi.readers import open_slide
from wsi.readers.base import Level, StoredTiles

JPEG = StoredTiles("1.2.840.10008.1.2.4.50", "RGB")


@pytest.fixture(scope="module")
def pyramid_svs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2000 x 1500 Aperio-like SVS that also stores 4x and 16x levels."""
    return write_synthetic_svs(tmp_path_factory.mktemp("pyramid") / "pyramid.svs", 2000, 1500,
                               seed=5, levels=(4, 16))


def test_matching_source_levels_pass_through_and_start_segments() -> None:
    levels = [Level(0, 2221, 2967, 240, 240, 1.0, JPEG),
              Level(1, 555, 741, 240, 240, 4.0, JPEG),      # floor(size / 4): matches
              Level(2, 740, 989, 240, 240, 3.0, JPEG),      # downsample 3: not a level
              Level(3, 138, 185, 256, 256, 16.0, JPEG)]     # other tile size
    encoder = make_encoder("jpeg")

    plan = plan_pyramid(levels, ConversionOptions(), encoder)
    forced = plan_pyramid(levels, ConversionOptions(force_reencode=True), encoder)

    assert [(lv.width, lv.height, lv.source) for lv in plan.levels] == [
        (2221, 2967, 0), (1111, 1484, None), (555, 741, 1), (278, 371, None),
        (139, 186, None)]
    assert [[lv.index for lv in segment] for segment in plan.segments()] == [[0, 1], [2, 3, 4]]
    assert all(lv.passthrough is None for lv in forced.levels)
    assert forced.tile == 240  # the source grid is kept when re-encoding
    assert [lv.source for lv in forced.levels] == [0, None, None, None, None]


def test_stored_lower_levels_are_copied_frame_for_frame(tmp_path: Path,
                                                        pyramid_svs: Path) -> None:
    result = convert(pyramid_svs, tmp_path / "out")

    levels = [i for i in result.instances if i.name.startswith("level-")]
    assert [(i.width, i.height, i.passthrough) for i in levels] == [
        (2000, 1500, True), (1000, 750, False), (500, 375, True), (250, 188, False),
        (125, 93, True)]
    with open_slide(pyramid_svs) as reader:
        for output, source in ((2, 1), (4, 2)):
            ds = pydicom.dcmread(result.files[output])
            frames = list(generate_frames(ds.PixelData, number_of_frames=ds.NumberOfFrames))
            level = reader.levels[source]
            stored = [reader.read_tile(source, col, row) for row in range(level.tiles_down)
                      for col in range(level.tiles_across)]
            assert [f[: len(s)] for f, s in zip(frames, stored, strict=True)] == stored
            assert list(ds.ImageType) == ["DERIVED", "PRIMARY", "VOLUME", "RESAMPLED"]
            assert ds.PhotometricInterpretation == "RGB"
    assert [dciodvfy_errors(p) for p in result.files] == [[] for _ in result.files]


def test_mixed_pyramid_opens_in_wsidicom_and_openslide(tmp_path: Path,
                                                       pyramid_svs: Path) -> None:
    result = convert(pyramid_svs, tmp_path / "out")

    with WsiDicom.open(tmp_path / "out") as wsi:
        sizes = [(level.size.width, level.size.height) for level in wsi.levels]
        passed = np.asarray(wsi.read_region((100, 100), 2, (64, 64)))[..., :3]
        generated = np.asarray(wsi.read_region((50, 50), 3, (64, 64)))[..., :3]
    with openslide.OpenSlide(str(result.files[0])) as slide:
        dimensions = list(slide.level_dimensions)
    with open_slide(pyramid_svs) as reader:
        source = reader.read_region(1, 100, 100, 64, 64)
        below = reader.read_region(1, 100, 100, 128, 128)

    assert sizes == dimensions == [(2000, 1500), (1000, 750), (500, 375), (250, 188),
                                   (125, 93)]
    assert np.array_equal(passed, source)
    # Level 3 is generated from the stored 4x level, not from the base.
    expected = below.reshape(64, 2, 64, 2, 3).mean(axis=(1, 3))
    assert 10 * np.log10(255**2 / np.mean((generated - expected) ** 2)) >= 35.0
