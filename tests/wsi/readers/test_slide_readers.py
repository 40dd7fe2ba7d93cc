"""Slide readers against the real vendor slides and OpenSlide as the reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import openslide
import pytest

from tests.conftest import SHARED_SLIDES
from wsi.errors import InvalidInput, Unsupported
from wsi.readers import READERS, open_slide

SVS = SHARED_SLIDES / "aperio" / "CMU-1-Small-Region.svs"
NDPI = SHARED_SLIDES / "hamamatsu" / "test3-TRITC 2 (560).ndpi"


@pytest.mark.parametrize("path", [SVS, NDPI], ids=["svs", "ndpi"])
@pytest.mark.parametrize("reader", list(READERS))
def test_regions_equal_openslide(path: Path, reader: str) -> None:
    with openslide.OpenSlide(str(path)) as reference, open_slide(path, reader) as slide:
        expected = np.asarray(reference.read_region((1000, 1200), 0, (300, 200)))[..., :3]
        edge = slide.read_region(0, slide.levels[0].width - 50, 10, 100, 20)
        actual = slide.read_region(0, 1000, 1200, 300, 200)
        kinds = {image.kind for image in slide.associated_images()}
        reference_kinds = set(reference.associated_images)

    assert np.array_equal(actual, expected)
    assert (edge[:, 50:] == 255).all()
    names = {"label": "label", "overview": "macro", "thumbnail": "thumbnail"}
    assert {names[k] for k in kinds} == reference_kinds


def test_tiff_reader_facts_of_the_aperio_slide() -> None:
    with open_slide(SVS) as slide:
        level = slide.levels[0]
        props = slide.properties

    assert slide.name == "tiff"
    assert (level.width, level.height, level.tile_width) == (2220, 2967, 240)
    assert level.stored is not None and level.stored.photometric == "RGB"
    assert props.mpp == (0.499, 0.499) and props.objective_power == 20
    assert props.vendor == "aperio" and props.vendor_properties["ScanScope ID"] == "CPAPERIOCS"
    assert props.lossy_method == "ISO_10918_1" and props.chroma_subsampled is False


def test_ndpi_has_no_stored_tiles_but_all_levels() -> None:
    with open_slide(NDPI) as slide:
        assert [lv.width for lv in slide.levels] == [3968, 1984, 992, 496]
        assert all(lv.stored is None for lv in slide.levels)
        assert slide.properties.mpp == pytest.approx((0.2281750559, 0.2281750559))
        with pytest.raises(Unsupported):
            slide.read_tile(0, 0, 0)


def test_unknown_reader_name() -> None:
    with pytest.raises(InvalidInput, match="unknown reader"):
        open_slide(SVS, "bioformats")
