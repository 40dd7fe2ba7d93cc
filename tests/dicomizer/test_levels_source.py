"""``levels="source"`` (``--levels source``): only the levels the source stores, passed through
where they can be, as wsidicomizer and OrthancWSIDicomizer write by default."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import openslide
import pydicom
import pytest
from pydicom.encaps import generate_frames
from wsidicom import WsiDicom

from dicomizer.convert import ConversionResult
from dicomizer.encoders import make_encoder
from dicomizer.options import ConversionOptions
from dicomizer.plan import plan_pyramid
from samples.synthetic_slide import write_synthetic_svs
from tests.conftest import REPO
from tests.dicomizer.conftest import NDPI_DAPI, Converter, dciodvfy_errors
from wsi.readers import open_slide
from wsi.readers.base import Level, StoredTiles

SOURCE = ConversionOptions(levels="source")
JPEG = StoredTiles("1.2.840.10008.1.2.4.50", "RGB")


@pytest.fixture(scope="module")
def pyramid_svs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2000 x 1500 Aperio-like SVS that also stores 4x and 16x levels."""
    return write_synthetic_svs(tmp_path_factory.mktemp("pyramid") / "pyramid.svs", 2000, 1500,
                               seed=11, levels=(4, 16))


def stored_tiles(source: Path, level: int) -> list[bytes]:
    """The source tiles of a level as the reader splices them, row-major."""
    with open_slide(source) as reader:
        grid = reader.levels[level]
        return [reader.read_tile(level, col, row) for row in range(grid.tiles_down)
                for col in range(grid.tiles_across)]


def frames_of(path: Path) -> list[bytes]:
    ds = pydicom.dcmread(path)
    return list(generate_frames(ds.PixelData, number_of_frames=ds.NumberOfFrames))


def unpadded(frames: list[bytes], expected: list[bytes]) -> list[bytes]:
    """``frames`` cut to the lengths of ``expected`` once their padding is checked."""
    assert all(len(f) - len(e) in (0, 1) for f, e in zip(frames, expected, strict=True))
    return [f[: len(e)] for f, e in zip(frames, expected, strict=True)]


def test_plan_keeps_exactly_the_source_levels() -> None:
    levels = [Level(0, 2221, 2967, 240, 240, 1.0, JPEG),
              Level(1, 555, 741, 240, 240, 4.0, JPEG),
              Level(2, 740, 989, 240, 240, 3.0, JPEG),     # any downsample is kept
              Level(3, 138, 185, 256, 256, 16.0, JPEG),    # other tile size: re-encoded
              Level(4, 69, 92, 256, 256, 32.0, None)]      # nothing stored to copy
    encoder = make_encoder("jpeg")

    plan = plan_pyramid(levels, SOURCE, encoder)
    forced = plan_pyramid(levels, ConversionOptions(levels="source", force_reencode=True),
                          encoder)

    assert [(lv.width, lv.height, lv.source, lv.tile) for lv in plan.levels] == [
        (2221, 2967, 0, 240), (555, 741, 1, 240), (740, 989, 2, 240), (138, 185, 3, 240),
        (69, 92, 4, 240)]
    assert [lv.passthrough is not None for lv in plan.levels] == [True, True, True, False,
                                                                  False]
    assert [[lv.index for lv in segment] for segment in plan.segments()] == [[0], [1], [2],
                                                                             [3], [4]]
    assert all(lv.passthrough is None for lv in forced.levels)


def test_levels_option_is_validated() -> None:
    with pytest.raises(ValueError, match="levels"):
        ConversionOptions(levels="some")  # type: ignore[arg-type]


def test_base_only_source_gives_one_passed_through_level(converted: Converter,
                                                         synthetic_svs: Path) -> None:
    result = converted("source-synthetic", synthetic_svs, SOURCE)

    assert [(i.name, i.width, i.height, i.passthrough) for i in result.instances] == [
        ("level-0", 2000, 1500, True), ("thumbnail", 62, 46, True)]
    expected = stored_tiles(synthetic_svs, 0)
    assert unpadded(frames_of(result.files[0]), expected) == expected
    assert [dciodvfy_errors(path) for path in result.files] == [[] for _ in result.files]


def test_base_only_output_opens_in_wsidicom_and_openslide(converted: Converter,
                                                          synthetic_svs: Path) -> None:
    result = converted("source-synthetic", synthetic_svs, SOURCE)
    folder = result.files[0].parent

    with WsiDicom.open(folder) as wsi:
        region = np.asarray(wsi.read_region((300, 200), 0, (256, 256)))[..., :3]
        levels = len(wsi.levels)
    with openslide.OpenSlide(str(result.files[0])) as slide:
        dimensions = list(slide.level_dimensions)
        through_openslide = np.asarray(slide.read_region((300, 200), 0, (256, 256)))[..., :3]
    with open_slide(synthetic_svs) as reader:
        source = reader.read_region(0, 300, 200, 256, 256)

    assert levels == 1 and dimensions == [(2000, 1500)]
    assert np.array_equal(region, source)
    assert np.array_equal(through_openslide, source)


def test_every_stored_level_is_copied_frame_for_frame(converted: Converter,
                                                      pyramid_svs: Path) -> None:
    result = converted("source-pyramid", pyramid_svs, SOURCE)

    levels = [i for i in result.instances if i.name.startswith("level-")]
    assert [(i.width, i.height, i.passthrough) for i in levels] == [
        (2000, 1500, True), (500, 375, True), (125, 93, True)]
    for index in range(3):
        expected = stored_tiles(pyramid_svs, index)
        assert unpadded(frames_of(result.files[index]), expected) == expected
    headers = [pydicom.dcmread(p, stop_before_pixels=True) for p in result.files[:3]]
    assert [list(h.ImageType)[3] for h in headers] == ["NONE", "RESAMPLED", "RESAMPLED"]
    assert len({h.PyramidUID for h in headers}) == 1
    spacing = [h.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
               for h in headers]
    # Spacing follows the stored size (a level of floor(size / 16) is a little coarser).
    assert spacing == [[pytest.approx(0.00025 * 1500 / h.TotalPixelMatrixRows),
                        pytest.approx(0.00025 * 2000 / h.TotalPixelMatrixColumns)]
                       for h in headers]
    assert [dciodvfy_errors(path) for path in result.files] == [[] for _ in result.files]
    with WsiDicom.open(result.files[0].parent) as wsi:
        assert [(lv.size.width, lv.size.height) for lv in wsi.levels] == [
            (2000, 1500), (500, 375), (125, 93)]
    with openslide.OpenSlide(str(result.files[0])) as slide:
        assert slide.level_count == 3


def test_ndpi_levels_are_reencoded_each_from_itself(converted: Converter) -> None:
    result = converted("source-ndpi", NDPI_DAPI, SOURCE)

    with open_slide(NDPI_DAPI) as reader:
        sizes = [(level.width, level.height) for level in reader.levels]
    levels = [i for i in result.instances if i.name.startswith("level-")]
    assert [(i.width, i.height) for i in levels] == sizes
    assert not any(i.passthrough for i in levels)  # JPEG strips: nothing to copy
    assert [dciodvfy_errors(path) for path in result.files] == [[] for _ in result.files]
    with WsiDicom.open(result.files[0].parent) as wsi:
        assert len(wsi.levels) == len(sizes)


def test_cli_flag_selects_the_source_levels(tmp_path: Path, pyramid_svs: Path) -> None:
    help_text = subprocess.run([sys.executable, "-m", "wsi", "dicomize", "--help"],
                               capture_output=True, text=True, cwd=REPO, check=True).stdout
    run = subprocess.run([sys.executable, "-m", "wsi", "dicomize", str(pyramid_svs), "-o",
                          str(tmp_path / "out"), "--levels", "source", "--quiet"],
                         capture_output=True, text=True, cwd=REPO, timeout=120, check=False)

    assert "--levels {full,source}" in help_text
    assert run.returncode == 0, run.stderr
    assert [Path(line).name for line in run.stdout.splitlines()] == [
        "level-0.dcm", "level-1.dcm", "level-2.dcm", "thumbnail.dcm"]


def test_result_summary_says_what_was_passed_through(converted: Converter,
                                                    pyramid_svs: Path) -> None:
    result: ConversionResult = converted("source-pyramid", pyramid_svs, SOURCE)

    assert result.summary().count("passthrough") == 4  # three levels and the thumbnail
