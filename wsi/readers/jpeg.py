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

from wsi.jpeg_stream import ADOBE_TRANSFORM_NONE, EOI, SOI, parse_header


def splice_prefix(tables: bytes | None, *, rgb_marker: bool = False) -> bytes:
    """SOI, [Adobe APP14 transform 0], and the body of the TIFF ``JPEGTables`` value.

    ``tables`` is the TIFF ``JPEGTables`` value (SOI, DQT/DHT segments, EOI). The prefix is
    the same for every tile of a page, so it is computed once per page.
    """
    parts = [SOI]
    if rgb_marker:
        parts.append(ADOBE_TRANSFORM_NONE)
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
