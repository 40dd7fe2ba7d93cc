"""Other TIFF flavours: OME-TIFF pyramids with YCbCr 4:2:0 JPEG tiles, plain tiled TIFF."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
import tifffile
from pydicom.encaps import generate_frames
from wsidicom import WsiDicom

from dicomizer.convert import convert
from samples.wsi_level import render_tile
from tests.dicomizer.conftest import dciodvfy_errors


def tissue(width: int, height: int, tile: int = 256) -> np.ndarray:
    rows = [np.concatenate([render_tile(3, width, height, r, c, tile)
                            for c in range(-(-width // tile))], axis=1)
            for r in range(-(-height // tile))]
    return np.concatenate(rows)[:height, :width]


@pytest.fixture(scope="module")
def ome_pyramid(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("ome") / "slide.ome.tif"
    image = tissue(1000, 700)
    with tifffile.TiffWriter(path, ome=True) as tif:
        tif.write(image, subifds=1, tile=(256, 256), compression="jpeg", photometric="rgb",
                  metadata={"axes": "YXS", "PhysicalSizeX": 0.5, "PhysicalSizeY": 0.5})
        tif.write(image[::2, ::2], tile=(256, 256), compression="jpeg", photometric="rgb",
                  subfiletype=1)
    return path


def test_ome_tiff_ycbcr_tiles_pass_through_as_ybr_full_422(tmp_path: Path,
                                                           ome_pyramid: Path) -> None:
    result = convert(ome_pyramid, tmp_path / "out")

    ds = pydicom.dcmread(result.files[0])
    frames = list(generate_frames(ds.PixelData, number_of_frames=ds.NumberOfFrames))
    with tifffile.TiffFile(ome_pyramid) as tif:
        page = tif.pages.first
        stored = []
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
            tif.filehandle.seek(offset)
            stored.append(tif.filehandle.read(count))
    spacing = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing

    assert result.instances[0].passthrough
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    assert [f.rstrip(b"\0") for f in frames] == [s.rstrip(b"\0") for s in stored]
    assert [float(v) for v in spacing] == [0.0005, 0.0005]
    assert [dciodvfy_errors(p) for p in result.files] == [[] for _ in result.files]
    with WsiDicom.open(tmp_path / "out") as wsi:
        region = np.asarray(wsi.read_region((0, 0), 0, (1000, 700)))[..., :3]
    with tifffile.TiffFile(ome_pyramid) as tif:
        assert np.array_equal(region, tif.pages.first.asarray())


def test_generic_tiled_tiff_with_resolution_tags(tmp_path: Path) -> None:
    source = tmp_path / "plain.tif"
    tifffile.imwrite(source, tissue(600, 500), tile=(128, 128), compression="zlib",
                     resolution=(1e4 / 0.25, 1e4 / 0.25), resolutionunit="CENTIMETER",
                     metadata=None)

    result = convert(source, tmp_path / "out")

    header = pydicom.dcmread(result.files[0], stop_before_pixels=True)
    assert not result.instances[0].passthrough
    assert header.LossyImageCompression == "01"  # lossy JPEG of a lossless source
    assert header.LossyImageCompressionMethod == "ISO_10918_1"
    assert header.ImagedVolumeWidth == pytest.approx(600 * 0.00025)
    assert [dciodvfy_errors(p) for p in result.files] == [[] for _ in result.files]


def test_source_icc_profile_is_kept(tmp_path: Path) -> None:
    from PIL import ImageCms

    profile = ImageCms.ImageCmsProfile(ImageCms.createProfile("LAB")).tobytes()
    source = tmp_path / "icc.tif"
    tifffile.imwrite(source, tissue(300, 200), tile=(128, 128), compression="jpeg",
                     iccprofile=profile, resolution=(4e4, 4e4), resolutionunit="CENTIMETER",
                     metadata=None)

    result = convert(source, tmp_path / "out")

    path = pydicom.dcmread(result.files[0], stop_before_pixels=True).OpticalPathSequence[0]
    assert path.ICCProfile == profile
    assert "ColorSpace" not in path
