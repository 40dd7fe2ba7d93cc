"""The streaming Part 10 writer: offset tables back-patched, odd frames padded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import generate_frames

from dicomizer.writer import FrameWriter
from wsi.readers.base import StoredRun


def header(frames: int) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.77.1.6"
    ds.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEGBaseline8Bit
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 4, 4, 3
    ds.NumberOfFrames = frames
    ds.LossyImageCompression = "01"
    return ds


def test_frames_offsets_and_ratio_are_written(tmp_path: Path) -> None:
    frames = [b"\xff\xd8odd\xff\xd9", b"\xff\xd8even!!\xff\xd9", b"x" * 10]
    path = tmp_path / "out.dcm"

    with FrameWriter(path, header(3), 3) as writer:
        for frame in frames:
            writer.write_frame(frame)

    ds = pydicom.dcmread(path)
    stored = list(generate_frames(ds.PixelData, number_of_frames=3))
    offsets = np.frombuffer(ds.ExtendedOffsetTable, "<u8").tolist()
    lengths = np.frombuffer(ds.ExtendedOffsetTableLengths, "<u8").tolist()
    assert stored == [frames[0] + b"\0", frames[1], frames[2]]
    assert lengths == [8, 10, 10]
    assert offsets == [0, 16, 34]
    assert ds.PixelData[:8] == b"\xfe\xff\x00\xe0\x00\x00\x00\x00"  # empty Basic Offset Table
    assert float(ds.LossyImageCompressionRatio) == pytest.approx(3 * 48 / 28, abs=0.01)


def test_missing_frames_are_an_error(tmp_path: Path) -> None:
    writer = FrameWriter(tmp_path / "short.dcm", header(2), 2)
    writer.write_frame(b"ab")

    with pytest.raises(ValueError, match="1 of 2 frames"):
        writer.close()


def test_batched_frames_are_written_like_single_ones(tmp_path: Path) -> None:
    frames = [b"\xff\xd8odd\xff\xd9", b"\xff\xd8even!!\xff\xd9", b"x" * 10, b"y" * 7]

    with FrameWriter(tmp_path / "single.dcm", header(4), 4) as writer:
        for frame in frames:
            writer.write_frame(frame)
    with FrameWriter(tmp_path / "batched.dcm", header(4), 4) as writer:
        writer.write_frames(frames[:1])
        writer.write_frames(frames[1:])
        with pytest.raises(ValueError, match="more than 4 frames"):
            writer.write_frames([b"z"])

    single, batched = (pydicom.dcmread(tmp_path / name) for name in ("single.dcm",
                                                                     "batched.dcm"))
    assert batched.ExtendedOffsetTable == single.ExtendedOffsetTable
    assert batched.ExtendedOffsetTableLengths == single.ExtendedOffsetTableLengths
    assert batched.PixelData == single.PixelData


def test_stored_runs_are_written_like_the_frames_they_hold(tmp_path: Path) -> None:
    prefix = b"\xff\xd8TABLES"
    data = b"\xff\xd8aa\xff\xd9" + b"\xff\xd8bbb\xff\xd9" + b"\xff\xd8c\xff\xd9" + b"\xff\xd8dd"
    starts = np.array([2, 8, 15, 20])
    ends = np.array([6, 13, 18, 22])
    run = StoredRun(prefix, data, starts, ends)
    frames = run.frames()

    with FrameWriter(tmp_path / "frames.dcm", header(5), 5) as writer:
        writer.write_frames([b"first"] + frames)
    with FrameWriter(tmp_path / "run.dcm", header(5), 5) as writer:
        writer.write_frame(b"first")
        writer.write_run(run)
        with pytest.raises(ValueError, match="more than 5 frames"):
            writer.write_run(run)

    expected, actual = (pydicom.dcmread(tmp_path / name) for name in ("frames.dcm", "run.dcm"))
    assert frames[0] == prefix + b"aa\xff\xd9"
    assert [len(frame) % 2 for frame in frames] == [0, 1, 1, 0]  # padding in a row
    assert actual.PixelData == expected.PixelData
    assert actual.ExtendedOffsetTable == expected.ExtendedOffsetTable
    assert actual.ExtendedOffsetTableLengths == expected.ExtendedOffsetTableLengths
    assert [f[: len(e)] for f, e in zip(generate_frames(actual.PixelData, number_of_frames=5),
                                        [b"first", *frames], strict=True)] == [b"first",
                                                                               *frames]


def test_many_small_frames_span_several_vectored_writes(tmp_path: Path) -> None:
    frames = [bytes([i % 251]) * (1 + i % 5) for i in range(3000)]

    with FrameWriter(tmp_path / "many.dcm", header(3000), 3000) as writer:
        writer.write_run(StoredRun.of_frames(frames))

    ds = pydicom.dcmread(tmp_path / "many.dcm")
    stored = list(generate_frames(ds.PixelData, number_of_frames=3000))
    assert [s[: len(f)] for s, f in zip(stored, frames, strict=True)] == frames
