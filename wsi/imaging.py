"""Display images from stored frames: decode to 8-bit RGB or grey, compose, scale, encode.

Used where a browser cannot take the stored bytes (JPEG 2000, JPEG-LS, lossless JPEG, RLE,
native pixels, 12-bit JPEG) and to compose regions out of tiles (IIIF, thumbnails).
Every function works on one bounded image; callers bound the sizes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

import imagecodecs
import numpy as np
from PIL import Image

from wsi.browser_jpeg import for_browser
from wsi.codecs import JPEG_BASELINE, NATIVE, RLE_LOSSLESS, PixelDescription, decode_frame
from wsi.errors import Unsupported

OutputFormat = Literal["jpeg", "png", "webp"]
MEDIA_TYPES: dict[str, str] = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
JPEG_QUALITY = 90
WHITE = 255

_JPEG_8BIT = frozenset({JPEG_BASELINE, "1.2.840.10008.1.2.4.51"})


def decode_for_display(
    data: bytes,
    transfer_syntax_uid: str,
    pixels: PixelDescription,
    photometric: str,
    bits_stored: int | None = None,
) -> np.ndarray:
    """A stored frame as uint8 ``(rows, cols, 3)`` RGB or ``(rows, cols)`` grey.

    JPEG frames are decoded as a browser would after :func:`for_browser`'s repair, so both
    paths show the same colours. YBR_FULL native and RLE pixels are converted to RGB
    (PS3.3 C.7.6.3.1.2); MONOCHROME1 is inverted; deeper samples are scaled to 8 bits.
    """
    if transfer_syntax_uid in _JPEG_8BIT:
        data = for_browser(data, photometric) or data
    array = decode_frame(data, transfer_syntax_uid, pixels)
    if photometric == "PALETTE COLOR":
        raise Unsupported("palette colour frames cannot be displayed")
    if array.dtype != np.uint8:
        shift = max(0, (bits_stored or array.dtype.itemsize * 8) - 8)
        array = np.clip(array.astype(np.int64) >> shift, 0, 255).astype(np.uint8)
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    native = transfer_syntax_uid in NATIVE or transfer_syntax_uid == RLE_LOSSLESS
    if native and array.ndim == 3 and photometric.startswith("YBR_FULL"):
        array = ycbcr_to_rgb(array)
    if photometric == "MONOCHROME1":
        array = 255 - array
    return array


def ycbcr_to_rgb(array: np.ndarray) -> np.ndarray:
    """Full-range YCbCr (JFIF / YBR_FULL) to RGB."""
    ycc = array.astype(np.float32)
    y, cb, cr = ycc[..., 0], ycc[..., 1] - 128.0, ycc[..., 2] - 128.0
    rgb = np.stack(
        (y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb), axis=-1
    )
    return np.clip(np.rint(rgb), 0, 255).astype(np.uint8)


def encode(array: np.ndarray, fmt: OutputFormat, quality: int = JPEG_QUALITY) -> bytes:
    """Encode a uint8 grey or RGB image."""
    array = np.ascontiguousarray(array)
    if fmt == "jpeg":
        return bytes(imagecodecs.jpeg8_encode(array, level=quality))
    if fmt == "png":
        return bytes(imagecodecs.png_encode(array))
    if fmt == "webp":
        return bytes(imagecodecs.webp_encode(array, level=quality))
    raise Unsupported(f"cannot encode images as {fmt}")


@functools.lru_cache(maxsize=32)
def blank(width: int, height: int, fmt: OutputFormat) -> bytes:
    """A white image of the given size (a tile the slide does not store)."""
    return encode(np.full((height, width, 3), WHITE, dtype=np.uint8), fmt)


def compose(
    width: int,
    height: int,
    x: int,
    y: int,
    tile_width: int,
    tile_height: int,
    fetch: Callable[[int, int], np.ndarray | None],
    grey: bool = False,
) -> np.ndarray:
    """The ``width`` x ``height`` region at (x, y) of a tiled level, from its tiles.

    ``fetch(col, row)`` returns a decoded tile or None for a missing one (left white).
    Memory: the output plus one tile.
    """
    shape = (height, width) if grey else (height, width, 3)
    out = np.full(shape, WHITE, dtype=np.uint8)
    for row in range(y // tile_height, (y + height - 1) // tile_height + 1):
        for col in range(x // tile_width, (x + width - 1) // tile_width + 1):
            tile = fetch(col, row)
            if tile is None:
                continue
            tx, ty = col * tile_width, row * tile_height
            left, top = max(x, tx), max(y, ty)
            right = min(x + width, tx + tile_width, tx + tile.shape[1])
            bottom = min(y + height, ty + tile_height, ty + tile.shape[0])
            if right <= left or bottom <= top:
                continue
            piece = tile[top - ty : bottom - ty, left - tx : right - tx]
            if grey and piece.ndim == 3:
                piece = to_grey(piece)
            elif not grey and piece.ndim == 2:
                piece = np.repeat(piece[:, :, np.newaxis], 3, axis=2)
            out[top - y : bottom - y, left - x : right - x] = piece
    return out


def to_grey(array: np.ndarray) -> np.ndarray:
    """Luma of an RGB image (ITU-R BT.601 weights)."""
    if array.ndim == 2:
        return array
    weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return np.clip(np.rint(array.astype(np.float32) @ weights), 0, 255).astype(np.uint8)


def resize(array: np.ndarray, width: int, height: int) -> np.ndarray:
    """Scale to ``width`` x ``height`` (area-averaging when shrinking)."""
    if array.shape[1] == width and array.shape[0] == height:
        return array
    image = Image.fromarray(array)
    shrinking = width < array.shape[1] and height < array.shape[0]
    method = Image.Resampling.BOX if shrinking else Image.Resampling.BILINEAR
    return np.asarray(image.resize((width, height), method))


def fit_within(width: int, height: int, max_side: int) -> tuple[int, int]:
    """The size of a ``width`` x ``height`` image scaled to fit ``max_side`` (never up)."""
    scale = min(1.0, max_side / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))
