"""Runs of restart intervals of one JPEG scan decoded as one stream (ITU-T T.81 F.1.2.3).

Hamamatsu NDPI stores each level as one huge JPEG scan with a restart marker after every
interval (an MCU row, or part of one); tifffile exposes the intervals as segments, each
decoded on its own behind a header sized for one interval. Decoding a region that way costs
one decoder set-up per interval (a 256-row band of a 4 000-pixel-wide level is 32 of them).
Consecutive intervals are consecutive bytes in the file, so a run of them that forms a
rectangle (whole rows of intervals, or part of one row) is a valid scan of its own: the same
header with the rectangle's height and width, the intervals' bytes, and the restart markers
renumbered from RST0 (a decoder expects RST0 first, then RST1 … RST7, RST0 …).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence

import imagecodecs
import numpy as np

from wsi.jpeg_stream import EOI, segments

_SOF0 = 0xC0
_RST0, _RST7 = 0xD0, 0xD7


def sof_offset(header: bytes) -> int | None:
    """Offset of the baseline SOF marker in a JPEG header, ``None`` if it has none."""
    try:
        return next((at for marker, at, _ in segments(header) if marker == _SOF0), None)
    except (ValueError, struct.error):
        return None


def run_stream(header: bytes, sof_at: int, data: bytes, starts: Sequence[int],
               height: int, width: int) -> bytes | None:
    """One JPEG stream of ``width`` x ``height`` from consecutive restart intervals.

    ``header`` runs from SOI to the end of the SOS segment (with the DRI segment), its SOF
    marker at ``sof_at``; ``data`` holds the intervals back to back as stored, each but the
    last ending with its restart marker; ``starts`` are the offsets in ``data`` of the
    second and later intervals. ``None`` if a marker is missing where an interval ends.
    """
    body = bytearray(data)
    for index, at in enumerate(starts):
        if at < 2 or body[at - 2] != 0xFF or not _RST0 <= body[at - 1] <= _RST7:
            return None
        body[at - 1] = _RST0 + index % 8
    end = len(body)
    if end >= 2 and body[end - 2] == 0xFF and (_RST0 <= body[end - 1] <= _RST7
                                               or body[end - 1] == EOI[1]):
        end -= 2  # the last interval's own RSTn (or the scan's EOI): replaced by EOI
    head = bytearray(header)
    struct.pack_into(">HH", head, sof_at + 5, height, width)
    return bytes(head) + memoryview(body)[:end] + EOI


def decode_run(stream: bytes, height: int, width: int, colorspace: int | None,
               outcolorspace: int | str | None) -> np.ndarray | None:
    """Pixels of a :func:`run_stream`, ``None`` if it does not decode to that size."""
    try:
        pixels = imagecodecs.jpeg8_decode(stream, colorspace=colorspace,
                                          outcolorspace=outcolorspace)
    except Exception:  # codec errors come as many types; the caller decodes one by one
        return None
    return pixels if pixels.shape[:2] == (height, width) else None


def blocks(rows: range, cols: range, across: int,
           max_segments: int) -> Iterator[tuple[range, range]]:
    """The segment rectangles of a region that are runs of consecutive segments: whole rows
    of segments when the region spans the level's width, else parts of single rows; at
    most ``max_segments`` segments each."""
    if len(cols) == across:
        step = max(1, max_segments // max(1, across))
        for start in range(rows.start, rows.stop, step):
            yield range(start, min(start + step, rows.stop)), cols
        return
    step = max(1, max_segments)
    for row in rows:
        for start in range(cols.start, cols.stop, step):
            yield range(row, row + 1), range(start, min(start + step, cols.stop))
