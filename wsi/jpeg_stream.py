"""The markers of a JPEG interchange stream (ITU-T T.81 Annex B): the segment walk and the
frame header. Nothing is decoded; callers decide what the facts mean (passthrough splicing in
:mod:`wsi.readers.jpeg`, browser display in :mod:`wsi.browser_jpeg`)."""

from __future__ import annotations

import struct
from dataclasses import dataclass

SOI = b"\xff\xd8"
EOI = b"\xff\xd9"
_SOS = 0xDA
_APP0 = 0xE0
_APP14 = 0xEE
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_STANDALONE = frozenset({0x01, 0xD8, 0xD9, *range(0xD0, 0xD8)})
_RGB_IDS = (0x52, 0x47, 0x42)

ADOBE_TRANSFORM_NONE = b"\xff\xee\x00\x0eAdobe" + struct.pack(">HHHB", 100, 0, 0, 0)
"""APP14 "Adobe" segment, version 100, transform 0: the components are not transformed."""


@dataclass(frozen=True)
class JpegHeader:
    """Facts from a JPEG stream's markers up to its first scan."""

    sof: int
    """The start-of-frame marker (0xC0 baseline, 0xC1 extended, 0xC2 progressive, ...)."""
    precision: int
    width: int
    height: int
    component_ids: tuple[int, ...]
    sampling: tuple[tuple[int, int], ...]
    """(horizontal, vertical) sampling factor per component."""
    jfif: bool
    adobe_transform: int | None

    @property
    def components(self) -> int:
        """Number of colour components."""
        return len(self.component_ids)

    @property
    def baseline(self) -> bool:
        """True for baseline sequential DCT (SOF0)."""
        return self.sof == 0xC0

    @property
    def subsampled(self) -> bool:
        """True if any chroma component has fewer samples than the first component."""
        return len(set(self.sampling)) > 1

    @property
    def holds_rgb(self) -> bool:
        """True if a libjpeg-derived decoder (every browser) outputs three components without
        a colour transform. Its rule (``jdapimin.c``, T.872 §6.5.3): a JFIF marker means
        YCbCr; else an Adobe marker means RGB when its transform is 0; else component ids
        ``R``, ``G``, ``B`` mean RGB."""
        if self.components != 3 or self.jfif:
            return False
        if self.adobe_transform is not None:
            return self.adobe_transform == 0
        return self.component_ids == _RGB_IDS

    @property
    def self_describing(self) -> bool:
        """True if the stream itself states its colour space (a JFIF or Adobe marker)."""
        return self.jfif or self.adobe_transform is not None


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
    """Read the frame header of a complete (or abbreviated) JPEG stream; ValueError if there
    is none before the first scan (``struct.error`` or IndexError if it is cut short).

    Every marker up to SOS counts, as for a decoder: an APPn segment may follow the SOF."""
    jfif = False
    adobe: int | None = None
    frame: tuple[int, int, int, int, tuple[int, ...], tuple[tuple[int, int], ...]] | None = None
    for marker, offset, length in segments(stream):
        body = stream[offset + 4 : offset + length]
        if marker == _APP0 and body.startswith(b"JFIF\x00"):
            jfif = True
        elif marker == _APP14 and body.startswith(b"Adobe") and len(body) >= 12:
            adobe = body[11]
        elif marker in _SOF_MARKERS and frame is None:
            precision, height, width, count = struct.unpack_from(">BHHB", body, 0)
            ids = tuple(body[6 + 3 * i] for i in range(count))
            sampling = tuple((body[7 + 3 * i] >> 4, body[7 + 3 * i] & 0x0F) for i in range(count))
            frame = (marker, precision, width, height, ids, sampling)
    if frame is None:
        raise ValueError("no start of frame marker in JPEG stream")
    return JpegHeader(*frame, jfif=jfif, adobe_transform=adobe)
