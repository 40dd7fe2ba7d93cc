"""IIIF Image API parameter parsing and planning, and the browser JPEG check."""

from __future__ import annotations

import imagecodecs
import numpy as np
import pytest

from samples.wsi_level import encode_tile
from samples.wsi_variants import aperio_rgb_jpeg
from wsi.browser_jpeg import for_browser, jpeg_header
from wsi.errors import InvalidInput
from wsi.iiif import (
    FeatureNotImplemented,
    parse_region,
    parse_request,
    parse_size,
    plan,
    scale_factors,
)
from wsi.jpeg_stream import ADOBE_TRANSFORM_NONE
from wsi.pyramid import InstanceFacts, Size, build_pyramids

IMAGE = Size(1000, 700)


@pytest.mark.parametrize(("text", "region"), [
    ("full", (0, 0, 1000, 700)),
    ("square", (150, 0, 700, 700)),
    ("10,20,30,40", (10, 20, 30, 40)),
    ("900,600,500,500", (900, 600, 100, 100)),
    ("pct:10,10,50,50", (100, 70, 500, 350)),
])
def test_regions(text: str, region: tuple) -> None:
    assert parse_region(text, IMAGE) == region


@pytest.mark.parametrize(("text", "size"), [
    ("max", (300, 200)), ("150,", (150, 100)), (",100", (150, 100)), ("pct:50", (150, 100)),
    ("30,50", (30, 50)), ("!100,100", (100, 66)), ("^600,", (600, 400)),
    ("^!900,900", (900, 600)), ("^max", (4096, 2731)),
])
def test_sizes(text: str, size: tuple) -> None:
    assert parse_size(text, 300, 200) == size


@pytest.mark.parametrize("text", ["301,", "pct:101", "0,", "a,b", "!0,5", "^5000,", ""])
def test_invalid_sizes(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_size(text, 300, 200)


def test_unsupported_features_are_501() -> None:
    with pytest.raises(FeatureNotImplemented):
        parse_request("full", "max", "22.5", "default.jpg", IMAGE)
    with pytest.raises(FeatureNotImplemented):
        parse_request("full", "max", "0", "default.gif", IMAGE)
    with pytest.raises(InvalidInput):
        parse_request("full", "max", "0", "sepia.jpg", IMAGE)


def _pyramid(*sizes: tuple[int, int]) -> object:
    levels = [
        InstanceFacts(str(i), ("O", "P", "VOLUME"), Size(w, h), Size(256, 256),
                      -(-w // 256) * -(-h // 256), "1.2.840.10008.1.2.4.50")
        for i, (w, h) in enumerate(sizes)
    ]
    (pyramid,) = build_pyramids(levels)
    return pyramid


def test_scale_factors_stop_when_no_level_is_close_enough() -> None:
    assert scale_factors(_pyramid((1000, 700), (500, 350), (250, 175))) == [1, 2, 4]
    assert scale_factors(_pyramid((4000, 3000))) == [1, 2, 4]
    assert scale_factors(_pyramid((4000, 3000), (1000, 750))) == [1, 2, 4, 8, 16]
    # OpenSeadragon asks for every power of two up to the largest: the list has no gaps.
    assert scale_factors(_pyramid((4000, 3000), (250, 188))) == [1, 2, 4]


def test_plan_passes_aligned_interior_tiles_through() -> None:
    pyramid = _pyramid((1000, 700), (500, 350), (250, 175))

    aligned = plan(pyramid, parse_request("0,0,512,512", "256,256", "0", "default.jpg", IMAGE))
    edge = plan(pyramid, parse_request("512,512,488,188", "244,94", "0", "default.jpg", IMAGE))
    between = plan(pyramid, parse_request("0,0,300,300", "100,", "0", "default.jpg", IMAGE))

    assert (aligned.level.index, aligned.tile) == (1, (0, 0))
    assert (edge.level.index, edge.tile) == (1, None)
    assert (edge.x, edge.y, edge.w, edge.h) == (256, 256, 244, 94)
    assert between.level.index == 1 and between.tile is None


def test_browser_jpeg_rules() -> None:
    rgb = np.zeros((16, 16, 3), np.uint8)
    ycc = encode_tile(rgb)
    aperio = aperio_rgb_jpeg(rgb)
    lossless = bytes(imagecodecs.ljpeg_encode(rgb[:, :, 0]))

    assert for_browser(ycc, "YBR_FULL_422") == ycc
    assert for_browser(ycc, "RGB") == ycc  # JFIF stream: the stream is believed
    assert for_browser(aperio, "YBR_FULL_422") == aperio
    assert for_browser(aperio, "RGB") == aperio[:2] + ADOBE_TRANSFORM_NONE + aperio[2:]
    headers = [jpeg_header(aperio[:2] + ADOBE_TRANSFORM_NONE + aperio[2:]), jpeg_header(aperio),
               jpeg_header(ycc), jpeg_header(ycc[:2] + ADOBE_TRANSFORM_NONE + ycc[2:])]
    # libjpeg's order: JFIF means YCbCr whatever an Adobe marker says; then Adobe; then ids.
    assert [h.holds_rgb if h else None for h in headers] == [True, False, False, False]
    assert jpeg_header(aperio[:40]) is None and jpeg_header(ycc[1:]) is None
    assert for_browser(lossless, "MONOCHROME2") is None
    assert for_browser(b"not a jpeg", "RGB") is None
