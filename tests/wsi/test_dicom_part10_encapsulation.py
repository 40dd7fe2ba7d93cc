"""Header-only Part 10 reading and frame tables, checked against pydicom's full decoding."""

from __future__ import annotations

import io
import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.data import get_testdata_file
from pydicom.dataset import FileMetaDataset
from pydicom.encaps import encapsulate, encapsulate_extended, generate_frames, parse_basic_offsets
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    RLELossless,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from wsi.dicom.encapsulation import FrameTable, build_frame_table, native_frame_length
from wsi.dicom.part10 import Part10Header, read_header
from wsi.errors import InvalidInput, NotFound, Unsupported


def _testfile(name: str) -> Path:
    return Path(str(get_testdata_file(name)))


def _table(path: Path, header: Part10Header | None = None) -> FrameTable:
    header = header or read_header(path)
    ds = header.dataset
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    native = header.pixel_data is not None and not header.pixel_data.encapsulated
    frame_length = native_frame_length(ds) if native else None
    eot = ds.get("ExtendedOffsetTable")
    with open(path, "rb") as fh:
        return build_frame_table(fh, header, frames, frame_length, eot)


def _read_all(path: Path, table: FrameTable) -> list[bytes]:
    fd = os.open(path, os.O_RDONLY)
    try:
        return [table.read_frame(fd, i) for i in range(len(table))]
    finally:
        os.close(fd)


def _expected_frames(path: Path) -> list[bytes]:
    """The frames as pydicom's full read of the file sees them."""
    ds = pydicom.dcmread(path)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if ds.file_meta.TransferSyntaxUID.is_encapsulated:
        return list(generate_frames(ds.PixelData, number_of_frames=frames))
    length = native_frame_length(ds)
    return [ds.PixelData[i * length : (i + 1) * length] for i in range(frames)]


# --- Part 10 headers -------------------------------------------------------------------------


def test_header_stops_at_pixel_data_of_jpeg_file() -> None:
    path = _testfile("SC_rgb_jpeg_dcmtk.dcm")
    header = read_header(path)
    assert header.transfer_syntax_uid == "1.2.840.10008.1.2.4.50"
    assert header.file_size == path.stat().st_size
    assert header.pixel_data is not None
    # pydicom leaves the file at the element header (1660); explicit VR OB has 12 header bytes.
    assert header.pixel_data.value_offset == 1660 + 12
    assert header.pixel_data.encapsulated and header.pixel_data.value_length is None
    assert "PixelData" not in header.dataset
    assert header.dataset.file_meta.TransferSyntaxUID == header.transfer_syntax_uid
    assert header.dataset.Rows == 100


@pytest.mark.parametrize(
    ("name", "header_length"),
    [
        ("CT_small.dcm", 12),  # explicit VR little endian
        ("MR_small_implicit.dcm", 8),
        ("MR_small_bigendian.dcm", 12),
        ("rtdose.dcm", 8),  # implicit, 15 frames of 32-bit
    ],
)
def test_native_pixel_data_location(name: str, header_length: int) -> None:
    path = _testfile(name)
    header = read_header(path)
    full = pydicom.dcmread(path)
    assert header.pixel_data is not None
    assert header.pixel_data.tag == 0x7FE00010
    assert not header.pixel_data.encapsulated
    assert header.pixel_data.value_length == len(full.PixelData)
    with open(path, "rb") as fh:
        fh.seek(header.pixel_data.value_offset - header_length)
        element_header = fh.read(header_length)
        assert fh.read(len(full.PixelData)) == full.PixelData
    order = ">" if header.transfer_syntax_uid == "1.2.840.10008.1.2.2" else "<"
    assert struct.unpack(f"{order}HH", element_header[:4]) == (0x7FE0, 0x0010)


@pytest.mark.parametrize("name", ["rtplan.dcm", "test-SR.dcm", "waveform_ecg.dcm"])
def test_datasets_without_pixel_data(name: str) -> None:
    header = read_header(_testfile(name))
    assert header.pixel_data is None
    assert len(header.dataset) > 0


def test_deflated_has_no_pixel_data_location() -> None:
    header = read_header(_testfile("image_dfl.dcm"))
    assert header.transfer_syntax_uid == "1.2.840.10008.1.2.1.99"
    assert header.pixel_data is None
    with open(_testfile("image_dfl.dcm"), "rb") as fh, pytest.raises(Unsupported):
        build_frame_table(fh, header, 1, 100)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("no_meta.dcm", "not a DICOM Part 10 file"),
        ("meta_missing_tsyntax.dcm", "lacks TransferSyntaxUID"),
        ("MR_truncated.dcm", "truncated pixel data"),
        ("rtplan_truncated.dcm", "truncated DICOM header"),
    ],
)
def test_invalid_bundled_files(name: str, reason: str) -> None:
    with pytest.raises(InvalidInput, match=reason):
        read_header(_testfile(name))


def test_zero_byte_and_text_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.dcm"
    empty.write_bytes(b"")
    text = tmp_path / "notes.txt"
    text.write_text("This is not DICOM.\n" * 20)
    for path in (empty, text):
        with pytest.raises(InvalidInput, match="not a DICOM Part 10 file"):
            read_header(path)


def test_garbage_after_dicm_prefix(tmp_path: Path) -> None:
    path = tmp_path / "garbage.dcm"
    path.write_bytes(b"\0" * 128 + b"DICM" + bytes(range(256)) * 4)
    with pytest.raises(InvalidInput):
        read_header(path)


@pytest.mark.parametrize("keep", [0, 2, 6, 11, 100])
def test_truncated_pixel_data_element(tmp_path: Path, keep: int) -> None:
    source = _testfile("CT_small.dcm")
    data = source.read_bytes()
    header_start = read_header(source).pixel_data.value_offset - 12  # type: ignore[union-attr]
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: header_start + keep])
    if keep == 0:
        # Cut exactly before the element: a well-formed data set without pixel data.
        assert read_header(path).pixel_data is None
        return
    with pytest.raises(InvalidInput, match="truncated|cannot parse"):
        read_header(path)


def test_header_truncated_inside_data_set(tmp_path: Path) -> None:
    data = _testfile("CT_small.dcm").read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:1000])
    with pytest.raises(InvalidInput, match="truncated"):
        read_header(path)


# --- frame tables of bundled files -----------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "SC_rgb_jpeg_dcmtk.dcm",  # 1 frame, BOT with one entry
        "JPEG2000.dcm",  # 1 frame, empty BOT
        "examples_jpeg2k.dcm",  # 1 frame in 3 fragments
        "SC_rgb_rle_2frame.dcm",
        "SC_rgb_rle_32bit_2frame.dcm",
        "rtdose_rle.dcm",  # 15 frames, empty BOT
        "examples_ybr_color.dcm",  # 30 frames, BOT
        "SC_rgb_small_odd_jpeg.dcm",
        "CT_small.dcm",
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "rtdose.dcm",  # 15 native frames, implicit VR
        "rtdose_expb.dcm",  # 15 native frames, big endian
        "SC_rgb_small_odd.dcm",  # odd-length native frame plus padding byte
        "SC_ybr_full_422_uncompressed.dcm",
    ],
)
def test_frames_of_bundled_files_match_pydicom(name: str) -> None:
    path = _testfile(name)
    table = _table(path)
    expected = _expected_frames(path)
    assert len(table) == len(expected)
    assert _read_all(path, table) == expected
    assert table.fragmented == (name == "examples_jpeg2k.dcm")


def test_span_is_the_frame_when_not_fragmented() -> None:
    path = _testfile("SC_rgb_rle_2frame.dcm")
    table = _table(path)
    data = path.read_bytes()
    for i, frame in enumerate(_expected_frames(path)):
        offset, length = table.span(i)
        assert data[offset : offset + length] == frame


# --- synthetic encapsulated files ------------------------------------------------------------


def _frames(count: int, seed: int = 0, odd: bool = False) -> list[bytes]:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(50, 400, size=count) * 2 + (1 if odd else 0)
    return [rng.integers(0, 256, size=int(n), dtype=np.uint8).tobytes() for n in sizes]


def _write(path: Path, pixel_data: bytes, frames: int, **extra: Any) -> Path:
    ds = pydicom.Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = extra.pop("transfer_syntax", JPEG2000Lossless)
    ds.file_meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.SOPClassUID = SecondaryCaptureImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Rows, ds.Columns, ds.SamplesPerPixel = 16, 16, 1
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.NumberOfFrames = frames
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    ds.PixelData = pixel_data
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = ds.file_meta.TransferSyntaxUID.is_encapsulated
    ds.save_as(path, enforce_file_format=True)
    return path


@pytest.mark.parametrize("has_bot", [True, False])
@pytest.mark.parametrize("odd", [True, False])
def test_one_fragment_per_frame(tmp_path: Path, has_bot: bool, odd: bool) -> None:
    frames = _frames(7, odd=odd)
    path = _write(tmp_path / "f.dcm", encapsulate(frames, has_bot=has_bot), len(frames))
    table = _table(path)
    assert not table.fragmented
    got = _read_all(path, table)
    # encapsulate() pads odd frames to even item lengths (PS3.5 §A.4)
    assert got == [f + b"\0" * (len(f) % 2) for f in frames]
    assert got == _expected_frames(path)


def test_multi_fragment_frames_with_bot(tmp_path: Path) -> None:
    frames = _frames(5, seed=1)
    pixel_data = encapsulate(frames, fragments_per_frame=2, has_bot=True)
    path = _write(tmp_path / "f.dcm", pixel_data, len(frames))
    table = _table(path)
    assert table.fragmented
    assert _read_all(path, table) == frames == _expected_frames(path)


def test_single_frame_in_many_fragments_without_bot(tmp_path: Path) -> None:
    frames = _frames(1, seed=2)
    pixel_data = encapsulate(frames, fragments_per_frame=4, has_bot=False)
    path = _write(tmp_path / "f.dcm", pixel_data, 1)
    table = _table(path)
    assert table.fragmented and len(table) == 1
    assert _read_all(path, table) == frames


def test_extended_offset_table(tmp_path: Path) -> None:
    frames = _frames(9, seed=3)
    pixel_data, offsets, lengths = encapsulate_extended(frames)
    path = _write(
        tmp_path / "f.dcm",
        pixel_data,
        len(frames),
        ExtendedOffsetTable=offsets,
        ExtendedOffsetTableLengths=lengths,
    )
    header = read_header(path)
    assert header.dataset.ExtendedOffsetTable == offsets
    table = _table(path, header)
    assert not table.fragmented
    assert _read_all(path, table) == frames


def test_extended_offset_table_with_fragmented_frames(tmp_path: Path) -> None:
    frames = _frames(4, seed=4)
    with_bot = encapsulate(frames, fragments_per_frame=3, has_bot=True)
    offsets = struct.pack("<4Q", *parse_basic_offsets(with_bot))
    pixel_data = encapsulate(frames, fragments_per_frame=3, has_bot=False)
    path = _write(tmp_path / "f.dcm", pixel_data, len(frames), ExtendedOffsetTable=offsets)
    table = _table(path)
    assert table.fragmented
    assert _read_all(path, table) == frames


def test_wrong_extended_offset_table_is_rejected(tmp_path: Path) -> None:
    frames = _frames(3, seed=5)
    pixel_data, offsets, _ = encapsulate_extended(frames)
    bad = struct.pack("<3Q", 0, 10, 20)
    path = _write(tmp_path / "f.dcm", pixel_data, 3, ExtendedOffsetTable=bad)
    with pytest.raises(InvalidInput):
        _table(path)


def test_unmappable_fragments(tmp_path: Path) -> None:
    pixel_data = encapsulate(_frames(3, seed=6), fragments_per_frame=2, has_bot=False)
    path = _write(tmp_path / "f.dcm", pixel_data, 3)
    with pytest.raises(InvalidInput, match="cannot map 6 fragments to 3 frames"):
        _table(path)


def test_fewer_fragments_than_frames(tmp_path: Path) -> None:
    path = _write(tmp_path / "f.dcm", encapsulate(_frames(2), has_bot=False), 3)
    with pytest.raises(InvalidInput, match="only 2 fragments for 3 frames"):
        _table(path)


def test_bot_not_matching_fragments(tmp_path: Path) -> None:
    pixel_data = bytearray(encapsulate(_frames(2, seed=7), fragments_per_frame=2, has_bot=True))
    pixel_data[12:16] = struct.pack("<L", 6)  # second frame's offset points between item tags
    path = _write(tmp_path / "f.dcm", bytes(pixel_data), 2)
    with pytest.raises(InvalidInput, match="Basic Offset Table does not match"):
        _table(path)


def test_odd_item_lengths_are_tolerated(tmp_path: Path) -> None:
    frames = [b"\x01\x02\x03", b"\x04\x05\x06\x07\x08"]
    items = b"".join(struct.pack("<HHL", 0xFFFE, 0xE000, len(f)) + f for f in frames)
    delimiter = struct.pack("<HHL", 0xFFFE, 0xE0DD, 0)
    pixel_data = struct.pack("<HHL", 0xFFFE, 0xE000, 0) + items + delimiter
    path = _write(tmp_path / "f.dcm", pixel_data, 2)
    assert _read_all(path, _table(path)) == frames


def test_missing_bot_item(tmp_path: Path) -> None:
    path = _write(tmp_path / "f.dcm", encapsulate(_frames(1)), 1)
    value_offset = read_header(path).pixel_data.value_offset  # type: ignore[union-attr]
    with open(path, "r+b") as fh:
        fh.seek(value_offset)
        fh.write(struct.pack("<HH", 0xFFFE, 0xE0DD))
    with pytest.raises(InvalidInput, match="Basic Offset Table item"):
        _table(path)


@pytest.mark.parametrize("cut", [-4, -8, -100, "bot"])
def test_truncated_encapsulated_pixel_data(tmp_path: Path, cut: int | str) -> None:
    frames = _frames(3, seed=8)
    full = _write(tmp_path / "full.dcm", encapsulate(frames, has_bot=True), 3)
    data = full.read_bytes()
    value_offset = read_header(full).pixel_data.value_offset  # type: ignore[union-attr]
    end = value_offset + 10 if cut == "bot" else len(data) + int(cut)
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:end])
    header = read_header(path)
    with open(path, "rb") as fh, pytest.raises(InvalidInput, match="truncated"):
        build_frame_table(fh, header, 3, None)


def test_native_pixel_data_shorter_than_frames() -> None:
    path = _testfile("rtdose.dcm")
    header = read_header(path)
    with open(path, "rb") as fh, pytest.raises(InvalidInput, match="pixel data shorter than"):
        build_frame_table(fh, header, 16, native_frame_length(header.dataset))


def test_no_pixel_data_and_one_bit_images() -> None:
    header = read_header(_testfile("rtplan.dcm"))
    with open(_testfile("rtplan.dcm"), "rb") as fh, pytest.raises(InvalidInput):
        build_frame_table(fh, header, 1, 10)
    ds = pydicom.Dataset()
    ds.Rows, ds.Columns, ds.SamplesPerPixel, ds.BitsAllocated = 8, 8, 1, 1
    with pytest.raises(Unsupported):
        native_frame_length(ds)


class _CountingReader(io.BytesIO):
    """A file without fileno() that counts the bytes read through it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        return chunk

    def fileno(self) -> int:
        raise io.UnsupportedOperation("no fileno")


def test_walk_reads_only_item_headers(tmp_path: Path) -> None:
    count = 20_000
    frames = [bytes([i % 251]) * 64 for i in range(count)]
    path = _write(tmp_path / "many.dcm", encapsulate(frames, has_bot=False), count)
    header = read_header(path)
    reader = _CountingReader(path.read_bytes())
    table = build_frame_table(reader, header, count, None)
    assert reader.bytes_read == 8 * (count + 2)  # BOT, items, sequence delimiter
    fd = os.open(path, os.O_RDONLY)
    try:
        for i in (0, 1, 12_345, count - 1):
            assert table.read_frame(fd, i) == frames[i]
    finally:
        os.close(fd)


# --- serialisation and access ----------------------------------------------------------------


def _tables() -> Iterator[FrameTable]:
    yield _table(_testfile("examples_jpeg2k.dcm"))
    yield _table(_testfile("rtdose.dcm"))
    big = np.array([5 * 2**32, 6 * 2**32 + 7], dtype=np.uint64)
    yield FrameTable(big, big + np.uint64(2**33), False)


@pytest.mark.parametrize("table", list(_tables()))
def test_round_trip_bytes(table: FrameTable) -> None:
    blob = table.to_bytes()
    again = FrameTable.from_bytes(blob)
    assert again == table
    assert again.starts.dtype == np.uint64 and again.fragmented == table.fragmented
    assert len(blob) == 16 + 16 * len(table)


def test_malformed_blob() -> None:
    blob = _table(_testfile("rtdose.dcm")).to_bytes()
    for bad in (b"", blob[:-1], b"XXXX" + blob[4:]):
        with pytest.raises(InvalidInput):
            FrameTable.from_bytes(bad)


def test_frame_index_out_of_range() -> None:
    table = _table(_testfile("rtdose.dcm"))
    for index in (-1, len(table)):
        with pytest.raises(NotFound):
            table.span(index)


def test_synthetic_rle_file(tmp_path: Path) -> None:
    frames = _frames(2, seed=9)
    path = _write(tmp_path / "f.dcm", encapsulate(frames), 2, transfer_syntax=RLELossless)
    header = read_header(path)
    with open(path, "rb") as fh:
        table = build_frame_table(fh, header, 2, None)
    assert _read_all(path, table) == frames


def test_synthetic_native_file(tmp_path: Path) -> None:
    frames = [bytes([i]) * 256 for i in range(4)]
    path = _write(tmp_path / "n.dcm", b"".join(frames), 4, transfer_syntax=ExplicitVRLittleEndian)
    assert _read_all(path, _table(path)) == frames


def test_unexpected_tag_between_fragments(tmp_path: Path) -> None:
    frames = _frames(2, seed=10)
    path = _write(tmp_path / "f.dcm", encapsulate(frames, has_bot=False), 2)
    location = read_header(path).pixel_data
    assert location is not None
    second_item = location.value_offset + 8 + 8 + len(frames[0])  # after BOT and first item
    with open(path, "r+b") as fh:
        fh.seek(second_item)
        fh.write(struct.pack("<HH", 0x0008, 0x0016))
    with pytest.raises(InvalidInput, match="unexpected tag 00080016"):
        _table(path)


def test_file_changed_after_ingest_is_an_io_error(tmp_path: Path) -> None:
    frames = _frames(2, seed=11)
    path = _write(tmp_path / "f.dcm", encapsulate(frames, fragments_per_frame=2), 2)
    table = _table(path)
    offset, _ = table.span(1)
    with open(path, "r+b") as fh:
        fh.seek(offset - 8)
        fh.write(b"\0" * 8)  # first item header of frame 1 destroyed
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError, match="does not match"):
            table.read_frame(fd, 1)
        os.truncate(path, offset)
        with pytest.raises(OSError, match="shorter than its frame table"):
            table.read_frame(fd, 1)
    finally:
        os.close(fd)
