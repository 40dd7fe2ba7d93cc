"""Streaming DICOM Part 10 writer for encapsulated multi-frame instances.

The header (preamble, File Meta Information, data set up to the pixel data) is encoded once
with pydicom, with room reserved for the Extended Offset Table and its lengths (PS3.3
C.7.6.3.1.8; the frame count is known beforehand). Frames are then appended as one fragment
each (PS3.5 A.4, one fragment per frame as an Extended Offset Table requires), after an empty
Basic Offset Table, and the two tables are back-patched on :meth:`FrameWriter.close`.

Frames are gathered into vectored writes (``os.writev``) of about 1 MiB without being
copied; a :class:`wsi.readers.base.StoredRun` of passed-through tiles is written straight from
the reader's buffer, the item headers and spliced tables of all its frames built at once.

Memory bound: the header, a write buffer (references to about 1 MiB of frames), the item
headers of one run, and two 8-byte integers per frame.
"""

from __future__ import annotations

import itertools
import os
import struct
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import numpy as np
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info

from wsi.readers.base import StoredRun

_ITEM = b"\xfe\xff\x00\xe0"
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0\x00\x00\x00\x00"
# (7FE0,0010) OB, two reserved bytes, undefined length (PS3.5 A.4).
_PIXEL_DATA_HEADER = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"
_EMPTY_BASIC_OFFSET_TABLE = _ITEM + b"\x00\x00\x00\x00"
_EOT_TAG = b"\xe0\x7f\x01\x00OV"
_EOT_LENGTHS_TAG = b"\xe0\x7f\x02\x00OV"
_OV_HEADER = 12  # tag, VR, two reserved bytes, 32-bit length
_BUFFER = 1024 * 1024
_IOV_MAX = max(16, min(1024, os.sysconf("SC_IOV_MAX")))
"""Buffers per ``writev`` call (POSIX requires at least 16; Linux allows 1024)."""
_LENGTH = struct.Struct("<I")
_MAX_FRAGMENT = 0xFFFFFFFE
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


def _write_all(fd: int, buffers: Sequence[bytes | memoryview]) -> None:
    """Write ``buffers`` in order with as few ``writev`` calls as the system allows."""
    for at in range(0, len(buffers), _IOV_MAX):
        group = buffers[at : at + _IOV_MAX]
        written = os.writev(fd, group)
        if written != sum(map(len, group)):
            # A short write (a signal, a full disk): finish the rest one buffer at a time.
            for buffer in group:
                view = memoryview(buffer)
                skip = min(written, len(view))
                written -= skip
                view = view[skip:]
                while view:
                    view = view[os.write(fd, view):]


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
        self._fp = self.path.open("wb", buffering=0)
        self._fd = self._fp.fileno()
        self._buffers: list[bytes | memoryview] = []
        self._buffered = 0
        self._emit([header, _PIXEL_DATA_HEADER, _EMPTY_BASIC_OFFSET_TABLE])
        self.bytes_written = 0

    def _emit(self, buffers: list[bytes | memoryview], size: int = 0) -> None:
        """Queue ``buffers`` (``size`` bytes, if known) and write when enough are queued."""
        self._buffers += buffers
        self._buffered += size
        if self._buffered >= _BUFFER or len(self._buffers) >= _IOV_MAX:
            self._flush()

    def _flush(self) -> None:
        if self._buffers:
            _write_all(self._fd, self._buffers)
            self._buffers, self._buffered = [], 0

    def _check_room(self, count: int) -> None:
        if self._written + count > self.number_of_frames:
            raise ValueError(f"{self.path.name}: more than {self.number_of_frames} frames")

    def _record(self, padded: np.ndarray) -> None:
        """Offsets and lengths of the next ``len(padded)`` frames (their padded sizes)."""
        items = padded + 8
        end = self._written + len(padded)
        self._offsets[self._written : end] = self._position + np.cumsum(items) - items
        self._lengths[self._written : end] = padded
        self._position += int(items.sum())
        self.bytes_written += int(padded.sum())
        self._written = end

    def write_frame(self, frame: bytes) -> None:
        """Append one frame as one fragment (padded to even length, PS3.5 A.4)."""
        self.write_frames([frame])

    def write_frames(self, frames: Sequence[bytes]) -> None:
        """Append several frames, one fragment each."""
        self._check_room(len(frames))
        buffers: list[bytes | memoryview] = []
        lengths = []
        for frame in frames:
            padded = len(frame) + (len(frame) & 1)
            if padded > _MAX_FRAGMENT:
                raise ValueError("frame too large for one fragment")
            buffers += (_ITEM + _LENGTH.pack(padded), frame) if padded == len(frame) else \
                (_ITEM + _LENGTH.pack(padded), frame, b"\x00")
            lengths.append(padded)
        sizes = np.array(lengths, dtype="<u8")
        self._emit(buffers, int(sizes.sum()))
        self._record(sizes)

    def write_run(self, run: StoredRun) -> None:
        """Append the frames of ``run`` (prefix + slice each), one fragment each, copied
        from the run's buffer by the kernel."""
        count = len(run)
        self._check_room(count)
        if not count:
            return
        lengths = (run.ends - run.starts).astype(np.int64) + len(run.prefix)
        padded = lengths + (lengths & 1)
        if int(padded.max()) > _MAX_FRAGMENT:
            raise ValueError("frame too large for one fragment")
        # The item tag, item length and prefix of every frame, built at once, each with a
        # leading byte for the padding of the frame before (used only if that one is odd).
        odd = (lengths & 1).astype(bool)
        width = 9 + len(run.prefix)
        heads = np.zeros((count, width), dtype=np.uint8)
        heads[:, 1:5] = np.frombuffer(_ITEM, dtype=np.uint8)
        heads[:, 5:9] = padded.astype("<u4").view(np.uint8).reshape(count, 4)
        heads[:, 9:] = np.frombuffer(run.prefix, dtype=np.uint8)
        head_starts = np.arange(count, dtype=np.int64) * width + 1
        head_starts[1:] -= odd[:-1]
        head_view, data = memoryview(heads.reshape(-1).tobytes()), memoryview(run.data)
        # Slicing through map/zip keeps the per-frame work in C.
        buffers: list[bytes | memoryview] = list(itertools.chain.from_iterable(zip(
            map(head_view.__getitem__,
                map(slice, head_starts.tolist(), (np.arange(1, count + 1) * width).tolist())),
            map(data.__getitem__, map(slice, run.starts.tolist(), run.ends.tolist())),
            strict=True)))
        if odd[-1]:
            buffers.append(b"\x00")
        self._flush()
        _write_all(self._fd, buffers)
        self._record(padded.astype("<u8"))

    def close(self) -> None:
        """Finish the pixel data and back-patch the offset tables."""
        if self._fp.closed:
            return
        if self._written != self.number_of_frames:
            self._fp.close()
            raise ValueError(f"{self.path.name}: {self._written} of "
                             f"{self.number_of_frames} frames written")
        self._emit([_SEQUENCE_DELIMITER])
        self._flush()
        os.pwrite(self._fd, self._offsets.tobytes(), self._offsets_at)
        os.pwrite(self._fd, self._lengths.tobytes(), self._lengths_at)
        if self._ratio_at >= 0:
            ratio = self._frame_size * self.number_of_frames / max(1, self.bytes_written)
            os.pwrite(self._fd, f"{ratio:.2f}"[:16].ljust(16).encode(), self._ratio_at)
        self._fp.close()

    def abort(self) -> None:
        """Close without finishing (the caller discards the file)."""
        self._buffers = []
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
