"""JPEG strips joined into one frame without decoding (ITU-T T.81 B.2.4.4, F.1.2.3).

TIFF writers (Aperio's thumbnail and macro, for one) store a JPEG image as strips of a few
rows, each its own JPEG stream. A DICOM frame is one stream, so the strips' entropy-coded
segments are copied, byte for byte, into one scan with a restart marker between strips and
a restart interval (DRI) of one strip's MCUs: a decoder then resets the DC predictions at
every strip start, exactly as decoding the strips one by one does. Each strip's scan ends
byte-aligned (T.81 F.1.2.3), as the data before a restart marker must.

This works when every strip but the last is a whole number of MCU rows high and all strips
share their tables and frame parameters; :func:`join_strips` returns ``None`` otherwise
(and the image is re-encoded).
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from wsi.jpeg_stream import EOI, SOI, parse_header, segments
from wsi.readers.jpeg import splice_prefix

_SOF0 = 0xC0
_SOS = 0xDA
_DRI = 0xDD
_RST0 = 0xD0
_MAX_INTERVAL = 0xFFFF


def _split(strip: bytes, single: bool) -> tuple[bytes, bytes, int, int] | None:
    """(header from SOI up to and including the SOS segment, entropy-coded data, offset of
    the SOF height, offset of SOS), or ``None`` if the strip is not one simple scan (with
    restart markers of its own only when it is the ``single`` strip)."""
    end = len(strip.rstrip(b"\x00"))
    if not strip.startswith(SOI) or strip[end - 2 : end] != EOI:
        return None
    found = segments(strip)
    markers = [marker for marker, _, _ in found]
    if markers.count(_SOF0) != 1 or markers[-1] != _SOS or (_DRI in markers and not single):
        return None
    _, sos_at, sos_length = found[-1]
    _, sof_at, _ = found[markers.index(_SOF0)]
    return strip[: sos_at + sos_length], strip[sos_at + sos_length : end - 2], sof_at + 5, sos_at


def join_strips(strips: Sequence[bytes], tables: bytes | None, width: int, height: int,
                rgb_marker: bool = False) -> bytes | None:
    """One baseline JPEG stream of ``width`` x ``height`` from TIFF JPEG strips (complete or
    abbreviated with the page's ``JPEGTables``), scan data unchanged; ``None`` if they cannot
    be joined. ``rgb_marker`` adds an Adobe APP14 transform-0 segment (see
    :mod:`wsi.readers.jpeg`) unless the strips carry an Adobe segment."""
    found = [_split(strip, len(strips) == 1) for strip in strips]
    parts = [part for part in found if part is not None]
    if not parts or len(parts) != len(strips):
        return None
    first_header, _, height_at, sos_at = parts[0]
    frame = parse_header(first_header)
    if not frame.baseline or frame.components != 3 or frame.width != width:
        return None
    mcu_width = 8 * max(h for h, _ in frame.sampling)
    mcu_height = 8 * max(v for _, v in frame.sampling)
    strip_height = frame.height
    heights = []
    for header, _, at, _ in parts:
        # Every strip must have the first one's header but for the frame height.
        if header[:at] + header[at + 2 :] != first_header[:height_at] + first_header[
                height_at + 2 :]:
            return None
        heights.append(struct.unpack_from(">H", header, at)[0])
    if (sum(heights) != height or any(h != strip_height for h in heights[:-1])
            or (len(parts) > 1 and strip_height % mcu_height)):
        return None
    interval = -(-width // mcu_width) * (strip_height // mcu_height)
    if len(parts) > 1 and not 0 < interval <= _MAX_INTERVAL:
        return None
    rgb_marker = rgb_marker and frame.adobe_transform is None
    body = bytearray(first_header[2:sos_at])
    struct.pack_into(">H", body, height_at - 2, height)
    out = [splice_prefix(tables, rgb_marker=rgb_marker), bytes(body)]
    if len(parts) > 1:
        out.append(struct.pack(">BBHH", 0xFF, _DRI, 4, interval))
    out.append(first_header[sos_at:])
    for index, (_, scan, _, _) in enumerate(parts):
        if index:
            out.append(bytes((0xFF, _RST0 + (index - 1) % 8)))
        out.append(scan)
    out.append(EOI)
    return b"".join(out)
