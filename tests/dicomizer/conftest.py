"""Conversions shared by the dicomizer tests (each slide is converted once per session)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import openslide
import pydicom
import pytest

from dicomizer.convert import ConversionResult, convert
from dicomizer.options import ConversionOptions
from samples.synthetic_slide import write_synthetic_svs
from tests.conftest import SHARED_SLIDES

SVS = SHARED_SLIDES / "aperio" / "CMU-1-Small-Region.svs"
NDPI_DAPI = SHARED_SLIDES / "hamamatsu" / "test3-DAPI-2-(387).ndpi"
NDPI_TRITC = SHARED_SLIDES / "hamamatsu" / "test3-TRITC 2 (560).ndpi"
VENDOR_SLIDES = {"svs": SVS, "ndpi-dapi": NDPI_DAPI, "ndpi-tritc": NDPI_TRITC}

DCIODVFY = shutil.which("dciodvfy") or "/usr/bin/dciodvfy"
OPENSLIDE_NAMES = {"label": "label", "overview": "macro", "thumbnail": "thumbnail"}
"""Our associated-image instance names and OpenSlide's names for the same images."""


@dataclass(frozen=True)
class OpenSlideView:
    """What OpenSlide makes of a converted series (opened by its base-level file)."""

    vendor: str
    dimensions: list[tuple[int, int]]
    associated: set[str]
    region: np.ndarray
    """RGB of the 200x200 region at (600, 900) of level 0."""


def openslide_view(base: Path) -> OpenSlideView:
    """Open ``base`` in OpenSlide and read its facts and one level-0 region."""
    with openslide.OpenSlide(str(base)) as slide:
        return OpenSlideView(
            slide.properties["openslide.vendor"],
            list(slide.level_dimensions),
            set(slide.associated_images),
            np.asarray(slide.read_region((600, 900), 0, (200, 200)))[..., :3],
        )


HTJ2K = {"1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"}


def dciodvfy_errors(path: Path) -> list[str]:
    """The lines of dciodvfy's report that start with "Error".

    dicom3tools in Debian predates HTJ2K (Sup 235) and cannot parse its transfer syntaxes;
    such files are checked as a copy labelled JPEG 2000 Lossless, which has the same
    encapsulated framing, so every IOD rule is still checked.
    """
    if pydicom.dcmread(path, stop_before_pixels=True).file_meta.TransferSyntaxUID in HTJ2K:
        with tempfile.TemporaryDirectory() as folder:
            ds = pydicom.dcmread(path)
            ds.file_meta.TransferSyntaxUID = pydicom.uid.JPEG2000Lossless
            copy = Path(folder) / "as-j2k.dcm"
            ds.save_as(copy, enforce_file_format=True)
            return dciodvfy_errors(copy)
    result = subprocess.run([DCIODVFY, str(path)], capture_output=True, text=True, check=False)
    return [line for line in (result.stdout + result.stderr).splitlines()
            if line.startswith("Error")]


@pytest.fixture(scope="session")
def synthetic_svs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2000 x 1500 Aperio-like SVS with abbreviated RGB JPEG tiles of 240."""
    return write_synthetic_svs(tmp_path_factory.mktemp("synthetic") / "synthetic.svs",
                               2000, 1500, seed=7)


Converter = Callable[[str, Path, ConversionOptions], ConversionResult]


@pytest.fixture(scope="session")
def converted(tmp_path_factory: pytest.TempPathFactory, synthetic_svs: Path) -> Converter:
    """``converted(key, source, options)``: the conversion of ``source``, done once per key."""
    done: dict[str, ConversionResult] = {}

    def run(key: str, source: Path, options: ConversionOptions) -> ConversionResult:
        if key not in done:
            done[key] = convert(source, tmp_path_factory.mktemp("out") / key, options)
        return done[key]

    return run


def sources(synthetic: Path) -> dict[str, Path]:
    """Every slide the conversion tests run on."""
    return {**VENDOR_SLIDES, "synthetic": synthetic}
