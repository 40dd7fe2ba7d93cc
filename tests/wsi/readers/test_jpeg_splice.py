"""JPEGTables splicing and the Adobe RGB marker (wsi.readers.jpeg)."""

from __future__ import annotations

import imagecodecs
import numpy as np

from samples.synthetic_slide import abbreviate, encode_rgb_jpeg
from wsi.jpeg_stream import ADOBE_TRANSFORM_NONE, parse_header
from wsi.readers.jpeg import splice_tables


def gradient() -> np.ndarray:
    y, x = np.mgrid[0:64, 0:64]
    return np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).astype(np.uint8)


def test_spliced_abbreviated_rgb_tile_decodes_to_the_original_colours() -> None:
    rgb = gradient()
    full = encode_rgb_jpeg(rgb, quality=95)
    tables, tile = abbreviate(full)

    spliced = splice_tables(tile, tables, rgb_marker=True)

    header = parse_header(spliced)
    assert spliced.startswith(b"\xff\xd8" + ADOBE_TRANSFORM_NONE)
    assert spliced.endswith(tile[2:])
    assert header.holds_rgb and header.component_ids == (0, 1, 2)
    assert np.array_equal(imagecodecs.jpeg8_decode(spliced), imagecodecs.jpeg8_decode(full))
    # Without the marker a decoder takes the RGB samples for YCbCr: false colours.
    wrong = imagecodecs.jpeg8_decode(splice_tables(tile, tables))
    assert np.abs(wrong.astype(int) - rgb).mean() > 20


def test_no_second_marker_and_headers_of_ycbcr_streams() -> None:
    ycbcr = bytes(imagecodecs.jpeg8_encode(gradient(), level=90, subsampling="420"))
    adobe = encode_rgb_jpeg(gradient())

    assert splice_tables(adobe, None, rgb_marker=True).count(b"Adobe") == 1
    header = parse_header(ycbcr)
    assert header.jfif and header.subsampled and not header.holds_rgb
    assert (header.width, header.height, header.baseline) == (64, 64, True)
