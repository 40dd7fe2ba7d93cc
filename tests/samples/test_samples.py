"""Tests of the sample data generators in ``samples``."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import time
from pathlib import Path

import imagecodecs
import numpy as np
import pydicom
import pytest
from pydicom.encaps import generate_frames

from samples.ct_series import CT_IMAGE_STORAGE, MR_IMAGE_STORAGE, write_ct_series, write_ct_studies
from samples.large_instance import (
    frame_bytes_of,
    large_instance_frame_count,
    write_large_instance,
)
from samples.wsi_level import (
    RESAMPLED_IMAGE_TYPE,
    VL_WSI_SOP_CLASS,
    pyramid_sizes,
    render_tile,
    write_wsi_level,
    write_wsi_pyramid,
)

DCIODVFY = shutil.which("dciodvfy") or "/usr/bin/dciodvfy"
needs_dciodvfy = pytest.mark.skipif(not Path(DCIODVFY).exists(), reason="dciodvfy missing")
PIXEL_DATA_HEADER = b"\xe0\x7f\x10\x00OB\x00\x00\xff\xff\xff\xff"


def dciodvfy_errors(path: Path) -> list[str]:
    result = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, check=False)
    lines = (result.stdout + result.stderr).splitlines()
    return [line for line in lines if line.startswith("Error")]


def sof_components(jpeg: bytes) -> list[tuple[int, int]]:
    """(component id, sampling factors byte) of the baseline SOF0 segment."""
    start = jpeg.index(b"\xff\xc0")
    count = jpeg[start + 9]
    return [(jpeg[start + 10 + 3 * i], jpeg[start + 11 + 3 * i]) for i in range(count)]


# --- WSI level ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def wsi_1024(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_wsi_level(
        tmp_path_factory.mktemp("wsi") / "level.dcm", width=1024, height=768, seed=3
    )


def test_wsi_level_header(wsi_1024: Path) -> None:
    ds = pydicom.dcmread(wsi_1024)
    assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.4.50"
    assert ds.SOPClassUID == VL_WSI_SOP_CLASS
    assert ds.NumberOfFrames == 12
    assert (ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows) == (1024, 768)
    assert (ds.Rows, ds.Columns) == (256, 256)
    assert ds.DimensionOrganizationType == "TILED_FULL"
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    assert list(ds.ImageType) == ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    shared = ds.SharedFunctionalGroupsSequence[0]
    assert [float(v) for v in shared.PixelMeasuresSequence[0].PixelSpacing] == [0.00025] * 2
    assert ds.ImagedVolumeWidth == pytest.approx(1024 * 0.00025)
    assert ds.SpecimenDescriptionSequence[0].SpecimenUID
    assert ds.OpticalPathSequence[0].OpticalPathIdentifier == "1"


def test_wsi_level_frames_decode(wsi_1024: Path) -> None:
    ds = pydicom.dcmread(wsi_1024)
    frames = list(generate_frames(ds.PixelData, number_of_frames=ds.NumberOfFrames))
    assert len(frames) == 12
    for frame in frames:
        # Luma sampled 2x2, both chroma components 1x1: 4:2:0, hence YBR_FULL_422.
        assert sof_components(frame) == [(1, 0x22), (2, 0x11), (3, 0x11)]
        rgb = imagecodecs.jpeg8_decode(frame)
        assert rgb.shape == (256, 256, 3)
    pixels = ds.pixel_array
    assert pixels.shape == (12, 256, 256, 3)
    # Tissue-like: pink/purple dominate somewhere, not a flat image.
    assert pixels.std() > 10
    expected = render_tile(3, 1024, 768, 0, 1, 256)
    assert np.abs(pixels[1].astype(int) - expected.astype(int)).mean() < 6


def test_wsi_edge_tiles_are_padded(tmp_path: Path) -> None:
    path = write_wsi_level(tmp_path / "edge.dcm", width=300, height=280, tile=256)
    ds = pydicom.dcmread(path)
    assert ds.NumberOfFrames == 4
    pixels = ds.pixel_array
    # Right tile: columns 44.. lie beyond the 300-pixel matrix; bottom tiles rows 24..
    assert pixels[1][:, 60:].min() > 240
    assert pixels[2][40:, :].min() > 240


def test_render_tile_is_deterministic() -> None:
    first = render_tile(7, 1000, 1000, 2, 3, 128)
    assert np.array_equal(first, render_tile(7, 1000, 1000, 2, 3, 128))
    assert not np.array_equal(first, render_tile(8, 1000, 1000, 2, 3, 128))


@needs_dciodvfy
def test_wsi_level_passes_dciodvfy(wsi_1024: Path) -> None:
    assert dciodvfy_errors(wsi_1024) == []


@needs_dciodvfy
def test_wsi_pyramid(tmp_path: Path) -> None:
    paths = write_wsi_pyramid(tmp_path, 1100, 600, tile=256)
    assert [p.name for p in paths] == [f"level-{n}.dcm" for n in range(4)]
    assert pyramid_sizes(1100, 600, 256) == [(1100, 600), (550, 300), (275, 150), (138, 75)]
    assert len(pyramid_sizes(1100, 600, 256, levels=2)) == 2
    datasets = [pydicom.dcmread(p) for p in paths]
    for key in (
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "FrameOfReferenceUID",
        "PyramidUID",
        "ContainerIdentifier",
    ):
        assert len({str(ds[key].value) for ds in datasets}) == 1, key
    assert len({ds.SOPInstanceUID for ds in datasets}) == 4
    assert list(datasets[0].ImageType) == ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
    for level, ds in enumerate(datasets):
        if level:
            assert tuple(ds.ImageType) == RESAMPLED_IMAGE_TYPE
        spacing = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
        assert float(spacing[0]) == pytest.approx(0.00025 * 2**level)
        across = -(-ds.TotalPixelMatrixColumns // ds.Columns)
        down = -(-ds.TotalPixelMatrixRows // ds.Rows)
        assert ds.NumberOfFrames == across * down
        assert dciodvfy_errors(paths[level]) == []


# --- large instance ----------------------------------------------------------------------


@pytest.mark.parametrize("extended_offset_table", [True, False])
def test_large_instance_small(tmp_path: Path, extended_offset_table: bool) -> None:
    total, frame_size = 20_000_000, 1_048_576
    path = write_large_instance(
        tmp_path / "large.dcm",
        total_bytes=total,
        frame_bytes=frame_size,
        seed=5,
        extended_offset_table=extended_offset_table,
    )
    frames = large_instance_frame_count(total, frame_size)
    assert frames * frame_size >= total
    with path.open("rb") as fp:
        head = fp.read(1 << 16)
    pixel_start = head.index(PIXEL_DATA_HEADER)
    expected_size = pixel_start + 12 + 8 + frames * (8 + frame_size) + 8
    assert path.stat().st_size == expected_size >= total

    ds = pydicom.dcmread(path)
    assert ds.NumberOfFrames == frames
    across = ds.TotalPixelMatrixColumns // ds.Columns
    assert across * (ds.TotalPixelMatrixRows // ds.Rows) == frames
    assert ("ExtendedOffsetTable" in ds) is extended_offset_table
    extended = None
    if extended_offset_table:
        extended = (ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths)
        lengths = np.frombuffer(ds.ExtendedOffsetTableLengths, "<u8")
        assert lengths.tolist() == [frame_size] * frames
    retrieved = generate_frames(ds.PixelData, number_of_frames=frames, extended_offsets=extended)
    count = 0
    for index, frame in enumerate(retrieved):
        assert frame == frame_bytes_of(5, index, frame_size)
        count += 1
    assert count == frames


def test_frame_bytes_of() -> None:
    assert frame_bytes_of(1, 2, 1000) == frame_bytes_of(1, 2, 1000)
    assert len(frame_bytes_of(1, 2, 1001)) == 1001
    assert frame_bytes_of(1, 2, 64) != frame_bytes_of(1, 3, 64)
    assert frame_bytes_of(1, 2, 64) != frame_bytes_of(2, 2, 64)
    values = np.frombuffer(frame_bytes_of(0, 0, 1 << 20), np.uint8)
    assert abs(values.mean() - 127.5) < 1


def test_large_instance_rejects_odd_frames(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        write_large_instance(tmp_path / "odd.dcm", total_bytes=100, frame_bytes=33)


@pytest.mark.slow
def test_large_instance_full_size_is_fast(tmp_path: Path) -> None:
    path = tmp_path / "large.dcm"
    started = time.perf_counter()
    try:
        write_large_instance(path, seed=1)
        elapsed = time.perf_counter() - started
        assert path.stat().st_size >= 1_100_000_000
        assert elapsed < 30
        ds = pydicom.dcmread(path, defer_size=1024, stop_before_pixels=True)
        offsets = np.frombuffer(ds.ExtendedOffsetTable, "<u8")
        with path.open("rb") as fp:
            pixel_start = fp.read(1 << 16).index(PIXEL_DATA_HEADER)
            last = len(offsets) - 1
            fp.seek(pixel_start + 12 + 8 + int(offsets[last]) + 8)
            assert fp.read(1_048_576) == frame_bytes_of(1, last, 1_048_576)
    finally:
        path.unlink(missing_ok=True)


# --- CT series and studies ---------------------------------------------------------------


def test_ct_series(tmp_path: Path) -> None:
    paths = write_ct_series(tmp_path, count=4, seed=2)
    assert [p.name for p in paths] == [f"IM{i:05d}.dcm" for i in range(1, 5)]
    datasets = [pydicom.dcmread(p) for p in paths]
    assert 500_000 < paths[0].stat().st_size < 600_000
    for index, ds in enumerate(datasets):
        assert ds.SOPClassUID == CT_IMAGE_STORAGE
        assert ds.file_meta.TransferSyntaxUID == "1.2.840.10008.1.2.1"
        assert ds.Modality == "CT"
        assert ds.InstanceNumber == index + 1
        assert ds.RescaleIntercept == -1024 and ds.RescaleSlope == 1
        assert ds.pixel_array.shape == (512, 512) and ds.pixel_array.dtype == np.uint16
        assert float(ds.ImagePositionPatient[2]) == float(ds.SliceLocation) == -index
    assert len({ds.SOPInstanceUID for ds in datasets}) == 4
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 1
    hu = datasets[1].pixel_array.astype(int) - 1024
    assert hu.min() < -900 and hu.max() > 500  # air and bone


def test_ct_fast_encoding_matches_pydicom(tmp_path: Path) -> None:
    path = write_ct_series(tmp_path, count=1, rows=32, columns=32, patient_name="Müller^Jürgen")[0]
    ds = pydicom.dcmread(path)
    assert ds.PatientName == "Müller^Jürgen"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    assert buffer.getvalue() == path.read_bytes()


@needs_dciodvfy
def test_ct_and_mr_pass_dciodvfy(tmp_path: Path) -> None:
    paths = write_ct_series(tmp_path / "ct", count=1, rows=64, columns=64)
    studies = write_ct_studies(tmp_path / "studies", 6, 2, 1, 1, modalities=("MR",))
    for path in (*paths, *studies):
        assert dciodvfy_errors(path) == [], path


def test_ct_studies_vary(tmp_path: Path) -> None:
    paths = write_ct_studies(tmp_path, 4, 2, 2, 3, seed=1)
    assert len(paths) == 4 * 2 * 2 * 3
    datasets = [pydicom.dcmread(p) for p in paths]
    assert len({ds.PatientID for ds in datasets}) == 4
    assert len({ds.AccessionNumber for ds in datasets}) == 8
    assert len({ds.StudyInstanceUID for ds in datasets}) == 8
    assert len({ds.SeriesInstanceUID for ds in datasets}) == 16
    assert len({ds.SOPInstanceUID for ds in datasets}) == 48
    assert {ds.Modality for ds in datasets} <= {"CT", "MR"}
    for ds in datasets:
        expected = CT_IMAGE_STORAGE if ds.Modality == "CT" else MR_IMAGE_STORAGE
        assert ds.SOPClassUID == expected
        assert ds.pixel_array.shape == (64, 64)
    by_study: dict[str, set[str]] = {}
    for ds in datasets:
        by_study.setdefault(ds.StudyInstanceUID, set()).add(ds.AccessionNumber)
    assert all(len(accessions) == 1 for accessions in by_study.values())
    again = [
        pydicom.dcmread(p, stop_before_pixels=True)
        for p in write_ct_studies(tmp_path / "again", 4, 2, 2, 3, seed=1)
    ]
    assert [(d.PatientName, d.StudyDate, d.StudyDescription) for d in again] == [
        (d.PatientName, d.StudyDate, d.StudyDescription) for d in datasets
    ]


@pytest.mark.slow
def test_ten_thousand_small_instances_are_fast(tmp_path: Path) -> None:
    started = time.perf_counter()
    paths = write_ct_studies(tmp_path, 50, 2, 2, 50)
    assert len(paths) == 10_000
    assert time.perf_counter() - started < 20


# --- command lines -------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["wsi_level", "large_instance", "ct_series"])
def test_cli_help(module: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", f"samples.{module}", "--help"],
        capture_output=True,
        text=True,
        check=False,
        cwd=Path(__file__).parents[2],
    )
    assert result.returncode == 0
    assert "usage:" in result.stdout


def test_cli_writes_level(tmp_path: Path) -> None:
    out = tmp_path / "cli.dcm"
    subprocess.run(
        [sys.executable, "-m", "samples.wsi_level", str(out), "--width", "300", "--height", "200"],
        check=True,
        capture_output=True,
        cwd=Path(__file__).parents[2],
    )
    assert pydicom.dcmread(out).NumberOfFrames == 2
