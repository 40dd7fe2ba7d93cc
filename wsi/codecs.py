"""One table: transfer syntax ↔ media type ↔ decoder (PS3.18 Table 8.7.3-2/-3, PS3.5 §10).

Decoding goes through imagecodecs (it releases the GIL, so frame decoding scales across
worker threads); RLE Lossless, which imagecodecs does not implement in its DICOM form, goes
through pydicom's decoder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import imagecodecs
import numpy as np

from wsi.errors import Unsupported

IMPLICIT_VR_LE = "1.2.840.10008.1.2"
EXPLICIT_VR_LE = "1.2.840.10008.1.2.1"
DEFLATED_LE = "1.2.840.10008.1.2.1.99"
EXPLICIT_VR_BE = "1.2.840.10008.1.2.2"
JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
RLE_LOSSLESS = "1.2.840.10008.1.2.5"

NATIVE = frozenset({IMPLICIT_VR_LE, EXPLICIT_VR_LE, DEFLATED_LE, EXPLICIT_VR_BE})


@dataclass(frozen=True)
class Codec:
    """How frames in one transfer syntax are named over HTTP and decoded."""

    transfer_syntax_uid: str
    media_type: str
    decode: Callable[[bytes], np.ndarray] | None



CODECS: dict[str, Codec] = {
    c.transfer_syntax_uid: c
    for c in (
        Codec(JPEG_BASELINE, "image/jpeg", imagecodecs.jpeg8_decode),
        Codec("1.2.840.10008.1.2.4.51", "image/jpeg", imagecodecs.jpeg8_decode),
        Codec("1.2.840.10008.1.2.4.57", "image/jpeg", imagecodecs.ljpeg_decode),
        Codec("1.2.840.10008.1.2.4.70", "image/jpeg", imagecodecs.ljpeg_decode),
        Codec("1.2.840.10008.1.2.4.80", "image/jls", imagecodecs.jpegls_decode),
        Codec("1.2.840.10008.1.2.4.81", "image/jls", imagecodecs.jpegls_decode),
        Codec("1.2.840.10008.1.2.4.90", "image/jp2", imagecodecs.jpeg2k_decode),
        Codec("1.2.840.10008.1.2.4.91", "image/jp2", imagecodecs.jpeg2k_decode),
        Codec("1.2.840.10008.1.2.4.92", "image/jpx", imagecodecs.jpeg2k_decode),
        Codec("1.2.840.10008.1.2.4.93", "image/jpx", imagecodecs.jpeg2k_decode),
        Codec("1.2.840.10008.1.2.4.201", "image/jphc", imagecodecs.jpeg2k_decode),
        Codec("1.2.840.10008.1.2.4.202", "image/jphc", imagecodecs.jpeg2k_decode),
        Codec("1.2.840.10008.1.2.4.203", "image/jphc", imagecodecs.jpeg2k_decode),
        Codec(RLE_LOSSLESS, "image/dicom-rle", None),
        *(Codec(ts, "application/octet-stream", None) for ts in NATIVE),
    )
}


def media_type_of(transfer_syntax_uid: str) -> str:
    """The media type a frame in this transfer syntax is sent as when passed through."""
    codec = CODECS.get(transfer_syntax_uid)
    return codec.media_type if codec else "application/octet-stream"


@dataclass(frozen=True)
class PixelDescription:
    """What is needed to interpret native or RLE frame bytes."""

    rows: int
    columns: int
    samples_per_pixel: int
    bits_allocated: int
    pixel_representation: int = 0
    planar_configuration: int = 0


def decode_frame(data: bytes, transfer_syntax_uid: str, pixels: PixelDescription) -> np.ndarray:
    """Decode one stored frame into an array of shape (rows, columns[, samples])."""
    if transfer_syntax_uid in NATIVE:
        dtype = _native_dtype(pixels, big_endian=transfer_syntax_uid == EXPLICIT_VR_BE)
        array = np.frombuffer(data, dtype=dtype)
        count = pixels.rows * pixels.columns * pixels.samples_per_pixel
        array = array[:count]
        if pixels.samples_per_pixel > 1:
            if pixels.planar_configuration == 1:
                return array.reshape(pixels.samples_per_pixel, pixels.rows, pixels.columns)\
                    .transpose(1, 2, 0)
            return array.reshape(pixels.rows, pixels.columns, pixels.samples_per_pixel)
        return array.reshape(pixels.rows, pixels.columns)
    if transfer_syntax_uid == RLE_LOSSLESS:
        from pydicom.pixels.decoders.rle import _rle_decode_frame

        raw = _rle_decode_frame(
            data, pixels.rows, pixels.columns, pixels.samples_per_pixel, pixels.bits_allocated
        )
        # pydicom's RLE decoder yields planar (PlanarConfiguration 1) little-endian samples:
        # it has already reordered the most-significant-byte-first segments (PS3.5 G.2).
        return decode_frame(
            bytes(raw),
            EXPLICIT_VR_LE,
            PixelDescription(
                pixels.rows, pixels.columns, pixels.samples_per_pixel,
                pixels.bits_allocated, pixels.pixel_representation, planar_configuration=1,
            ),
        )
    codec = CODECS.get(transfer_syntax_uid)
    if codec is None or codec.decode is None:
        raise Unsupported(f"cannot decode frames in transfer syntax {transfer_syntax_uid}")
    return codec.decode(data)


def _native_dtype(pixels: PixelDescription, big_endian: bool) -> np.dtype:
    bits = pixels.bits_allocated
    if bits not in (8, 16, 32):
        raise Unsupported(f"cannot decode {bits}-bit native pixel data")
    kind = "i" if pixels.pixel_representation == 1 else "u"
    return np.dtype(f"{'>' if big_endian else '<'}{kind}{bits // 8}")


def native_bytes(array: np.ndarray) -> bytes:
    """Pixel-interleaved little-endian bytes of a decoded frame (Explicit VR LE framing)."""
    return np.ascontiguousarray(array).astype(array.dtype.newbyteorder("<")).tobytes()
