"""Vendor formats without real test slides (Philips TIFF, Leica SCN, Ventana BIF, MIRAX),
made by :mod:`samples.vendor_slides`: conversion, conformance, viewers, pixel fidelity.

Philips TIFF is read with tifffile and its stored JPEG tiles pass through; Leica SCN, Ventana
BIF and MIRAX are read through OpenSlide and re-encoded (JPEG quality 90, 4:2:0), so their
pixels are compared with the source as OpenSlide shows it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openslide
import pydicom
import pytest
import tifffile
from pydicom.encaps import generate_frames
from wsidicom import WsiDicom

from dicomizer.convert import ConversionResult, convert
from samples.vendor_slides import WRITERS, write_vendor_slide
from tests.dicomizer.conftest import OPENSLIDE_NAMES, dciodvfy_errors, openslide_view
from wsi.readers import open_slide

PASSTHROUGH = {"philips"}
"""Formats whose stored tiles become frames unchanged; the others are re-encoded."""
BASE_PSNR_DB = 45.0
"""Re-encoded base level against the source read through OpenSlide. Measured on 256 x 256
regions: 48.0-50.7 dB for SCN, BIF and MIRAX alike (the same texture at q90 4:2:0)."""
LOWER_PSNR_DB = 38.0
"""Level 1 (generated from the base) against the box-filtered source: measured 41.6 dB."""
ASSOCIATED_PSNR_DB = 30.0
"""Label and overview, re-encoded once more: measured 32.6-48.6 dB."""


@dataclass(frozen=True)
class Case:
    """One synthetic vendor slide and its conversion."""

    vendor: str
    source: Path
    result: ConversionResult
    origin: tuple[int, int]
    """Where the converted base level starts in OpenSlide's level 0 (its bounds)."""

    @property
    def levels(self) -> list[Path]:
        """The pyramid level files, base first."""
        return [path for path in self.result.files if path.name.startswith("level-")]


@pytest.fixture(scope="module", params=list(WRITERS))
def case(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Case:
    folder = tmp_path_factory.mktemp(request.param)
    source = write_vendor_slide(request.param, folder / "source", seed=11)
    result = convert(source, folder / "out")
    with openslide.OpenSlide(str(source)) as slide:
        origin = (int(slide.properties.get("openslide.bounds-x", 0)),
                  int(slide.properties.get("openslide.bounds-y", 0)))
    return Case(request.param, source, result, origin)


def psnr(actual: np.ndarray, expected: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of 8-bit images."""
    mse = float(np.mean((actual.astype(np.float64) - expected.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def source_region(case: Case, x: int, y: int, size: int, level: int = 0,
                  box: int = 1) -> np.ndarray:
    """The source through OpenSlide: ``size`` pixels of ``level`` at (x, y) of the converted
    level, box-filtered by ``box``."""
    with openslide.OpenSlide(str(case.source)) as slide:
        downsample = slide.level_downsamples[level]
        at = (case.origin[0] + round(x * box * downsample),
              case.origin[1] + round(y * box * downsample))
        rgb = np.asarray(slide.read_region(at, level, (size * box, size * box)))[..., :3]
    if box == 1:
        return rgb
    return rgb.astype(np.float64).reshape(size, box, size, box, 3).mean(axis=(1, 3))


def test_reader_keeps_openslides_slide_facts(case: Case) -> None:
    with open_slide(case.source) as reader, openslide.OpenSlide(str(case.source)) as slide:
        facts = reader.properties
        name = reader.name
        associated = {OPENSLIDE_NAMES[image.kind] for image in reader.associated_images()}
        props = dict(slide.properties)
        expected_associated = set(slide.associated_images)

    assert name == ("tiff" if case.vendor in PASSTHROUGH else "openslide")
    assert facts.vendor == props["openslide.vendor"] == case.vendor
    assert facts.mpp == (float(props["openslide.mpp-x"]), float(props["openslide.mpp-y"]))
    assert facts.objective_power == float(props["openslide.objective-power"])
    assert associated == expected_associated
    assert associated >= {"macro"}


def test_every_instance_passes_dciodvfy(case: Case) -> None:
    errors = {path.name: dciodvfy_errors(path) for path in case.result.files}

    assert errors == {path.name: [] for path in case.result.files}


def test_base_level_passes_through_only_where_tiles_can(case: Case) -> None:
    header = pydicom.dcmread(case.levels[0], stop_before_pixels=True)
    with open_slide(case.source) as reader:
        mpp = reader.properties.mpp
        power = reader.properties.objective_power
        stored = [level for level in reader.levels if level.stored is not None]

    assert case.result.instances[0].passthrough == (case.vendor in PASSTHROUGH)
    assert len(stored) == (3 if case.vendor in PASSTHROUGH else 0)
    assert mpp is not None
    spacing = header.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0].PixelSpacing
    assert [float(v) for v in spacing] == pytest.approx([mpp[1] / 1000, mpp[0] / 1000])
    assert header.OpticalPathSequence[0].ObjectiveLensPower == power
    assert header.PhotometricInterpretation == "YBR_FULL_422"


@pytest.mark.parametrize("case", sorted(PASSTHROUGH), indirect=True)
def test_passthrough_frames_are_the_source_tiles(case: Case) -> None:
    passed = [(path, summary) for path, summary in zip(case.levels, case.result.instances,
                                                       strict=False) if summary.passthrough]

    with tifffile.TiffFile(case.source) as tiff:
        tiled = [page for page in tiff.pages
                 if isinstance(page, tifffile.TiffPage) and page.is_tiled]
        stored = []
        for page in tiled[: len(passed)]:
            tiles = []
            for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
                tiff.filehandle.seek(offset)
                tiles.append(tiff.filehandle.read(count))
            stored.append(tiles)
    frames = []
    for path, _ in passed:
        ds = pydicom.dcmread(path)
        frames.append([frame.rstrip(b"\0") for frame in
                       generate_frames(ds.PixelData, number_of_frames=ds.NumberOfFrames)])

    assert len(passed) == 3  # every stored Philips level, padded ones included
    assert frames == [[tile.rstrip(b"\0") for tile in tiles] for tiles in stored]


def test_output_opens_in_wsidicom_and_matches_the_source(case: Case) -> None:
    with WsiDicom.open(case.levels[0].parent) as wsi:
        sizes = [(level.size.width, level.size.height) for level in wsi.levels]
        base = np.asarray(wsi.read_region((600, 900), 0, (256, 256)))[..., :3]
        lower = np.asarray(wsi.read_region((300, 450), 1, (128, 128)))[..., :3]
        if case.vendor in PASSTHROUGH:
            lower_expected = source_region(case, 300, 450, 128, level=1)
        else:
            lower_expected = source_region(case, 300, 450, 128, box=2)

    assert sizes == [(i.width, i.height) for i in case.result.instances
                     if i.name.startswith("level-")]
    if case.vendor in PASSTHROUGH:
        assert np.array_equal(base, source_region(case, 600, 900, 256))
        assert np.array_equal(lower, lower_expected)
    else:
        assert psnr(base, source_region(case, 600, 900, 256)) >= BASE_PSNR_DB
        assert psnr(lower, lower_expected) >= LOWER_PSNR_DB


def test_label_and_overview_are_kept(case: Case) -> None:
    with openslide.OpenSlide(str(case.source)) as slide:
        source = {name: np.asarray(image)[..., :3]
                  for name, image in slide.associated_images.items()}
    written = {summary.name for summary in case.result.instances
               if not summary.name.startswith("level-")}

    with WsiDicom.open(case.levels[0].parent) as wsi:
        overview = np.asarray(wsi.read_overview())[..., :3]
        label = np.asarray(wsi.read_label())[..., :3] if "label" in source else None

    assert {OPENSLIDE_NAMES[name] for name in written} == set(source)
    assert psnr(overview, source["macro"]) >= ASSOCIATED_PSNR_DB
    if label is not None:
        assert psnr(label, source["label"]) >= ASSOCIATED_PSNR_DB


def test_output_opens_in_openslide(case: Case) -> None:
    levels = [i for i in case.result.instances if i.name.startswith("level-")]

    view = openslide_view(case.levels[0])

    assert view.vendor == "dicom"
    assert view.dimensions == [(level.width, level.height) for level in levels]
    assert view.associated == {OPENSLIDE_NAMES[i.name] for i in case.result.instances
                               if i.name in OPENSLIDE_NAMES}
    region = view.region
    expected = source_region(case, 600, 900, 200)
    assert psnr(region, expected) >= (math.inf if levels[0].passthrough else BASE_PSNR_DB)
