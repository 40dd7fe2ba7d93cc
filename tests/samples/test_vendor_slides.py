"""The synthetic vendor slide generator: OpenSlide must recognise and read each format."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import openslide
import pytest
import tifffile

from samples.vendor_slides import WRITERS, picture, write_mirax, write_philips_tiff

SMALL: dict[str, dict[str, Any]] = {
    "philips": {"width": 1000, "height": 700},
    "leica": {"width": 1024, "height": 768},
    "ventana": {"across": 4, "down": 3},
    "mirax": {"images_across": 4, "images_down": 3},
}
"""Writer arguments for slides of about 1000 x 750 base pixels."""
MPP = {"philips": 0.25, "leica": 0.5, "ventana": 0.5, "mirax": 0.25}
ASSOCIATED = {"philips": {"label", "macro"}, "leica": {"macro"},
              "ventana": {"macro", "thumbnail"}, "mirax": {"label", "macro"}}


def write_small(vendor: str, folder: Path) -> Path:
    suffix, writer = WRITERS[vendor]
    return writer(folder / f"small{suffix}", seed=5, **SMALL[vendor])


def psnr(actual: np.ndarray, expected: np.ndarray) -> float:
    mse = float(np.mean((actual.astype(np.float64) - expected.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


@pytest.mark.parametrize("vendor", list(WRITERS))
def test_openslide_recognises_the_vendor_format(tmp_path: Path, vendor: str) -> None:
    path = write_small(vendor, tmp_path)

    detected = openslide.OpenSlide.detect_format(str(path))
    with openslide.OpenSlide(str(path)) as slide:
        props = dict(slide.properties)
        levels = slide.level_count
        associated = set(slide.associated_images)
        x, y = int(props.get("openslide.bounds-x", 0)), int(props.get("openslide.bounds-y", 0))
        width, height = 512, 384
        region = np.asarray(slide.read_region((x, y), 0, (width, height)))

    assert detected is not None
    assert props["openslide.vendor"] == vendor
    assert float(props["openslide.mpp-x"]) == pytest.approx(MPP[vendor])
    assert props["openslide.objective-power"] == "20"
    assert levels >= 3
    assert associated == ASSOCIATED[vendor]
    assert (region[..., 3] == 255).all()  # no gaps between tiles
    # Tiles in their right places show the texture as rendered for the whole region.
    assert psnr(region[..., :3], picture(5, width, height, 1.0)) >= 30


def test_philips_levels_are_padded_to_whole_tiles(tmp_path: Path) -> None:
    path = write_philips_tiff(tmp_path / "p.tiff", 1000, 700, tile=256)

    with tifffile.TiffFile(path) as tiff:
        stored = [(page.imagewidth, page.imagelength) for page in tiff.pages
                  if isinstance(page, tifffile.TiffPage) and page.is_tiled]
    with openslide.OpenSlide(str(path)) as slide:
        dimensions = list(slide.level_dimensions)

    assert stored == [(1024, 768), (512, 512), (256, 256)]
    # OpenSlide takes the padded base as it is and derives the lower sizes from it.
    assert dimensions == [(1024, 768), (512, 384), (256, 192)]


def test_mirax_slide_is_a_file_and_a_folder(tmp_path: Path) -> None:
    path = write_mirax(tmp_path / "m.mrxs", 2, 2, zoom_levels=2)

    assert path.read_text().startswith("[GENERAL]")
    assert sorted(p.name for p in path.with_suffix("").iterdir()) == [
        "Data0000.dat", "Index.dat", "Slidedat.ini"]
    with pytest.raises(ValueError, match="mrxs"):
        write_mirax(tmp_path / "m.zip")


def test_cli_writes_every_format(tmp_path: Path) -> None:
    help_text = subprocess.run([sys.executable, "-m", "samples.vendor_slides", "--help"],
                               capture_output=True, text=True, check=True,
                               cwd=Path(__file__).parents[2]).stdout
    subprocess.run([sys.executable, "-m", "samples.vendor_slides", "leica", str(tmp_path)],
                   capture_output=True, check=True, cwd=Path(__file__).parents[2])

    assert "usage:" in help_text and "mirax" in help_text
    assert openslide.OpenSlide.detect_format(str(tmp_path / "leica.scn")) == "leica"
