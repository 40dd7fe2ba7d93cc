"""Small synthetic slides in vendor formats: Philips TIFF, Leica SCN, Ventana BIF, MIRAX.

Each follows the layout rules of OpenSlide's reader for that vendor (``openslide-vendor-*.c``)
closely enough that OpenSlide recognises and opens it (``openslide.vendor`` is ``philips``,
``leica``, ``ventana`` or ``mirax``), which is the check that the layout is faithful:

- **Philips TIFF**: software ``Philips DP``; the first ImageDescription is the DPUfsImport XML
  whose one ``WSI`` scanned image lists a ``DICOM_PIXEL_SPACING`` per pyramid level; tiled
  JPEG levels padded to whole tiles as Philips writes them (reduced ones with NewSubfileType
  1); ``Label`` and ``Macro`` strip pages.
- **Leica SCN**: BigTIFF whose first ImageDescription is the ``scn`` XML (namespace
  2010/10/01): a collection (sizes in nm) holding a macro image that spans it and a
  brightfield main image (offset inside it) whose ``dimension`` elements name the IFD of each
  level; every image tiled JPEG, the main base level with its resolution in pixels per cm.
- **Ventana BIF**: the first IFD is the ``Label Image`` (the macro) with the iScan XMP
  (``Magnification``, ``ScanRes``); then ``Thumbnail``; then levels described
  ``level=N mag=M quality=Q``, tiled JPEG of one tile size; level 0 carries the EncodeInfo
  XMP: one scanned AOI at the origin, no overlaps, its tile joints numbered serpentine from
  the bottom left as the iScan writes them.
- **MIRAX**: ``slide.mrxs`` beside a folder ``slide/`` holding ``Slidedat.ini``,
  ``Index.dat`` and ``Data0000.dat``; JPEG images of 256 x 256 without overlap or position
  buffer, each lower zoom level concatenating 2 x 2 images of the one above; macro and label
  as non-hierarchical records.

Pixels are the tissue-like texture of :mod:`samples.wsi_level`, evaluated in base-level
coordinates so the levels of a pyramid agree. Run ``python -m samples.vendor_slides --help``.
"""

from __future__ import annotations

import argparse
import base64
import math
import struct
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import imagecodecs
import numpy as np
import tifffile

from samples.wsi_level import render_tile
from samples.wsi_variants import label_pixels

_FILETYPE_REDUCED = 1
_XMP = 700


def _tiles(seed: int, width: int, height: int, tile: int, downsample: float
           ) -> Iterator[np.ndarray]:
    """Row-major tiles of a level; pixels beyond ``width`` x ``height`` are white."""
    for row in range(math.ceil(height / tile)):
        for col in range(math.ceil(width / tile)):
            yield render_tile(seed, width, height, row, col, tile, downsample)


def picture(seed: int, width: int, height: int, downsample: float) -> np.ndarray:
    """One whole ``(height, width, 3)`` image of the texture at ``downsample``."""
    side = max(width, height)
    return np.ascontiguousarray(render_tile(seed, width, height, 0, 0, side, downsample)
                                [:height, :width])


def _jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """Baseline JFIF JPEG, YCbCr 4:2:0."""
    return bytes(imagecodecs.jpeg8_encode(rgb, level=quality, colorspace="RGB",
                                          outcolorspace="YCbCr", subsampling="420"))


def _write_tiled(tif: tifffile.TiffWriter, seed: int, content: tuple[int, int],
                 stored: tuple[int, int], tile: int, downsample: float, quality: int,
                 **tags: Any) -> None:
    """One tiled JPEG page of ``stored`` (w, h) size showing a level of ``content`` size."""
    width, height = stored
    tif.write(_tiles(seed, content[0], content[1], tile, downsample),
              shape=(height, width, 3), dtype=np.uint8, tile=(tile, tile),
              compression="jpeg", compressionargs={"level": quality}, photometric="rgb",
              metadata=None, **tags)


# -- Philips TIFF ------------------------------------------------------------------------


def _philips_attribute(name: str, value: str, vr: str = "IString") -> str:
    return f'<Attribute Name="{name}" PMSVR="{vr}">{value}</Attribute>'


def _philips_xml(spacings_mm: Sequence[float], sizes: Sequence[tuple[int, int]],
                 objective: int, quality: int) -> str:
    representations = "".join(
        '<DataObject ObjectType="PixelDataRepresentation">'
        + _philips_attribute("DICOM_PIXEL_SPACING", f'"{s:.9g}" "{s:.9g}"', "IDoubleArray")
        + _philips_attribute("PIIM_PIXEL_DATA_REPRESENTATION_NUMBER", str(i), "IUInt16")
        + _philips_attribute("PIIM_PIXEL_DATA_REPRESENTATION_COLUMNS", str(w), "IUInt32")
        + _philips_attribute("PIIM_PIXEL_DATA_REPRESENTATION_ROWS", str(h), "IUInt32")
        + "</DataObject>"
        for i, (s, (w, h)) in enumerate(zip(spacings_mm, sizes, strict=True)))
    levels = ",".join(str(objective if i == 0 else 10000 + i) for i in range(len(sizes)))
    wsi = ('<DataObject ObjectType="DPScannedImage">'
           + _philips_attribute("PIM_DP_IMAGE_TYPE", "WSI")
           + _philips_attribute("DICOM_DERIVATION_DESCRIPTION",
                                f"tiff-useBigTIFF=0-useRgb=0-levels={levels}-processing=0"
                                f"-q{quality}")
           + _philips_attribute("DICOM_LOSSY_IMAGE_COMPRESSION_METHOD", '"PHILIPS_DP_1_0"',
                                "IStringArray")
           + _philips_attribute("DICOM_PIXEL_SPACING",
                                f'"{spacings_mm[0]:.9g}" "{spacings_mm[0]:.9g}"',
                                "IDoubleArray")
           + _philips_attribute("PIIM_PIXEL_DATA_REPRESENTATION_SEQUENCE",
                                f"<Array>{representations}</Array>", "IDataObjectArray")
           + "</DataObject>")
    associated = "".join(
        '<DataObject ObjectType="DPScannedImage">'
        + _philips_attribute("PIM_DP_IMAGE_TYPE", kind) + "</DataObject>"
        for kind in ("LABELIMAGE", "MACROIMAGE"))
    barcode = base64.b64encode(b"SYNTHETIC-PHILIPS").decode()
    return ('<?xml version="1.0" encoding="UTF-8" ?><DataObject ObjectType="DPUfsImport">'
            + _philips_attribute("DICOM_MANUFACTURER", "PHILIPS")
            + _philips_attribute("DICOM_SOFTWARE_VERSIONS", '"1.0"', "IStringArray")
            + _philips_attribute("PIM_DP_UFS_BARCODE", barcode)
            + _philips_attribute("PIM_DP_SCANNED_IMAGES",
                                 f"<Array>{wsi}{associated}</Array>", "IDataObjectArray")
            + "</DataObject>")


def write_philips_tiff(path: Path, width: int = 2560, height: int = 1792, *,
                       tile: int = 256, quality: int = 85, mpp: float = 0.25,
                       levels: int = 3, seed: int = 0) -> Path:
    """Write a Philips TIFF with ``levels`` levels (downsample 2 each) and label and macro.

    As in Philips files, every level is stored padded to whole tiles (the XML pixel spacings
    give the true downsamples). Returns ``path``.
    """
    path = Path(path)
    sizes = [(width // 2**i, height // 2**i) for i in range(levels)]
    spacings = [mpp * 2**i / 1000 for i in range(levels)]
    description = _philips_xml(spacings, sizes, 20, quality)
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path) as tif:
        for i, (w, h) in enumerate(sizes):
            padded = (-(-w // tile) * tile, -(-h // tile) * tile)
            first: dict[str, Any] = ({"description": description,
                                         "software": "Philips DP v1.0"} if i == 0
                                        else {"subfiletype": _FILETYPE_REDUCED})
            _write_tiled(tif, seed, (w, h), padded, tile, 2.0**i, quality, **first)
        tif.write(label_pixels(400, 300, seed), description="Label", compression="jpeg",
                  photometric="rgb", rowsperstrip=16, metadata=None)
        tif.write(picture(seed, width // 16, height // 16, 16.0), description="Macro",
                  compression="jpeg", photometric="rgb", rowsperstrip=16, metadata=None)
    return path


# -- Leica SCN ----------------------------------------------------------------------------

_LEICA_NS = "http://www.leica-microsystems.com/scn/2010/10/01"


def _leica_image(name: str, dimensions: Sequence[tuple[int, int, int]],
                 view: tuple[int, int, int, int], objective: str, aperture: str) -> str:
    dims = "".join(f'<dimension sizeX="{w}" sizeY="{h}" r="{r}" ifd="{ifd}"/>'
                   for r, (w, h, ifd) in enumerate(dimensions))
    view_w, view_h, x, y = view
    return (f'<image name="{name}" uuid="urn:uuid:{uuid.uuid4()}">'
            "<creationDate>2024-01-02T03:04:05.000Z</creationDate>"
            '<device model="Leica SCN400;Leica SCN" version="1.5.1.10804;1.5.1.10864"/>'
            f'<pixels sizeX="{dimensions[0][0]}" sizeY="{dimensions[0][1]}">{dims}</pixels>'
            f'<view sizeX="{view_w}" sizeY="{view_h}" offsetX="{x}" offsetY="{y}" '
            'spacingZ="0"/>'
            f"<scanSettings><objectiveSettings><objective>{objective}</objective>"
            "</objectiveSettings><illuminationSettings>"
            f"<numericalAperture>{aperture}</numericalAperture>"
            "<illuminationSource>brightfield</illuminationSource>"
            "</illuminationSettings></scanSettings></image>")


def write_leica_scn(path: Path, width: int = 2048, height: int = 1536, *,
                    tile: int = 256, quality: int = 85, mpp: float = 0.5,
                    levels: int = 3, margin: int = 64, seed: int = 0) -> Path:
    """Write a Leica SCN: a macro spanning the collection and a main image of ``width`` x
    ``height`` at ``mpp`` with ``levels`` levels (downsample 4 each, as Leica stores them),
    ``margin`` base pixels inside the collection's top left corner. Returns ``path``."""
    path = Path(path)
    nm = round(mpp * 1000)
    collection = ((width + 2 * margin) * nm, (height + 2 * margin) * nm)
    macro_ds = 16
    macro = (collection[0] // (nm * macro_ds), collection[1] // (nm * macro_ds))
    sizes = [(width // 4**i, height // 4**i) for i in range(levels)]
    xml = ('<?xml version="1.0" encoding="utf-8"?>'
           f'<scn xmlns="{_LEICA_NS}"><collection name="synthetic" '
           f'uuid="urn:uuid:{uuid.uuid4()}" sizeX="{collection[0]}" sizeY="{collection[1]}">'
           f"<barcode>{base64.b64encode(b'SYNTHETIC-LEICA').decode()}</barcode>"
           + _leica_image("macro", [(*macro, 0)], (*collection, 0, 0), "0.6", "0.02")
           + _leica_image("main", [(w, h, i + 1) for i, (w, h) in enumerate(sizes)],
                          (width * nm, height * nm, margin * nm, margin * nm), "20", "0.4")
           + "</collection></scn>")
    per_cm = 1e4 / mpp
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        # The macro shows the collection: the main image's tissue, shifted by the margin.
        macro_pixels = np.full((macro[1], macro[0], 3), 235, np.uint8)
        inner = picture(seed, width // macro_ds, height // macro_ds, macro_ds)
        at = margin // macro_ds
        macro_pixels[at : at + inner.shape[0], at : at + inner.shape[1]] = inner
        tif.write(macro_pixels, tile=(64, 64), compression="jpeg", photometric="rgb",
                  compressionargs={"level": quality}, description=xml,
                  software="Leica SCN", metadata=None)
        for i, (w, h) in enumerate(sizes):
            resolution = {"resolution": (per_cm / 4**i, per_cm / 4**i),
                          "resolutionunit": "CENTIMETER"}
            _write_tiled(tif, seed, (w, h), (w, h), tile, 4.0**i, quality, **resolution)
    return path


# -- Ventana BIF --------------------------------------------------------------------------


def _serpentine_number(col: int, row: int, across: int, down: int) -> int:
    """The iScan's 1-based tile number: rows from the bottom, every other row leftwards."""
    from_bottom = down - 1 - row
    along = col if from_bottom % 2 == 0 else across - 1 - col
    return from_bottom * across + along + 1


def _encode_info(across: int, down: int, tile: int) -> str:
    joints = []
    for row in range(down):
        for col in range(across):
            here = _serpentine_number(col, row, across, down)
            if col + 1 < across:
                right = _serpentine_number(col + 1, row, across, down)
                joints.append(f'<TileJointInfo FlagJoined="1" Direction="RIGHT" Tile1="{here}"'
                              f' Tile2="{right}" OverlapX="0" OverlapY="0" Confidence="100"/>')
            if row > 0:
                above = _serpentine_number(col, row - 1, across, down)
                joints.append(f'<TileJointInfo FlagJoined="1" Direction="UP" Tile1="{here}"'
                              f' Tile2="{above}" OverlapX="0" OverlapY="0" Confidence="100"/>')
    info = (f'<ImageInfo AOIScanned="1" AOIIndex="0" NumRows="{down}" NumCols="{across}" '
            f'Width="{tile}" Height="{tile}" Pos-X="0" Pos-Y="0">{"".join(joints)}'
            "</ImageInfo>")
    return ('<?xml version="1.0" encoding="utf-8"?><EncodeInfo Ver="2">'
            f'<SlideInfo><AoiInfo XIMAGESIZE="{tile}" YIMAGESIZE="{tile}" NumRows="{down}" '
            f'NumCols="{across}" Pos-X="0" Pos-Y="0"/></SlideInfo>'
            + f"<SlideStitchInfo>{info}</SlideStitchInfo>"
            '<AoiOrigin><AOI0 OriginX="0" OriginY="0"/></AoiOrigin></EncodeInfo>')


def _xmp(xml: str) -> list[tuple[int, int, int, bytes, bool]]:
    data = xml.encode() + b"\0"
    return [(_XMP, 1, len(data), data, True)]


def write_ventana_bif(path: Path, across: int = 8, down: int = 6, *, tile: int = 256,
                      quality: int = 85, mpp: float = 0.5, levels: int = 3,
                      seed: int = 0) -> Path:
    """Write a Ventana BIF of ``across`` x ``down`` tiles of ``tile`` pixels (one AOI, no
    overlaps) with ``levels`` levels (downsample 2 each), macro and thumbnail.
    Returns ``path``."""
    path = Path(path)
    width, height = across * tile, down * tile
    magnification = 20.0
    iscan = ('<?xml version="1.0" encoding="utf-8"?><Metadata><iScan '
             f'Magnification="{magnification:g}" ScanRes="{mpp:g}" UnitNumber="SYNTHETIC" '
             'BuildVersion="3.3.1.1" BuildDate="1/1/2024" Barcode1D="SYNTHETIC-VENTANA" '
             'ShowLabel="1" Mode="Brightfield" Z-layers="1" Z-spacing="1"/></Metadata>')
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path, bigtiff=True) as tif:
        software = "ScanOutputManager 1.1.0.15854"
        tif.write(picture(seed, width // 8, height // 8, 8.0), description="Label Image",
                  compression="jpeg", photometric="rgb", rowsperstrip=16, software=software,
                  extratags=_xmp(iscan), metadata=None)
        tif.write(picture(seed, width // 16, height // 16, 16.0), description="Thumbnail",
                  compression="jpeg", photometric="rgb", rowsperstrip=16, software=software,
                  metadata=None)
        for i in range(levels):
            w, h = -(-width // 2**i), -(-height // 2**i)
            extra = _xmp(_encode_info(across, down, tile)) if i == 0 else []
            _write_tiled(tif, seed, (w, h), (w, h), tile, 2.0**i, quality,
                         description=f"level={i} mag={magnification / 2**i:g} "
                         f"quality={quality}", software=software, extratags=extra)
    return path


# -- MIRAX --------------------------------------------------------------------------------

_MIRAX_IMAGE = 256
_INDEX_VERSION = b"01.02"


def _int32s(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}i", *values)


def _slidedat(slide_id: str, images: tuple[int, int], mpp: float, zoom_levels: int) -> str:
    lines = ["[GENERAL]", f"SLIDE_ID = {slide_id}", f"IMAGENUMBER_X = {images[0]}",
             f"IMAGENUMBER_Y = {images[1]}", "OBJECTIVE_MAGNIFICATION = 20",
             "SLIDE_NAME = synthetic", "", "[HIERARCHICAL]", "HIER_COUNT = 1",
             "NONHIER_COUNT = 1", "INDEXFILE = Index.dat", "HIER_0_NAME = Slide zoom level",
             f"HIER_0_COUNT = {zoom_levels}"]
    for i in range(zoom_levels):
        lines += [f"HIER_0_VAL_{i} = ZoomLevel_{i}",
                  f"HIER_0_VAL_{i}_SECTION = LAYER_0_LEVEL_{i}_SECTION"]
    lines += ["NONHIER_0_NAME = Scan data layer", "NONHIER_0_COUNT = 2",
              "NONHIER_0_VAL_0 = ScanDataLayer_SlideThumbnail",
              "NONHIER_0_VAL_0_SECTION = NONHIERLAYER_0_VAL_0_SECTION",
              "NONHIER_0_VAL_1 = ScanDataLayer_SlideBarcode",
              "NONHIER_0_VAL_1_SECTION = NONHIERLAYER_0_VAL_1_SECTION", "",
              "[DATAFILE]", "FILE_COUNT = 1", "FILE_0 = Data0000.dat", ""]
    for i in range(zoom_levels):
        lines += [f"[LAYER_0_LEVEL_{i}_SECTION]", f"IMAGE_CONCAT_FACTOR = {min(i, 1)}",
                  "OVERLAP_X = 0", "OVERLAP_Y = 0",
                  f"MICROMETER_PER_PIXEL_X = {mpp * 2**i:g}",
                  f"MICROMETER_PER_PIXEL_Y = {mpp * 2**i:g}", "IMAGE_FORMAT = JPEG",
                  "IMAGE_FILL_COLOR_BGR = 16777215", f"DIGITIZER_WIDTH = {_MIRAX_IMAGE}",
                  f"DIGITIZER_HEIGHT = {_MIRAX_IMAGE}", ""]
    lines += ["[NONHIERLAYER_0_VAL_0_SECTION]", "THUMBNAIL_IMAGE_TYPE = JPEG", "",
              "[NONHIERLAYER_0_VAL_1_SECTION]", "BARCODE_IMAGE_TYPE = JPEG", ""]
    return "\r\n".join(lines)


class _Index:
    """Index.dat under construction: appended blocks, int32 pointers patched in place."""

    def __init__(self, slide_id: str) -> None:
        self.data = bytearray(_INDEX_VERSION + slide_id.encode("ascii"))
        self.data += _int32s(0, 0)  # hierarchical root, non-hierarchical root

    def append(self, block: bytes) -> int:
        at = len(self.data)
        self.data += block
        return at

    def patch(self, at: int, value: int) -> None:
        self.data[at : at + 4] = _int32s(value)


def write_mirax(path: Path, images_across: int = 10, images_down: int = 8, *,
                quality: int = 85, mpp: float = 0.25, zoom_levels: int = 4,
                seed: int = 0) -> Path:
    """Write ``path`` (``.mrxs``) and its data folder: ``images_across`` x ``images_down``
    camera images of 256 pixels (no overlap), ``zoom_levels`` levels, macro and label.
    Returns ``path``."""
    path = Path(path)
    if path.suffix != ".mrxs":
        raise ValueError("a MIRAX slide file must end in .mrxs")
    folder = path.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    slide_id = str(uuid.uuid4())
    base = (images_across * _MIRAX_IMAGE, images_down * _MIRAX_IMAGE)
    data = bytearray(b"synthetic MIRAX data file\0")
    index = _Index(slide_id)
    root = len(_INDEX_VERSION) + len(slide_id)

    def store(jpeg: bytes) -> tuple[int, int]:
        at = len(data)
        data.extend(jpeg)
        return at, len(jpeg)

    hier_table = index.append(_int32s(*([0] * zoom_levels)))
    index.patch(root, hier_table)
    for level in range(zoom_levels):
        concat = 2**level
        level_w, level_h = base[0] // concat, base[1] // concat
        records = []
        for y in range(0, images_down, concat):
            for x in range(0, images_across, concat):
                rgb = render_tile(seed, level_w, level_h, y // concat, x // concat,
                                  _MIRAX_IMAGE, float(concat))
                offset, length = store(_jpeg(rgb, quality))
                records.append(_int32s(y * images_across + x, offset, length, 0))
        page = index.append(_int32s(len(records), 0) + b"".join(records))
        head = index.append(_int32s(0, page))
        index.patch(hier_table + 4 * level, head)

    associated = [picture(seed, base[0] // 16, base[1] // 16, 16.0),  # macro
                  label_pixels(400, 300, seed)]
    nonhier_table = index.append(_int32s(*([0] * len(associated))))
    index.patch(root + 4, nonhier_table)
    for record, rgb in enumerate(associated):
        offset, length = store(_jpeg(rgb, quality))
        page = index.append(_int32s(1, 0, 0, 0, offset, length, 0))
        index.patch(nonhier_table + 4 * record, index.append(_int32s(0, page)))

    (folder / "Slidedat.ini").write_text(_slidedat(slide_id, (images_across, images_down),
                                                   mpp, zoom_levels), encoding="ascii")
    (folder / "Index.dat").write_bytes(bytes(index.data))
    (folder / "Data0000.dat").write_bytes(bytes(data))
    # OpenSlide reads nothing from the .mrxs itself; it names the folder.
    path.write_text(f"[GENERAL]\r\nSLIDE_ID = {slide_id}\r\n", encoding="ascii")
    return path


WRITERS: dict[str, tuple[str, Callable[..., Path]]] = {
    "philips": (".tiff", write_philips_tiff),
    "leica": (".scn", write_leica_scn),
    "ventana": (".bif", write_ventana_bif),
    "mirax": (".mrxs", write_mirax),
}
"""Format name (OpenSlide's ``openslide.vendor``) → (file suffix, writer(path, seed=...))."""


def write_vendor_slide(vendor: str, folder: Path, seed: int = 0) -> Path:
    """Write the default-sized slide of ``vendor`` into ``folder``; return its path."""
    suffix, writer = WRITERS[vendor]
    return writer(Path(folder) / f"{vendor}{suffix}", seed=seed)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m samples.vendor_slides",
        description="Write small synthetic slides in vendor formats OpenSlide recognises.")
    parser.add_argument("vendor", choices=[*WRITERS, "all"], help="format to write")
    parser.add_argument("folder", type=Path, help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="texture seed")
    args = parser.parse_args(argv)
    vendors = list(WRITERS) if args.vendor == "all" else [args.vendor]
    for vendor in vendors:
        path = write_vendor_slide(vendor, args.folder, args.seed)
        print(f"{vendor}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
