"""Streaming DICOM Part 10 writer for encapsulated multi-frame instances.

The header (preamble, File Meta Information, data set up to the pixel data) is encoded once
with pydicom, with room reserved for the Extended Offset Table and its lengths (PS3.3
C.7.6.3.1.8; the frame count is known beforehand). Frames are then appended as one fragment
each (PS3.5 A.4, one fragment per frame as an Extended Offset Table requires), after an empty
Basic Offset Table, and the two tables are back-patched on :meth:`FrameWriter.close`.

Memory bound: the header, a write buffer, and two 8-byte integers per frame.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info

_ITEM = b"\xfe\xff\x00\xe0"
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
# (7FE0,0010) OB, two reserved bytes, undefined length (PS3.5 A.4).
_PIXEL_DATA_HEADER = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"
_EMPTY_BASIC_OFFSET_TABLE = _ITEM + b"\x00\x00\x00\x00"
_EOT_TAG = b"\xe0\x7f\x01\x00OV"
_EOT_LENGTHS_TAG = b"\xe0\x7f\x02\x00OV"
_OV_HEADER = 12  # tag, VR, two reserved bytes, 32-bit length
_BUFFER = 1024 * 1024
_LENGTH = struct.Struct("<I")
_RATIO_PLACEHOLDER = "9999999999.99999"
"""16 characters (the DS maximum) reserved for the compression ratio, back-patched."""


def encode_header(ds: Dataset) -> bytes:
    """Preamble, ``DICM``, File Meta Information and the data set (Explicit VR LE)."""
    meta = DicomBytesIO()
    meta.is_little_endian, meta.is_implicit_VR = True, False
    write_file_meta_info(meta, ds.file_meta, enforce_standard=True)
    body = DicomBytesIO()
    body.is_little_endian, body.is_implicit_VR = True, False
    write_dataset(body, ds)
    return b"\x00" * 128 + b"DICM" + meta.getvalue() + body.getvalue()


class FrameWriter:
    """Writes one instance: ``write_frame`` ``number_of_frames`` times, then ``close``."""

    def __init__(self, path: Path, ds: Dataset, number_of_frames: int) -> None:
        if "PixelData" in ds:
            raise ValueError("the header dataset must not hold pixel data")
        self.path = Path(path)
        self.number_of_frames = number_of_frames
        table_bytes = 8 * number_of_frames
        # Lossy Image Compression Ratio (C.7.6.1.1.5, 1C when lossy) is known only at the end.
        lossy = ds.get("LossyImageCompression") == "01"
        if lossy:
            ds.LossyImageCompressionRatio = _RATIO_PLACEHOLDER
        self._frame_size = int(ds.Rows) * int(ds.Columns) * int(ds.SamplesPerPixel)
        ds.ExtendedOffsetTable = bytes(table_bytes)
        ds["ExtendedOffsetTable"].VR = "OV"
        ds.ExtendedOffsetTableLengths = bytes(table_bytes)
        ds["ExtendedOffsetTableLengths"].VR = "OV"
        header = encode_header(ds)
        # The two tables are the last elements before the pixel data (tags 7FE0,0001/0002).
        self._lengths_at = len(header) - table_bytes
        self._offsets_at = self._lengths_at - _OV_HEADER - table_bytes
        if (header[self._lengths_at - _OV_HEADER : self._lengths_at - 6] != _EOT_LENGTHS_TAG
                or header[self._offsets_at - _OV_HEADER : self._offsets_at - 6] != _EOT_TAG):
            raise ValueError("elements after the Extended Offset Table; cannot back-patch")
        self._offsets = np.zeros(number_of_frames, dtype="<u8")
        self._lengths = np.zeros(number_of_frames, dtype="<u8")
        self._written = 0
        self._position = 0  # from the first byte of the first frame's item tag
        self._ratio_at = header.find(_RATIO_PLACEHOLDER.encode()) if lossy else -1
        self._fp = self.path.open("wb", buffering=_BUFFER)
        self._fp.write(header)
        self._fp.write(_PIXEL_DATA_HEADER)
        self._fp.write(_EMPTY_BASIC_OFFSET_TABLE)
        self.bytes_written = 0

    def write_frame(self, frame: bytes) -> None:
        """Append one frame as one fragment (padded to even length, PS3.5 A.4)."""
        if self._written >= self.number_of_frames:
            raise ValueError(f"{self.path.name}: more than {self.number_of_frames} frames")
        padded = len(frame) + (len(frame) & 1)
        if padded > 0xFFFFFFFE:
            raise ValueError("frame too large for one fragment")
        self._fp.write(_ITEM + struct.pack("<I", padded))
        self._fp.write(frame)
        if padded != len(frame):
            self._fp.write(b"\x00")
        self._offsets[self._written] = self._position
        self._lengths[self._written] = padded
        self._position += 8 + padded
        self.bytes_written += padded
        self._written += 1

    def write_frames(self, frames: Sequence[bytes]) -> None:
        """Append several frames, one fragment each, with one write."""
        if self._written + len(frames) > self.number_of_frames:
            raise ValueError(f"{self.path.name}: more than {self.number_of_frames} frames")
        parts: list[bytes] = []
        lengths = []
        for frame in frames:
            padded = len(frame) + (len(frame) & 1)
            if padded > 0xFFFFFFFE:
                raise ValueError("frame too large for one fragment")
            parts += (_ITEM + _LENGTH.pack(padded), frame) if padded == len(frame) else \
                (_ITEM + _LENGTH.pack(padded), frame, b"\x00")
            lengths.append(padded)
        self._fp.write(b"".join(parts))
        sizes = np.array(lengths, dtype="<u8")
        starts = self._position + np.cumsum(sizes + 8) - (sizes + 8)
        end = self._written + len(frames)
        self._offsets[self._written : end] = starts
        self._lengths[self._written : end] = sizes
        self._position += int(sizes.sum()) + 8 * len(frames)
        self.bytes_written += int(sizes.sum())
        self._written = end

    def close(self) -> None:
        """Finish the pixel data and back-patch the offset tables."""
        if self._fp.closed:
            return
        if self._written != self.number_of_frames:
            self._fp.close()
            raise ValueError(f"{self.path.name}: {self._written} of "
                             f"{self.number_of_frames} frames written")
        self._fp.write(_SEQUENCE_DELIMITER)
        self._fp.seek(self._offsets_at)
        self._fp.write(self._offsets.tobytes())
        self._fp.seek(self._lengths_at)
        self._fp.write(self._lengths.tobytes())
        if self._ratio_at >= 0:
            ratio = self._frame_size * self.number_of_frames / max(1, self.bytes_written)
            self._fp.seek(self._ratio_at)
            self._fp.write(f"{ratio:.2f}"[:16].ljust(16).encode())
        self._fp.close()

    def abort(self) -> None:
        """Close without finishing (the caller discards the file)."""
        self._fp.close()

    def __enter__(self) -> FrameWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
