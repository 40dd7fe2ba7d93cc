"""JPEG stream surgery for passthrough (ITU-T T.81 Annex B): tables splicing and colour marker.

TIFF stores JPEG tiles as *abbreviated* streams whose quantisation and Huffman tables live
once in the ``JPEGTables`` tag (TIFF Technical Note 2). A DICOM frame must be a complete
interchange stream (PS3.5 §8.2.1, A.4.1), so the tables are spliced in after SOI.

Aperio stores RGB samples in JPEG without a JFIF or Adobe marker and with component ids
0, 1, 2; a decoder then assumes YCbCr (T.872 §6.5.3 / libjpeg's heuristics) and shows false
colours. An Adobe APP14 segment with transform 0 says "no colour transform" to every libjpeg
derived decoder, so it is inserted for such tiles; the scan data is left byte for byte.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from wsi.browser_jpeg import ADOBE_TRANSFORM_NONE

SOI = b"\xff\xd8"
EOI = b"\xff\xd9"
_SOS = 0xDA
_APP0 = 0xE0
_APP14 = 0xEE
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, 0xD8, 0xD9, *range(0xD0, 0xD8)})

ADOBE_RGB_APP14 = ADOBE_TRANSFORM_NONE
"""Adobe APP14 segment with transform 0: the components are not colour transformed."""


@dataclass(frozen=True)
class JpegHeader:
    """Facts from a JPEG frame header; nothing is decoded."""

    width: int
    height: int
    components: int
    component_ids: tuple[int, ...]
    sampling: tuple[tuple[int, int], ...]
    """(horizontal, vertical) sampling factor per component."""
    baseline: bool
    jfif: bool
    adobe_transform: int | None

    @property
    def subsampled(self) -> bool:
        """True if any chroma component has fewer samples than the first component."""
        return len(set(self.sampling)) > 1

    @property
    def holds_rgb(self) -> bool:
        """True if a standard decoder will output the samples without colour conversion."""
        if self.components != 3:
            return False
        if self.adobe_transform is not None:
            return self.adobe_transform == 0
        return not self.jfif and self.component_ids == (0x52, 0x47, 0x42)


def segments(stream: bytes) -> list[tuple[int, int, int]]:
    """(marker, offset of the marker, segment length incl. marker) up to and including SOS."""
    found = []
    index = 0
    while index + 1 < len(stream):
        if stream[index] != 0xFF:
            raise ValueError(f"JPEG marker expected at offset {index}")
        marker = stream[index + 1]
        if marker == 0xFF:
            index += 1
            continue
        if marker in _STANDALONE:
            found.append((marker, index, 2))
            index += 2
            continue
        (length,) = struct.unpack_from(">H", stream, index + 2)
        found.append((marker, index, length + 2))
        if marker == _SOS:
            break
        index += length + 2
    return found


def parse_header(stream: bytes) -> JpegHeader:
    """Read the frame header of a complete (or abbreviated) JPEG stream."""
    jfif = False
    adobe: int | None = None
    for marker, offset, length in segments(stream):
        body = stream[offset + 4 : offset + length]
        if marker == _APP0 and body.startswith(b"JFIF\x00"):
            jfif = True
        elif marker == _APP14 and body.startswith(b"Adobe") and len(body) >= 12:
            adobe = body[11]
        elif marker in _SOF_MARKERS:
            height, width, count = struct.unpack_from(">HHB", body, 1)
            ids = tuple(body[6 + 3 * i] for i in range(count))
            sampling = tuple((body[7 + 3 * i] >> 4, body[7 + 3 * i] & 0x0F) for i in range(count))
            header = (width, height, count, ids, sampling, marker == 0xC0)
    try:
        width, height, count, ids, sampling, baseline = header
    except NameError:
        raise ValueError("no start of frame marker in JPEG stream") from None
    return JpegHeader(width, height, count, ids, sampling, baseline, jfif, adobe)


def splice_prefix(tables: bytes | None, *, rgb_marker: bool = False) -> bytes:
    """SOI, [Adobe APP14 transform 0], and the body of the TIFF ``JPEGTables`` value.

    ``tables`` is the TIFF ``JPEGTables`` value (SOI, DQT/DHT segments, EOI). The prefix is
    the same for every tile of a page, so it is computed once per page.
    """
    parts = [SOI]
    if rgb_marker:
        parts.append(ADOBE_RGB_APP14)
    if tables:
        body = tables[2:] if tables.startswith(SOI) else tables
        parts.append(body[:-2] if body.endswith(EOI) else body)
    return b"".join(parts)


def splice_tables(tile: bytes, tables: bytes | None, *, rgb_marker: bool = False) -> bytes:
    """Return a complete interchange stream: SOI, [Adobe APP14], JPEGTables body, tile body.

    With ``rgb_marker`` an Adobe APP14 transform-0 segment is added unless the tile has one.
    Only the tile's SOI is replaced: its own segments and entropy-coded data follow unchanged.
    """
    if not tile.startswith(SOI):
        raise ValueError("JPEG tile does not start with SOI")
    if rgb_marker and parse_header(tile).adobe_transform is not None:
        rgb_marker = False
    return splice_prefix(tables, rgb_marker=rgb_marker) + tile[2:]
