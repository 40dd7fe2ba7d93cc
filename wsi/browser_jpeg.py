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
from dataclasses import dataclass

SOI = b"\xff\xd8"
_BROWSER_SOF = frozenset({0xC0, 0xC1, 0xC2})
_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, *range(0xD0, 0xDA)})
_RGB_IDS = (0x52, 0x47, 0x42)

ADOBE_TRANSFORM_NONE = b"\xff\xee\x00\x0eAdobe" + struct.pack(">HHHB", 100, 0, 0, 0)
"""APP14 "Adobe" segment, version 100, transform 0: the components are not transformed."""


@dataclass(frozen=True)
class JpegFacts:
    """Header facts of a JPEG stream, read up to the first scan; nothing is decoded."""

    sof: int
    precision: int
    component_ids: tuple[int, ...]
    jfif: bool
    adobe_transform: int | None

    @property
    def browser_sees_rgb(self) -> bool:
        """True if libjpeg-turbo will take three components as RGB (no colour transform)."""
        if self.jfif:
            return False
        if self.adobe_transform is not None:
            return self.adobe_transform == 0
        return self.component_ids == _RGB_IDS

    @property
    def self_describing(self) -> bool:
        """True if the stream itself states its colour space (a JFIF or Adobe marker)."""
        return self.jfif or self.adobe_transform is not None


def jpeg_facts(data: bytes) -> JpegFacts | None:
    """Facts of a JPEG stream, or None if ``data`` is not one (or is cut before its SOF)."""
    if not data.startswith(SOI):
        return None
    jfif, adobe = False, None
    index = 2
    try:
        while index + 4 <= len(data):
            if data[index] != 0xFF:
                return None
            marker = data[index + 1]
            if marker == 0xFF:
                index += 1
                continue
            if marker in _STANDALONE:
                index += 2
                continue
            (length,) = struct.unpack_from(">H", data, index + 2)
            body = data[index + 4 : index + 2 + length]
            if marker == 0xE0 and body.startswith(b"JFIF\0"):
                jfif = True
            elif marker == 0xEE and body.startswith(b"Adobe") and len(body) >= 12:
                adobe = body[11]
            elif marker in _SOF:
                count = body[5]
                ids = tuple(body[6 + 3 * i] for i in range(count))
                return JpegFacts(marker, body[0], ids, jfif, adobe)
            elif marker == 0xDA:
                return None
            index += 2 + length
    except (struct.error, IndexError):
        return None
    return None


def for_browser(data: bytes, photometric: str) -> bytes | None:
    """The frame as a browser should receive it, or None if it must be transcoded.

    ``photometric`` is the instance's PhotometricInterpretation. Returns ``data`` itself when
    a browser shows it right, or ``data`` with an Adobe transform-0 marker when it holds RGB
    that a browser would take for YCbCr.
    """
    facts = jpeg_facts(data)
    if facts is None or facts.sof not in _BROWSER_SOF or facts.precision != 8:
        return None
    if len(facts.component_ids) == 1:
        return data
    if len(facts.component_ids) != 3:
        return None
    if facts.self_describing or facts.browser_sees_rgb or photometric != "RGB":
        return data
    return SOI + ADOBE_TRANSFORM_NONE + data[2:]
