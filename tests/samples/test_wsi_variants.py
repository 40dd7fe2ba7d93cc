"""The WSI layout variants: transfer syntaxes, sparse tiling, planes, paths, concatenations."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless

from samples.wsi_level import render_tile
from samples.wsi_variants import (
    plane_seed,
    write_associated,
    write_variant_level,
)
from wsi.browser_jpeg import jpeg_header

DCIODVFY = shutil.which("dciodvfy")


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, ExplicitVRLittleEndian])
def test_lossless_levels_hold_the_rendered_tiles(tmp_path: Path, syntax: str) -> None:
    (path,) = write_variant_level(tmp_path / "l.dcm", width=600, height=300, tile=256,
                                  transfer_syntax=syntax, seed=2)

    ds = pydicom.dcmread(path)

    assert ds.file_meta.TransferSyntaxUID == syntax
    assert (ds.TotalPixelMatrixColumns, ds.NumberOfFrames) == (600, 6)
    assert np.array_equal(ds.pixel_array[4], render_tile(2, 600, 300, 1, 1, 256))
    if DCIODVFY:
        result = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True)
        assert not [x for x in result.stderr.splitlines() if x.startswith("Error")]


def test_sparse_concatenation_with_planes_and_paths(tmp_path: Path) -> None:
    paths = write_variant_level(
        tmp_path / "s.dcm", width=512, height=512, tile=256, organization="TILED_SPARSE",
        omit={(1, 1)}, focal_planes=(0.0, 2.0), optical_paths=("a", "b"), parts=2, seed=1,
    )

    parts = [pydicom.dcmread(p) for p in paths]

    assert [p.name for p in paths] == ["s-part1.dcm", "s-part2.dcm"]
    assert [int(d.NumberOfFrames) for d in parts] == [6, 6]  # 3 tiles x 2 planes x 2 paths
    assert [int(d.ConcatenationFrameOffsetNumber) for d in parts] == [0, 6]
    assert parts[0].ConcatenationUID == parts[1].ConcatenationUID
    item = parts[1].PerFrameFunctionalGroupsSequence[0]
    position = item.PlanePositionSlideSequence[0]
    col = (position.ColumnPositionInTotalImagePixelMatrix - 1) // 256
    row = (position.RowPositionInTotalImagePixelMatrix - 1) // 256
    z = [0.0, 2.0].index(float(position.ZOffsetInSlideCoordinateSystem))
    path = ["a", "b"].index(item.OpticalPathIdentificationSequence[0].OpticalPathIdentifier)
    expected = render_tile(plane_seed(1, z, path), 512, 512, row, col, 256).astype(int)
    assert np.abs(parts[1].pixel_array[0].astype(int) - expected).mean() < 4


def test_aperio_style_jpeg_has_no_colour_marker(tmp_path: Path) -> None:
    (path,) = write_variant_level(tmp_path / "a.dcm", width=256, height=256, tile=256,
                                  aperio_rgb=True)

    ds = pydicom.dcmread(path)
    facts = jpeg_header(next(pydicom.encaps.generate_frames(ds.PixelData, number_of_frames=1)))

    assert ds.PhotometricInterpretation == "RGB"
    assert facts is not None and facts.component_ids == (0, 1, 2)
    assert not facts.jfif and facts.adobe_transform is None


def test_label_is_a_native_single_frame(tmp_path: Path) -> None:
    path = write_associated(tmp_path / "label.dcm", "label", width=400, height=300,
                            study_uid="1.2.3", series_uid="1.2.3.4")

    ds = pydicom.dcmread(path)

    assert list(ds.ImageType)[2] == "LABEL"
    assert ds.pixel_array.shape == (300, 400, 3)


def test_command_line(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "samples.wsi_variants", str(tmp_path), "--width", "300",
         "--height", "200", "--sparse", "--focal-planes", "2", "--label"],
        capture_output=True, text=True, check=True,
    )

    assert len(result.stdout.split()) == 3  # two levels and a label
