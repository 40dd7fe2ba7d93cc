"""Small, realistic VL Whole Slide Microscopy Image instances (one level or a whole pyramid).

Frames are 8-bit RGB tiles of synthetic H&E-like tissue, compressed with baseline JPEG
(libjpeg via :func:`imagecodecs.jpeg8_encode`, YCbCr with 4:2:0 chroma subsampling, so the
PhotometricInterpretation is YBR_FULL_422 as PS3.5 8.2.1 requires for subsampled JPEG).
Tiles are stored TILED_FULL, row-major, edge tiles padded to the full tile size with white.

The texture is a function of the position on the slide (in base-level pixels), so every tile
is generated on its own (memory stays bounded) and the levels of a pyramid show the same
tissue at different resolutions.

Run ``python -m samples.wsi_level --help`` for the command line.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import imagecodecs
import numpy as np
from pydicom.dataset import Dataset, FileDataset
from pydicom.encaps import encapsulate
from pydicom.uid import JPEGBaseline8Bit, generate_uid

from samples._common import (
    BASE_IMAGE_TYPE,
    VL_WSI_SOP_CLASS,
    SlideStudy,
    add_slide,
    add_slide_study,
    add_tiled_image,
    code_item,
    dicom_date,
    dicom_time,
    file_meta,
)

RESAMPLED_IMAGE_TYPE = ("DERIVED", "PRIMARY", "VOLUME", "RESAMPLED")
_STUDY = SlideStudy(
    study_id="S0001",
    accession_number="WSI0001",
    study_description="Synthetic H&E slide",
    referring_physician_name="Referring^Doctor",
    device_serial_number="SYN-0001",
    acquisition_duration_s=120.0,
)

_PAD_RGB = (255, 255, 255)
_BACKGROUND_RGB = np.array([241, 238, 244], dtype=np.float32)
_STROMA_LIGHT_RGB = np.array([246, 196, 220], dtype=np.float32)
_STROMA_DARK_RGB = np.array([214, 112, 168], dtype=np.float32)
_NUCLEUS_RGB = np.array([82, 42, 128], dtype=np.float32)

_U64 = np.uint64
_MASK_SPACINGS = ((640.0, 0.65), (210.0, 0.35))
_STROMA_SPACINGS = ((70.0, 0.6), (18.0, 0.4))
_NUCLEUS_SPACING = 26.0


def _hash_unit(seed: int, octave: int, ix: np.ndarray, iy: np.ndarray) -> np.ndarray:
    """Deterministic pseudo-random value in [0, 1) for each lattice point (splitmix64)."""
    with np.errstate(over="ignore"):
        ix, iy = np.broadcast_arrays(ix, iy)
        h = ix.astype(_U64) * _U64(0x9E3779B97F4A7C15)
        h ^= iy.astype(_U64) * _U64(0xC2B2AE3D27D4EB4F)
        h ^= _U64((seed * 1_000_003 + octave * 7919) & 0xFFFFFFFFFFFFFFFF) * _U64(
            0x165667B19E3779F9
        )
        h ^= h >> _U64(30)
        h *= _U64(0xBF58476D1CE4E5B9)
        h ^= h >> _U64(27)
        h *= _U64(0x94D049BB133111EB)
        h ^= h >> _U64(31)
    return (h >> _U64(40)).astype(np.float32) / np.float32(1 << 24)


def _value_noise(
    seed: int, octave: int, xs: np.ndarray, ys: np.ndarray, spacing: float
) -> np.ndarray:
    """Smooth value noise in [0, 1) on the grid ``ys`` x ``xs`` (slide pixel coordinates)."""
    gx = xs / spacing
    gy = ys / spacing
    ix0 = np.floor(gx).astype(np.int64)
    iy0 = np.floor(gy).astype(np.int64)
    fx = (gx - ix0).astype(np.float32)
    fy = (gy - iy0).astype(np.float32)
    wx = fx * fx * (3 - 2 * fx)
    wy = fy * fy * (3 - 2 * fy)
    x_lo, y_lo = int(ix0.min()), int(iy0.min())
    lx = np.arange(x_lo, int(ix0.max()) + 2)
    ly = np.arange(y_lo, int(iy0.max()) + 2)
    lattice = _hash_unit(seed, octave, lx[np.newaxis, :], ly[:, np.newaxis])
    cx, cy = ix0 - x_lo, iy0 - y_lo
    top = lattice[np.ix_(cy, cx)] * (1 - wx) + lattice[np.ix_(cy, cx + 1)] * wx
    bottom = lattice[np.ix_(cy + 1, cx)] * (1 - wx) + lattice[np.ix_(cy + 1, cx + 1)] * wx
    return top * (1 - wy[:, np.newaxis]) + bottom * wy[:, np.newaxis]


def _fbm(
    seed: int,
    first_octave: int,
    xs: np.ndarray,
    ys: np.ndarray,
    spacings: Sequence[tuple[float, float]],
) -> np.ndarray:
    total = np.zeros((ys.size, xs.size), dtype=np.float32)
    for index, (spacing, weight) in enumerate(spacings):
        total += weight * _value_noise(seed, first_octave + index, xs, ys, spacing)
    return total


def render_tile(
    seed: int,
    level_width: int,
    level_height: int,
    row: int,
    column: int,
    tile: int,
    downsample: float = 1.0,
) -> np.ndarray:
    """Return tile (``row``, ``column``) of a level as a ``(tile, tile, 3)`` uint8 RGB array.

    ``downsample`` is the level's pixel size relative to the base level; the texture is
    evaluated at base-level coordinates so all levels of a pyramid depict the same tissue.
    Pixels beyond ``level_width`` x ``level_height`` are padding and are white.
    """
    x0, y0 = column * tile, row * tile
    xs = (np.arange(x0, x0 + tile, dtype=np.float64) + 0.5) * downsample
    ys = (np.arange(y0, y0 + tile, dtype=np.float64) + 0.5) * downsample

    tissue = np.clip((_fbm(seed, 0, xs, ys, _MASK_SPACINGS) - 0.42) * 9.0, 0.0, 1.0)
    shade = _fbm(seed, 10, xs, ys, _STROMA_SPACINGS)[..., np.newaxis]
    nuclei = _value_noise(seed, 20, xs, ys, _NUCLEUS_SPACING)
    nucleus_alpha = (np.clip((nuclei - 0.66) * 7.0, 0.0, 1.0) * tissue)[..., np.newaxis]
    tissue = tissue[..., np.newaxis]

    stroma = _STROMA_LIGHT_RGB * (1 - shade) + _STROMA_DARK_RGB * shade
    rgb = _BACKGROUND_RGB * (1 - tissue) + stroma * tissue
    rgb = rgb * (1 - nucleus_alpha) + _NUCLEUS_RGB * nucleus_alpha
    # Per-pixel grain keeps JPEG sizes close to real scans; seeded per tile for determinism.
    grain_rng = np.random.default_rng([seed, row, column, int(downsample * 1000)])
    rgb += grain_rng.normal(0.0, 3.0, size=(tile, tile, 1)).astype(np.float32)
    out = np.clip(rgb, 0, 255).astype(np.uint8)

    valid_w = max(0, min(tile, level_width - x0))
    valid_h = max(0, min(tile, level_height - y0))
    out[valid_h:, :] = _PAD_RGB
    out[:, valid_w:] = _PAD_RGB
    return out


def encode_tile(rgb: np.ndarray, quality: int = 90) -> bytes:
    """Encode an RGB tile as baseline JPEG, YCbCr with 4:2:0 chroma subsampling (JFIF)."""
    return bytes(
        imagecodecs.jpeg8_encode(
            rgb, level=quality, colorspace="RGB", outcolorspace="YCbCr", subsampling="420"
        )
    )


def _encoded_tiles(
    seed: int, width: int, height: int, tile: int, quality: int, downsample: float
) -> Iterator[bytes]:
    for row in range(math.ceil(height / tile)):
        for column in range(math.ceil(width / tile)):
            yield encode_tile(
                render_tile(seed, width, height, row, column, tile, downsample), quality
            )


def _specimen_preparation_step(specimen_id: str) -> Dataset:
    """A TID 8001 staining step: hematoxylin and eosin."""

    def content(value_type: str, name: Dataset) -> Dataset:
        item = Dataset()
        item.ValueType = value_type
        item.ConceptNameCodeSequence = [name]
        return item

    identifier = content("TEXT", code_item("121041", "DCM", "Specimen Identifier"))
    identifier.TextValue = specimen_id
    processing = content("CODE", code_item("111701", "DCM", "Processing type"))
    processing.ConceptCodeSequence = [code_item("127790008", "SCT", "Staining")]
    substances = []
    stains = (("12710003", "hematoxylin stain"), ("36879007", "water soluble eosin stain"))
    for code, meaning in stains:
        substance = content("CODE", code_item("424361007", "SCT", "Using substance"))
        substance.ConceptCodeSequence = [code_item(code, "SCT", meaning)]
        substances.append(substance)
    step = Dataset()
    step.SpecimenPreparationStepContentItemSequence = [identifier, processing, *substances]
    return step


def _dimension_index(dimension_organization_uid: str) -> list[Dataset]:
    """Dimension Index items: frames are indexed by column, then row position."""
    indices = []
    for pointer, label in ((0x0048021E, "Column Position"), (0x0048021F, "Row Position")):
        index = Dataset()
        index.DimensionOrganizationUID = dimension_organization_uid
        index.DimensionIndexPointer = pointer
        index.FunctionalGroupPointer = 0x0048021A  # PlanePositionSlideSequence
        index.DimensionDescriptionLabel = label
        indices.append(index)
    return indices


def write_wsi_level(
    path: Path,
    *,
    width: int,
    height: int,
    tile: int = 256,
    quality: int = 90,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    pyramid_uid: str | None = None,
    patient_id: str = "WSI-SAMPLE",
    patient_name: str = "Sample^Slide",
    image_type: Sequence[str] = BASE_IMAGE_TYPE,
    pixel_spacing_mm: float = 0.00025,
    seed: int = 0,
    downsample: float = 1.0,
    container_id: str = "SLIDE-0001",
    specimen_uid: str | None = None,
    dimension_organization_uid: str | None = None,
    instance_number: int = 1,
    acquisition_datetime: datetime | None = None,
) -> Path:
    """Write one VL Whole Slide Microscopy Image level (TILED_FULL, JPEG Baseline) to ``path``.

    ``width`` x ``height`` is the total pixel matrix; frames are ``tile`` x ``tile`` JPEG
    tiles (YBR_FULL_422, quality ``quality``) in row-major order, edge tiles padded with
    white. UIDs left as ``None`` are generated. ``downsample`` is the level's pixel size
    relative to the base level of its pyramid (it selects which part of the synthetic texture
    is rendered); ``container_id``, ``specimen_uid`` and ``dimension_organization_uid`` are
    shared between the levels of a pyramid. The pixel data is held in memory compressed, so
    this is meant for small and medium outputs. Returns ``path``.
    """
    if width < 1 or height < 1 or tile < 16 or tile % 16:
        raise ValueError("width and height must be positive and tile a multiple of 16")
    image_type = tuple(image_type)
    if len(image_type) != 4:
        raise ValueError("image_type must have four values")
    path = Path(path)
    now = datetime.now()
    acquired = acquisition_datetime or now
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    sop_uid = sop_uid or generate_uid()
    frame_of_reference_uid = frame_of_reference_uid or generate_uid()
    pyramid_uid = pyramid_uid or generate_uid()
    specimen_uid = specimen_uid or generate_uid()
    dimension_organization_uid = dimension_organization_uid or generate_uid()
    frames = list(_encoded_tiles(seed, width, height, tile, quality, downsample))

    ds = FileDataset(
        str(path),
        {},
        file_meta=file_meta(VL_WSI_SOP_CLASS, sop_uid, JPEGBaseline8Bit),
        preamble=b"\0" * 128,
    )
    add_slide_study(
        ds,
        _STUDY,
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        frame_of_reference_uid=frame_of_reference_uid,
        acquired=acquired,
    )
    ds.InstanceCreationDate = dicom_date(now)
    ds.InstanceCreationTime = dicom_time(now)
    ds.SeriesDescription = "Synthetic whole slide image"
    ds.SeriesDate = dicom_date(acquired)
    ds.SeriesTime = dicom_time(acquired)
    ds.InstitutionName = "Sample Pathology Lab"
    ds.AcquisitionUID = generate_uid(entropy_srcs=[series_uid, "acquisition"])

    add_tiled_image(
        ds,
        image_type=image_type,
        instance_number=instance_number,
        acquired=acquired,
        width=width,
        height=height,
        tile=tile,
        pixel_spacing_mm=pixel_spacing_mm,
        compressed_bytes=sum(len(f) for f in frames),
        pyramid_uid=pyramid_uid,
        dimension_organization_uid=dimension_organization_uid,
    )
    ds.RecommendedAbsentPixelCIELabValue = [0xFFFF, 0x8080, 0x8080]
    ds.PyramidLabel = "Synthetic H&E"
    ds.DimensionIndexSequence = _dimension_index(dimension_organization_uid)
    optical_path_id = Dataset()
    optical_path_id.OpticalPathIdentifier = "1"
    ds.SharedFunctionalGroupsSequence[0].OpticalPathIdentificationSequence = [optical_path_id]

    specimen_id = f"{container_id}-S1"
    add_slide(ds, container_id, specimen_uid, [_specimen_preparation_step(specimen_id)])
    ds.SpecimenDescriptionSequence[0].SpecimenShortDescription = "Synthetic tissue section, H&E"
    ds.OpticalPathSequence[0].OpticalPathDescription = "Brightfield"
    ds.OpticalPathSequence[0].ObjectiveLensPower = 40

    ds.PixelData = encapsulate(frames, has_bot=True)
    ds["PixelData"].VR = "OB"
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(path, enforce_file_format=True)
    return path


def pyramid_sizes(
    width: int, height: int, tile: int = 256, levels: int | None = None
) -> list[tuple[int, int]]:
    """Return the (width, height) of each pyramid level, halving (rounding up) each time.

    With ``levels`` ``None`` halving stops at the first level that fits in a single tile.
    """
    sizes = [(width, height)]
    while (levels is None and (sizes[-1][0] > tile or sizes[-1][1] > tile)) or (
        levels is not None and len(sizes) < levels
    ):
        w, h = sizes[-1]
        sizes.append((max(1, math.ceil(w / 2)), max(1, math.ceil(h / 2))))
    return sizes


def write_wsi_pyramid(
    folder: Path,
    width: int,
    height: int,
    tile: int = 256,
    levels: int | None = None,
    *,
    quality: int = 90,
    seed: int = 0,
    pixel_spacing_mm: float = 0.00025,
    patient_id: str = "WSI-SAMPLE",
    patient_name: str = "Sample^Slide",
    study_uid: str | None = None,
    series_uid: str | None = None,
    container_id: str = "SLIDE-0001",
) -> list[Path]:
    """Write a pyramid of VL WSI levels into ``folder`` as ``level-<n>.dcm``.

    Level 0 is ``width`` x ``height`` (ImageType ORIGINAL\\PRIMARY\\VOLUME\\NONE); each
    further level is half the size (DERIVED\\PRIMARY\\VOLUME\\RESAMPLED). All levels share
    study, series, frame of reference, pyramid UID, container identifier and specimen.
    Returns the paths, base level first.
    """
    folder = Path(folder)
    study_uid = study_uid or generate_uid()
    series_uid = series_uid or generate_uid()
    frame_of_reference_uid = generate_uid()
    pyramid_uid = generate_uid()
    specimen_uid = generate_uid()
    dimension_organization_uid = generate_uid()
    acquired = datetime.now()
    paths = []
    for index, (level_width, level_height) in enumerate(pyramid_sizes(width, height, tile, levels)):
        downsample = 2.0**index
        paths.append(
            write_wsi_level(
                folder / f"level-{index}.dcm",
                width=level_width,
                height=level_height,
                tile=tile,
                quality=quality,
                study_uid=study_uid,
                series_uid=series_uid,
                frame_of_reference_uid=frame_of_reference_uid,
                pyramid_uid=pyramid_uid,
                patient_id=patient_id,
                patient_name=patient_name,
                image_type=BASE_IMAGE_TYPE if index == 0 else RESAMPLED_IMAGE_TYPE,
                pixel_spacing_mm=pixel_spacing_mm * downsample,
                seed=seed,
                downsample=downsample,
                container_id=container_id,
                specimen_uid=specimen_uid,
                dimension_organization_uid=dimension_organization_uid,
                instance_number=index + 1,
                acquisition_datetime=acquired,
            )
        )
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m samples.wsi_level",
        description="Write a synthetic VL Whole Slide Microscopy Image level or pyramid.",
    )
    parser.add_argument("output", type=Path, help="output .dcm file, or a folder with --pyramid")
    parser.add_argument("--width", type=int, default=1024, help="total pixel matrix columns")
    parser.add_argument("--height", type=int, default=768, help="total pixel matrix rows")
    parser.add_argument("--tile", type=int, default=256, help="tile (frame) size in pixels")
    parser.add_argument("--quality", type=int, default=90, help="JPEG quality (1-100)")
    parser.add_argument("--seed", type=int, default=0, help="texture seed")
    parser.add_argument("--pixel-spacing-mm", type=float, default=0.00025)
    parser.add_argument(
        "--pyramid", action="store_true", help="write every pyramid level into the output folder"
    )
    parser.add_argument(
        "--levels",
        type=int,
        default=None,
        help="number of pyramid levels (default: down to one tile)",
    )
    args = parser.parse_args(argv)
    if args.pyramid:
        paths = write_wsi_pyramid(
            args.output,
            args.width,
            args.height,
            args.tile,
            args.levels,
            quality=args.quality,
            seed=args.seed,
            pixel_spacing_mm=args.pixel_spacing_mm,
        )
    else:
        paths = [
            write_wsi_level(
                args.output,
                width=args.width,
                height=args.height,
                tile=args.tile,
                quality=args.quality,
                seed=args.seed,
                pixel_spacing_mm=args.pixel_spacing_mm,
            )
        ]
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
