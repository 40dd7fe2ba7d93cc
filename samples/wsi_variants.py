"""WSI levels in the layouts real slides come in, for testing pyramid models and viewers.

Built on :func:`samples.wsi_level.write_wsi_level` (same synthetic tissue, same modules), then
re-encoded with pydicom:

- ``transfer_syntax``: JPEG Baseline (YBR_FULL_422), JPEG 2000 lossless (YBR_RCT) or native
  Explicit VR Little Endian (RGB);
- ``aperio_rgb``: JPEG frames holding RGB samples with component ids 0, 1, 2 and no JFIF or
  Adobe marker, PhotometricInterpretation RGB, as Aperio SVS tiles are;
- ``organization``: TILED_FULL, or TILED_SPARSE with per-frame Plane Position (Slide) items,
  frames in shuffled order and ``omit`` tiles left out;
- ``focal_planes`` (µm) and ``optical_paths``: several planes and paths (each plane/path
  renders different tissue so they can be told apart);
- ``parts``: the frames split into a concatenation of several instances (PS3.3 C.7.6.16.2.2.4).

Also associated images (label, overview) as single-frame native instances.
Run ``python -m samples.wsi_variants --help`` for the command line.
"""

from __future__ import annotations

import argparse
import copy
import math
import random
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    generate_uid,
)

from samples.wsi_level import (
    BASE_IMAGE_TYPE,
    RESAMPLED_IMAGE_TYPE,
    encode_tile,
    pyramid_sizes,
    render_tile,
    write_wsi_level,
)

TRANSFER_SYNTAXES = {
    "jpeg": JPEGBaseline8Bit,
    "jpeg2000": JPEG2000Lossless,
    "native": ExplicitVRLittleEndian,
}


def plane_seed(seed: int, plane: int, path: int) -> int:
    """The texture seed of a focal plane and optical path (distinct tissue for each)."""
    return seed + 1000 * plane + 100 * path


def aperio_rgb_jpeg(rgb: np.ndarray, quality: int = 90) -> bytes:
    """RGB samples in a baseline JPEG, component ids 0, 1, 2, no JFIF or Adobe marker."""
    data = bytearray(
        imagecodecs.jpeg8_encode(rgb, level=quality, colorspace="RGB", outcolorspace="RGB")
    )
    out = bytearray(data[:2])
    index = 2
    while index < len(data):
        marker = data[index + 1]
        length = int.from_bytes(data[index + 2 : index + 4], "big")
        segment = bytearray(data[index : index + 2 + length])
        if marker == 0xC0:
            for i in range(segment[9]):
                segment[10 + 3 * i] = i
        elif marker == 0xDA:
            for i in range(segment[4]):
                segment[5 + 2 * i] = i
            out += segment + data[index + 2 + length :]
            break
        if marker not in (0xE0, 0xEE):
            out += segment
        index += 2 + length
    return bytes(out)


def _encode(rgb: np.ndarray, transfer_syntax: str, aperio_rgb: bool) -> bytes:
    if transfer_syntax == JPEG2000Lossless:
        return bytes(imagecodecs.jpeg2k_encode(rgb, level=0, codecformat="J2K", mct=True))
    if transfer_syntax == ExplicitVRLittleEndian:
        return np.ascontiguousarray(rgb).tobytes()
    return aperio_rgb_jpeg(rgb) if aperio_rgb else encode_tile(rgb)


def _photometric(transfer_syntax: str, aperio_rgb: bool) -> str:
    if transfer_syntax == JPEG2000Lossless:
        return "YBR_RCT"
    if transfer_syntax == ExplicitVRLittleEndian or aperio_rgb:
        return "RGB"
    return "YBR_FULL_422"


def _mark_lossless(ds: Dataset) -> None:
    """Mark the pixel data as never lossy compressed (the rendered pixels, losslessly kept)."""
    ds.LossyImageCompression = "00"
    for keyword in ("LossyImageCompressionRatio", "LossyImageCompressionMethod"):
        if keyword in ds:
            delattr(ds, keyword)


def _position_item(col: int, row: int, tile: int, z: float, spacing_mm: float) -> Dataset:
    position = Dataset()
    position.ColumnPositionInTotalImagePixelMatrix = col * tile + 1
    position.RowPositionInTotalImagePixelMatrix = row * tile + 1
    position.XOffsetInSlideCoordinateSystem = round(20.0 - row * tile * spacing_mm, 6)
    position.YOffsetInSlideCoordinateSystem = round(50.0 - col * tile * spacing_mm, 6)
    position.ZOffsetInSlideCoordinateSystem = z
    return position


def _optical_path_items(template: Dataset, paths: Sequence[str]) -> list[Dataset]:
    items = []
    for identifier in paths:
        item = copy.deepcopy(template)
        item.OpticalPathIdentifier = identifier
        item.OpticalPathDescription = f"Channel {identifier}"
        items.append(item)
    return items


def write_variant_level(
    path: Path,
    *,
    width: int,
    height: int,
    tile: int = 256,
    transfer_syntax: str = JPEGBaseline8Bit,
    aperio_rgb: bool = False,
    organization: str = "TILED_FULL",
    omit: Collection[tuple[int, int]] = (),
    focal_planes: Sequence[float] = (0.0,),
    optical_paths: Sequence[str] = ("1",),
    parts: int = 1,
    seed: int = 0,
    downsample: float = 1.0,
    **level: Any,
) -> list[Path]:
    """Write one level in the given layout; returns its files (several for ``parts`` > 1).

    ``omit`` (TILED_SPARSE only) lists (column, row) tiles to leave out. ``level`` passes
    UIDs and other options on to :func:`write_wsi_level`. Files are ``path`` or, for a
    concatenation, ``path`` with ``-part<n>`` before the suffix.
    """
    path = Path(path)
    write_wsi_level(path, width=tile, height=tile, tile=tile, seed=seed, **level)
    ds = pydicom.dcmread(path)
    sparse = organization == "TILED_SPARSE"
    across, down = math.ceil(width / tile), math.ceil(height / tile)
    measures = ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
    spacing_mm = float(measures.PixelSpacing[0])

    frames: list[tuple[int, int, int, int]] = [
        (p, z, row, col)
        for p in range(len(optical_paths))
        for z in range(len(focal_planes))
        for row in range(down)
        for col in range(across)
        if not (sparse and (col, row) in omit)
    ]
    if sparse:
        random.Random(seed).shuffle(frames)

    def encoded(frame: tuple[int, int, int, int]) -> bytes:
        p, z, row, col = frame
        rgb = render_tile(plane_seed(seed, z, p), width, height, row, col, tile, downsample)
        return _encode(rgb, transfer_syntax, aperio_rgb)

    ds.file_meta.TransferSyntaxUID = transfer_syntax
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = width, height
    ds.ImagedVolumeWidth = width * spacing_mm
    ds.ImagedVolumeHeight = height * spacing_mm
    ds.PhotometricInterpretation = _photometric(transfer_syntax, aperio_rgb)
    if transfer_syntax != JPEGBaseline8Bit:
        _mark_lossless(ds)
    ds.DimensionOrganizationType = organization
    ds.TotalPixelMatrixFocalPlanes = len(focal_planes)
    shared = ds.SharedFunctionalGroupsSequence[0]
    if len(focal_planes) > 1:
        shared.PixelMeasuresSequence[0].SpacingBetweenSlices = (
            (focal_planes[1] - focal_planes[0]) / 1000.0
        )
    ds.NumberOfOpticalPaths = len(optical_paths)
    ds.OpticalPathSequence = _optical_path_items(ds.OpticalPathSequence[0], optical_paths)
    if len(optical_paths) > 1 or sparse:
        del shared.OpticalPathIdentificationSequence
    else:
        shared.OpticalPathIdentificationSequence[0].OpticalPathIdentifier = optical_paths[0]

    concatenation_uid = generate_uid()
    source_uid = generate_uid()
    chunk = math.ceil(len(frames) / parts)
    written = []
    for part in range(parts):
        selected = frames[part * chunk : (part + 1) * chunk]
        part_path = path if parts == 1 else path.with_name(f"{path.stem}-part{part + 1}.dcm")
        if parts > 1:
            ds.SOPInstanceUID = generate_uid()
            ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
            ds.ConcatenationUID = concatenation_uid
            ds.SOPInstanceUIDOfConcatenationSource = source_uid
            ds.ConcatenationFrameOffsetNumber = part * chunk
            ds.InConcatenationNumber = part + 1
            ds.InConcatenationTotalNumber = parts
        if sparse:
            items = []
            for p, z, row, col in selected:
                item = Dataset()
                item.PlanePositionSlideSequence = [
                    _position_item(col, row, tile, focal_planes[z], spacing_mm)
                ]
                path_id = Dataset()
                path_id.OpticalPathIdentifier = optical_paths[p]
                item.OpticalPathIdentificationSequence = [path_id]
                items.append(item)
            ds.PerFrameFunctionalGroupsSequence = items
        ds.NumberOfFrames = len(selected)
        data = [encoded(f) for f in selected]
        if transfer_syntax == ExplicitVRLittleEndian:
            ds.PixelData = b"".join(data)
        else:
            ds.PixelData = encapsulate(data, has_bot=True)
        ds["PixelData"].VR = "OB"
        ds.save_as(part_path, enforce_file_format=True)
        written.append(part_path)
    if parts > 1:
        path.unlink(missing_ok=True)
    return written


def write_variant_pyramid(
    folder: Path,
    width: int,
    height: int,
    tile: int = 256,
    levels: int | None = None,
    *,
    study_uid: str | None = None,
    series_uid: str | None = None,
    patient_id: str = "WSI-VARIANT",
    seed: int = 0,
    pixel_spacing_mm: float = 0.00025,
    **variant: Any,
) -> list[Path]:
    """A pyramid whose every level is written by :func:`write_variant_level`.

    ``variant`` options apply to every level (``omit`` leaves out the same (column, row) in
    each level whose grid has it).
    """
    folder = Path(folder)
    shared = {
        "study_uid": study_uid or generate_uid(),
        "series_uid": series_uid or generate_uid(),
        "frame_of_reference_uid": generate_uid(),
        "pyramid_uid": generate_uid(),
        "specimen_uid": generate_uid(),
        "dimension_organization_uid": generate_uid(),
        "patient_id": patient_id,
    }
    paths = []
    for index, (w, h) in enumerate(pyramid_sizes(width, height, tile, levels)):
        paths += write_variant_level(
            folder / f"level-{index}.dcm", width=w, height=h, tile=tile, seed=seed,
            downsample=2.0**index, pixel_spacing_mm=pixel_spacing_mm * 2**index,
            image_type=BASE_IMAGE_TYPE if index == 0 else RESAMPLED_IMAGE_TYPE,
            instance_number=index + 1, **shared, **variant,
        )
    return paths


def label_pixels(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A slide label: white with a dark barcode-like block and a coloured stripe."""
    rng = np.random.default_rng(seed)
    rgb = np.full((height, width, 3), 250, dtype=np.uint8)
    bars = rng.integers(0, 2, size=width // 4).repeat(2)
    top, bottom = height // 8, height // 2
    rgb[top:bottom, width // 8 : width // 8 + bars.size][:, bars == 1] = 20
    rgb[height * 3 // 4 :, :] = (40, 90, 200)
    return rgb


def write_associated(
    path: Path, kind: str, *, width: int, height: int, study_uid: str, series_uid: str,
    seed: int = 0, **level: Any,
) -> Path:
    """A single-frame native LABEL or OVERVIEW instance of a slide's series."""
    path = Path(path)
    image_type = ("ORIGINAL", "PRIMARY", kind.upper(), "NONE")
    side = max(width, height)
    write_wsi_level(path, width=side, height=side, tile=side, study_uid=study_uid,
                    series_uid=series_uid, image_type=image_type, seed=seed, **level)
    ds = pydicom.dcmread(path)
    if kind.upper() == "LABEL":
        rgb = label_pixels(width, height, seed)
    else:
        rgb = render_tile(seed, width, height, 0, 0, max(width, height), 8.0)[:height, :width]
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.Rows, ds.Columns = height, width
    ds.TotalPixelMatrixColumns, ds.TotalPixelMatrixRows = width, height
    ds.PhotometricInterpretation = "RGB"
    _mark_lossless(ds)
    ds.NumberOfFrames = 1
    ds.PixelData = np.ascontiguousarray(rgb).tobytes()
    ds["PixelData"].VR = "OB"
    ds.save_as(path, enforce_file_format=True)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m samples.wsi_variants",
        description="Write a synthetic WSI pyramid in a chosen layout and transfer syntax.",
    )
    parser.add_argument("output", type=Path, help="output folder")
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--height", type=int, default=768)
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--levels", type=int, default=None)
    parser.add_argument("--transfer-syntax", choices=sorted(TRANSFER_SYNTAXES), default="jpeg")
    parser.add_argument("--aperio-rgb", action="store_true",
                        help="JPEG frames with RGB samples and no colour marker")
    parser.add_argument("--sparse", action="store_true", help="TILED_SPARSE, shuffled frames")
    parser.add_argument("--focal-planes", type=int, default=1, help="planes 2 µm apart")
    parser.add_argument("--optical-paths", type=int, default=1)
    parser.add_argument("--parts", type=int, default=1, help="concatenation parts per level")
    parser.add_argument("--label", action="store_true", help="also write a label image")
    args = parser.parse_args(argv)
    study_uid, series_uid = generate_uid(), generate_uid()
    paths = write_variant_pyramid(
        args.output, args.width, args.height, args.tile, args.levels,
        study_uid=study_uid, series_uid=series_uid,
        transfer_syntax=TRANSFER_SYNTAXES[args.transfer_syntax], aperio_rgb=args.aperio_rgb,
        organization="TILED_SPARSE" if args.sparse else "TILED_FULL",
        focal_planes=tuple(2.0 * i for i in range(args.focal_planes)),
        optical_paths=tuple(str(i + 1) for i in range(args.optical_paths)), parts=args.parts,
    )
    if args.label:
        paths.append(write_associated(args.output / "label.dcm", "label", width=400,
                                      height=300, study_uid=study_uid, series_uid=series_uid))
    for path in paths:
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
