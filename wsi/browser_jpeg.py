"""Can a browser show a stored JPEG frame as it is, and with which colours (ITU-T T.81 Annex B)?

Browsers decode JPEG with libjpeg-turbo, which picks the colour space of a three-component
stream this way (``jdapimin.c``, T.872 §6.5.3): a JFIF APP0 marker means YCbCr; an Adobe
APP14 marker means YCbCr when its transform flag is 1 and RGB when it is 0; with neither,
component ids ``R``, ``G``, ``B`` mean RGB and anything else means YCbCr.

DICOM frames say what they hold in PhotometricInterpretation, and the two can disagree:

- Aperio SVS tiles (and DICOM converted from them without repair) hold **RGB** samples with
  component ids 0, 1, 2 and no marker; a browser shows them in false colours. Such frames get
  an Adobe APP14 segment with transform 0 inserted after SOI: 16 bytes, scan data untouched,
  no decode and no quality loss.
- Files whose header says RGB but whose stream carries a JFIF marker (Google's wsi2dcm output)
  really hold YCbCr, as the encoder that wrote the marker did the transform; the stream is
  believed and the frame passes through.

Browsers show 8-bit baseline, extended-Huffman and progressive JPEG with 1 or 3 components;
lossless (SOF3), 12-bit and arithmetic-coded frames are transcoded by the caller.
"""

from __future__ import annotations

import struct

from wsi.jpeg_stream import ADOBE_TRANSFORM_NONE, SOI, JpegHeader, parse_header

_BROWSER_SOF = frozenset({0xC0, 0xC1, 0xC2})


def jpeg_header(data: bytes) -> JpegHeader | None:
    """The header of a JPEG stream, or None if ``data`` is not one (or is cut before its
    first scan)."""
    if not data.startswith(SOI):
        return None
    try:
        return parse_header(data)
    except (ValueError, struct.error, IndexError):
        return None


def for_browser(data: bytes, photometric: str) -> bytes | None:
    """The frame as a browser should receive it, or None if it must be transcoded.

    ``photometric`` is the instance's PhotometricInterpretation. Returns ``data`` itself when
    a browser shows it right, or ``data`` with an Adobe transform-0 marker when it holds RGB
    that a browser would take for YCbCr.
    """
    header = jpeg_header(data)
    if header is None or header.sof not in _BROWSER_SOF or header.precision != 8:
        return None
    if header.components == 1:
        return data
    if header.components != 3:
        return None
    if header.self_describing or header.holds_rgb or photometric != "RGB":
        return data
    return SOI + ADOBE_TRANSFORM_NONE + data[2:]
