"""Frame tables: the file span of every frame, found once at ingest.

With the table stored, retrieving frame N is one positioned read. Encapsulated pixel data
(PS3.5 §A.4) is located by walking only the 8-byte item headers, never the fragment values.
"""

from __future__ import annotations

import errno
import os
import struct
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import numpy.typing as npt
import pydicom

from wsi.dicom.part10 import DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN, Part10Header
from wsi.errors import InvalidInput, NotFound, Unsupported

_ITEM = 0xFFFEE000
_SEQUENCE_DELIMITER = 0xFFFEE0DD
_ITEM_HEADER = struct.Struct("<HHL")  # encapsulated items are always little endian (PS3.5 §A.4)
_BLOB_HEADER = struct.Struct("<4sB3xQ")
_BLOB_MAGIC = b"WFT1"
_Offsets = npt.NDArray[np.uint64]


@dataclass(frozen=True, eq=False)
class FrameTable:
    """Absolute file spans ``[starts[i], ends[i])`` of every frame's data."""

    starts: _Offsets
    ends: _Offsets
    fragmented: bool
    """True if a frame spans several fragments: its span then holds inner item headers."""

    def __post_init__(self) -> None:
        starts = np.array(self.starts, dtype=np.uint64)
        ends = np.array(self.ends, dtype=np.uint64)
        if starts.ndim != 1 or starts.shape != ends.shape or bool(np.any(ends < starts)):
            raise ValueError("frame table needs equal-length 1-D starts <= ends")
        starts.setflags(write=False)
        ends.setflags(write=False)
        object.__setattr__(self, "starts", starts)
        object.__setattr__(self, "ends", ends)

    def __len__(self) -> int:
        return len(self.starts)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FrameTable):
            return NotImplemented
        return (
            self.fragmented == other.fragmented
            and np.array_equal(self.starts, other.starts)
            and np.array_equal(self.ends, other.ends)
        )

    def to_bytes(self) -> bytes:
        """Serialise as magic, flags, count, then little-endian uint64 starts and ends."""
        header = _BLOB_HEADER.pack(_BLOB_MAGIC, int(self.fragmented), len(self))
        return header + self.starts.astype("<u8").tobytes() + self.ends.astype("<u8").tobytes()

    @classmethod
    def from_bytes(cls, data: bytes) -> FrameTable:
        """Inverse of :meth:`to_bytes`; raises :class:`InvalidInput` on a malformed blob."""
        if len(data) < _BLOB_HEADER.size:
            raise InvalidInput("frame table blob too short")
        magic, flags, count = _BLOB_HEADER.unpack_from(data)
        if magic != _BLOB_MAGIC or flags > 1 or len(data) != _BLOB_HEADER.size + 16 * count:
            raise InvalidInput("malformed frame table blob")
        offsets = np.frombuffer(data, dtype="<u8", offset=_BLOB_HEADER.size)
        try:
            return cls(offsets[:count], offsets[count:], bool(flags))
        except ValueError as exc:
            raise InvalidInput(f"malformed frame table blob: {exc}") from exc

    def span(self, index: int) -> tuple[int, int]:
        """Return ``(offset, length)`` of frame ``index``'s raw span in the file.

        Unless :attr:`fragmented`, the span is exactly the frame's bytes (fit for sendfile).
        """
        if not 0 <= index < len(self):
            raise NotFound(f"frame index {index} out of range; instance has {len(self)} frames")
        start = int(self.starts[index])
        return start, int(self.ends[index]) - start

    def read_frame(self, fd: int, index: int) -> bytes:
        """Read frame ``index`` (0-based) from ``fd`` with one ``os.pread``."""
        offset, length = self.span(index)
        if not self.fragmented:
            return _pread_exact(fd, length, offset)
        # Include the first fragment's item header so that every fragment can be delimited.
        buffer = memoryview(_pread_exact(fd, length + 8, offset - 8))
        parts: list[memoryview] = []
        pos = 0
        while pos < len(buffer):
            if pos + 8 > len(buffer):
                raise _corrupt(f"frame {index} ends inside an item header")
            group, element, item_length = _ITEM_HEADER.unpack_from(buffer, pos)
            if (group << 16 | element) != _ITEM or pos + 8 + item_length > len(buffer):
                raise _corrupt(f"frame {index} does not match its stored fragment layout")
            parts.append(buffer[pos + 8 : pos + 8 + item_length])
            pos += 8 + item_length
        return b"".join(parts)


def native_frame_length(dataset: pydicom.Dataset) -> int:
    """Bytes per frame of native (uncompressed) pixel data (PS3.5 §8.1.1, PS3.3 C.7.6.3)."""
    try:
        rows, columns = int(dataset.Rows), int(dataset.Columns)
        samples, bits = int(dataset.SamplesPerPixel), int(dataset.BitsAllocated)
    except (AttributeError, TypeError, ValueError) as exc:
        raise InvalidInput(f"image pixel attributes missing or invalid: {exc}") from exc
    if bits == 1 or bits % 8:
        raise Unsupported(f"native pixel data with BitsAllocated {bits} is not supported")
    if str(dataset.get("PhotometricInterpretation", "")) == "YBR_FULL_422":
        samples = 2  # two luminance values share one Cb and one Cr (PS3.3 C.7.6.3.1.2)
    return rows * columns * samples * (bits // 8)


def build_frame_table(
    fh: BinaryIO,
    header: Part10Header,
    number_of_frames: int,
    frame_length: int | None,
    extended_offsets: bytes | None = None,
) -> FrameTable:
    """Locate every frame of the pixel data described by ``header`` in the open file ``fh``.

    ``frame_length`` (see :func:`native_frame_length`) is required for native pixel data.
    ``extended_offsets`` is the raw value of Extended Offset Table (7FE0,0001); it is used only
    if it has one entry per frame, else the fragments are walked.
    """
    location = header.pixel_data
    if location is None:
        if header.transfer_syntax_uid == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
            raise Unsupported("frames of deflated data sets cannot be located in the file")
        raise InvalidInput("instance has no pixel data")
    if number_of_frames < 1:
        raise InvalidInput(f"invalid number of frames: {number_of_frames}")
    if not location.encapsulated:
        if frame_length is None or frame_length < 1:
            raise InvalidInput("native pixel data needs a positive frame length")
        needed = number_of_frames * frame_length
        if location.value_length is None or needed > location.value_length:
            raise InvalidInput(
                f"pixel data shorter than {number_of_frames} frames of {frame_length} bytes"
            )
        starts = location.value_offset + frame_length * np.arange(number_of_frames, dtype=np.uint64)
        return FrameTable(starts, starts + np.uint64(frame_length), False)

    read = _ItemReader(fh, header.file_size)
    bot_tag, bot_length = read(location.value_offset)
    if bot_tag != _ITEM:
        raise InvalidInput("encapsulated pixel data does not start with a Basic Offset Table item")
    first = location.value_offset + 8 + bot_length
    if extended_offsets is not None and len(extended_offsets) == 8 * number_of_frames:
        eot = np.frombuffer(extended_offsets, dtype="<u8").astype(np.uint64)
        return _from_extended_offsets(read, first, eot)

    items = _walk_items(read, first, None)
    positions = np.array([pos for pos, _ in items], dtype=np.uint64)
    lengths = np.array([length for _, length in items], dtype=np.uint64)
    count = len(items)
    if count == number_of_frames:
        firsts = np.arange(count)
    elif count > number_of_frames and bot_length:
        if bot_length != 4 * number_of_frames:
            raise InvalidInput(
                f"Basic Offset Table has {bot_length // 4} entries, expected {number_of_frames}"
            )
        bot = np.frombuffer(read.read_bytes(location.value_offset + 8, bot_length), dtype="<u4")
        relative = positions - np.uint64(first)
        firsts = np.minimum(np.searchsorted(relative, bot.astype(np.uint64)), count - 1)
        # PS3.5 §A.4: each offset addresses the item tag of a frame's first fragment, the first
        # being 0; an offset between item tags means the table is wrong (or has overflowed).
        if firsts[0] != 0 or np.any(np.diff(firsts) <= 0) or np.any(relative[firsts] != bot):
            raise InvalidInput("Basic Offset Table does not match the fragments")
    elif number_of_frames == 1 and count > 1:
        firsts = np.zeros(1, dtype=np.intp)
    elif count < number_of_frames:
        raise InvalidInput(f"only {count} fragments for {number_of_frames} frames")
    else:
        raise InvalidInput(
            f"cannot map {count} fragments to {number_of_frames} frames without an offset table"
        )
    lasts = np.append(firsts[1:], count) - 1
    return FrameTable(
        positions[firsts] + np.uint64(8),
        positions[lasts] + np.uint64(8) + lengths[lasts],
        bool(np.any(lasts != firsts)),
    )


class _ItemReader:
    """Reads 8-byte item headers at absolute offsets without touching fragment values."""

    def __init__(self, fh: BinaryIO, file_size: int) -> None:
        self._fh = fh
        self.file_size = file_size
        try:
            self._fd: int | None = fh.fileno()
        except (AttributeError, OSError, ValueError):  # e.g. io.BytesIO
            self._fd = None

    def read_bytes(self, pos: int, length: int) -> bytes:
        if self._fd is not None:
            raw = os.pread(self._fd, length, pos)
        else:
            self._fh.seek(pos)
            raw = self._fh.read(length)
        if len(raw) < length:
            raise InvalidInput("truncated encapsulated pixel data")
        return raw

    def __call__(self, pos: int) -> tuple[int, int]:
        """Return ``(tag, length)`` of the item header at ``pos``."""
        if pos + 8 > self.file_size:
            raise InvalidInput("truncated encapsulated pixel data")
        group, element, length = _ITEM_HEADER.unpack(self.read_bytes(pos, 8))
        tag = group << 16 | element
        if tag == _ITEM and pos + 8 + length > self.file_size:
            raise InvalidInput("truncated encapsulated pixel data")
        return tag, length


def _walk_items(read: _ItemReader, pos: int, stop: int | None) -> list[tuple[int, int]]:
    """Return ``(offset, length)`` of the items from ``pos`` up to ``stop``.

    With ``stop`` None, walk to the Sequence Delimitation Item that ends the pixel data.
    """
    items: list[tuple[int, int]] = []
    while stop is None or pos < stop:
        tag, length = read(pos)
        if tag == _SEQUENCE_DELIMITER and stop is None:
            return items
        if tag != _ITEM:
            raise InvalidInput(f"unexpected tag {tag:08X} in encapsulated pixel data at {pos}")
        items.append((pos, length))
        pos += 8 + length
    if pos != stop:
        raise InvalidInput("extended offset table does not match the fragments")
    return items


def _from_extended_offsets(read: _ItemReader, first: int, eot: _Offsets) -> FrameTable:
    """Frame spans from an Extended Offset Table (PS3.3 C.7.6.3.1.8).

    The standard allows it only with one fragment per frame, so normally each frame costs one
    header read plus a check that its item ends where the next frame starts; other layouts
    are tolerated by walking the headers in between.
    """
    if eot[0] != 0 or bool(np.any(np.diff(eot.astype(np.int64)) <= 0)):
        raise InvalidInput("extended offset table must start at 0 and increase")
    positions = [first + int(offset) for offset in eot]
    starts = np.array(positions, dtype=np.uint64) + np.uint64(8)
    ends = np.empty(len(positions), dtype=np.uint64)
    fragmented = False
    for i, pos in enumerate(positions):
        tag, length = read(pos)
        if tag != _ITEM:
            raise InvalidInput(f"extended offset table entry {i} does not address an item")
        end = pos + 8 + length
        following = positions[i + 1] if i + 1 < len(positions) else None
        if end != following:
            more = _walk_items(read, end, following)
            if more:
                fragmented = True
                end = more[-1][0] + 8 + more[-1][1]
        ends[i] = end
    return FrameTable(starts, ends, fragmented)


def _pread_exact(fd: int, length: int, offset: int) -> bytes:
    data = os.pread(fd, length, offset)
    while len(data) < length:
        more = os.pread(fd, length - len(data), offset + len(data))
        if not more:
            raise _corrupt("stored file is shorter than its frame table")
        data += more
    return data


def _corrupt(message: str) -> OSError:
    # The table was built from this very file at ingest: a mismatch is storage corruption,
    # a server fault rather than bad client input.
    return OSError(errno.EIO, message)
