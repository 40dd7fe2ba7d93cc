"""Decoding stored JPEG tiles into band rows, at full size or scaled down in the DCT domain.

libjpeg-turbo decodes at 1/2, 1/4 or 1/8 scale by running a reduced inverse DCT on the
low-frequency coefficients of each 8 x 8 block (ITU-T T.81 A.3.3 read backwards): no full
size IDCT, no full size pixels and no separate box filter. For a generated level below a
passed-through level that is most of the work saved: the entropy decoding is all that is
left of a full decode. The result is a low-pass filter close to the box filter of
:func:`downsample` (measured 56-59 dB PSNR between the two on Aperio and synthetic tiles,
far above the 35 dB the lower levels must reach after re-encoding).

A block of an edge tile that holds padding would leak the padding into the scaled pixels, so
edge tiles (those the level's right or bottom edge cuts) are decoded at full size, cropped and
box-filtered: the partial boxes at the edges then average only real pixels, as
:func:`downsample` does.

simplejpeg (the TurboJPEG API) releases the GIL while decoding, so tasks scale across threads.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from dicomizer.bands import Views, scatter
from wsi.errors import InvalidInput

SCALES = (2, 4, 8)
"""The DCT scaling factors used (libjpeg offers M/8; only these are pure box-like halvings)."""


def downsample(pixels: np.ndarray, factor: int) -> np.ndarray:
    """Box filter by ``factor``, rounded to nearest; a partial box at the right or bottom
    edge averages the pixels it has.

    Pillow's ``Image.reduce`` (C, GIL released) is about twice as fast as summing strided
    numpy views and rounds the same way. A C-contiguous input is read without a copy.
    """
    image = Image.fromarray(np.ascontiguousarray(pixels), mode="RGB")
    return np.asarray(image.reduce(factor))


def decode_jpeg(frame: bytes, min_size: tuple[int, int] | None = None) -> np.ndarray:
    """RGB pixels of a complete JPEG stream; with ``min_size`` (width, height) at the
    smallest DCT scale (1/2, 1/4, 1/8) that is at least that large."""
    # Imported here: a conversion that only passes tiles through never decodes one.
    import simplejpeg

    try:
        if min_size is None:
            return simplejpeg.decode_jpeg(frame, "RGB", strict=False)
        return simplejpeg.decode_jpeg(frame, "RGB", min_width=min_size[0],
                                      min_height=min_size[1], strict=False)
    except Exception as exc:  # codec errors come as several types
        raise InvalidInput(f"cannot decode a stored tile ({exc})") from None


def can_scale(tile_width: int, tile_height: int, factor: int) -> bool:
    """True if tiles of that size can be decoded straight into the level ``factor`` below."""
    return factor in SCALES and tile_width % factor == 0 and tile_height % factor == 0


def decode_tiles_into(
    frames: Sequence[bytes],
    first_column: int,
    row: int,
    tile_size: tuple[int, int],
    level_size: tuple[int, int],
    scale: int,
    views: Views,
) -> None:
    """Decode the stored tiles of one tile row at 1/``scale`` into ``views``.

    ``frames`` are the tiles of columns ``first_column`` onwards of tile row ``row`` of a
    level of ``level_size`` (width, height) with tiles of ``tile_size`` (width, height);
    ``views`` (from :meth:`BandCanvas.views`) hold the rows of the target level that this
    tile row covers, full width.
    """
    tile_width, tile_height = tile_size
    level_width, level_height = level_size
    valid_height = min(tile_height, level_height - row * tile_height)
    for i, frame in enumerate(frames):
        x = (first_column + i) * tile_width
        valid_width = min(tile_width, level_width - x)
        if scale == 1:
            pixels = decode_jpeg(frame)[:valid_height, :valid_width]
        elif valid_width < tile_width or valid_height < tile_height:
            pixels = downsample(decode_jpeg(frame)[:valid_height, :valid_width], scale)
        else:
            pixels = decode_jpeg(frame, (tile_width // scale, tile_height // scale))
            if pixels.shape[:2] != (tile_height // scale, tile_width // scale):
                pixels = downsample(decode_jpeg(frame), scale)
        scatter(views, pixels[..., :3], x // scale)


def transcode_tiles(
    frames: Sequence[bytes],
    first_column: int,
    row: int,
    tile: int,
    level_size: tuple[int, int],
    encode: Callable[[np.ndarray], bytes],
    factor: int,
    views: Views | None,
) -> list[bytes]:
    """Decode stored square tiles, encode each as a frame of the same grid and, with
    ``views``, box-filter it by ``factor`` into the rows of the level below.

    Used when a level is re-encoded on the source's own tile grid: each tile is handled on
    its own, so the level needs no band of pixels and its pixels are copied only once, into
    the (``factor``² times smaller) level below. Edge tiles are cropped to the level and
    padded with white, as bands are. ``tile`` must be a multiple of ``factor``.
    """
    level_width, level_height = level_size
    valid_height = min(tile, level_height - row * tile)
    encoded = []
    for i, frame in enumerate(frames):
        x = (first_column + i) * tile
        valid_width = min(tile, level_width - x)
        pixels = decode_jpeg(frame)[:valid_height, :valid_width, :3]
        if pixels.shape[:2] == (tile, tile):
            encoded.append(encode(pixels))
        else:
            padded = np.full((tile, tile, 3), 255, dtype=np.uint8)
            padded[:valid_height, :valid_width] = pixels
            encoded.append(encode(padded))
        if views is not None:
            scatter(views, downsample(pixels, factor), x // factor)
    return encoded
