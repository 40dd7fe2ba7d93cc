"""The TIFF flavours the tifffile reader knows (:data:`FORMATS`) and the facts each one
states: vendor, pixel spacing, objective power, vendor properties, associated images."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import tifffile

from wsi.errors import Unsupported
from wsi.readers.base import AssociatedKind

MAX_PROPERTY = 4096
"""Longest vendor property value kept (an ImageDescription can be large)."""


@dataclass(frozen=True)
class FormatFacts:
    """What a TIFF flavour states about a slide."""

    vendor: str
    mpp: tuple[float, float] | None = None
    objective_power: float | None = None
    properties: Mapping[str, str] = field(default_factory=dict)
    associated: Mapping[AssociatedKind, str] = field(default_factory=dict)
    """Associated image kind → tifffile series name."""


@dataclass(frozen=True)
class TiffFormat:
    """A TIFF flavour: how to recognise it and how to read its facts."""

    name: str
    detect: Callable[[tifffile.TiffFile], bool]
    facts: Callable[[tifffile.TiffFile], FormatFacts]


def _strings(values: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v)[:MAX_PROPERTY] for k, v in values.items()
            if isinstance(v, str | int | float)}


def _svs_facts(tf: tifffile.TiffFile) -> FormatFacts:
    meta = tifffile.tifffile.svs_description_metadata(tf.pages.first.description)
    mpp = float(meta["MPP"]) if "MPP" in meta else None
    return FormatFacts(
        vendor="aperio",
        mpp=(mpp, mpp) if mpp else None,
        objective_power=float(meta["AppMag"]) if "AppMag" in meta else None,
        properties=_strings(meta),
        associated={"label": "Label", "overview": "Macro", "thumbnail": "Thumbnail"},
    )


def _resolution_mpp(page: tifffile.TiffPage) -> tuple[float, float] | None:
    """Micrometres per pixel from XResolution/YResolution (unit centimetre or inch)."""
    unit = {2: 25400.0, 3: 10000.0}.get(int(page.tags.valueof("ResolutionUnit", 2)))
    x, y = page.tags.valueof("XResolution"), page.tags.valueof("YResolution")
    if unit is None or not x or not y or not x[0] or not y[0] or x[1] == 0 or y[1] == 0:
        return None
    mpp_x, mpp_y = unit * x[1] / x[0], unit * y[1] / y[0]
    # 72 dpi and similar defaults are not a microscope's spacing.
    return (mpp_x, mpp_y) if 0.01 < mpp_x < 100 and 0.01 < mpp_y < 100 else None


def _ndpi_facts(tf: tifffile.TiffFile) -> FormatFacts:
    page = tf.pages.first
    tags = dict(page.ndpi_tags or {})
    magnification = tags.get("Magnification")
    return FormatFacts(
        vendor="hamamatsu",
        mpp=_resolution_mpp(page),
        objective_power=float(magnification) if magnification else None,
        properties=_strings(tags),
        associated={"overview": "Macro"},
    )


def _philips_facts(tf: tifffile.TiffFile) -> FormatFacts:
    from xml.etree import ElementTree  # only for Philips and OME (~4 ms to import)

    mpp = None
    properties: dict[str, str] = {}
    try:
        root = ElementTree.fromstring(tf.pages.first.description)
        for attribute in root.iter("Attribute"):
            name, text = attribute.get("Name", ""), (attribute.text or "").strip()
            if text and len(text) < MAX_PROPERTY:
                properties.setdefault(name, text)
            if name == "DICOM_PIXEL_SPACING" and mpp is None:
                values = [float(v) * 1000 for v in re.findall(r"[\d.eE+-]+", text)]
                if len(values) >= 2:
                    mpp = (values[1], values[0])  # DICOM order is row (y), column (x)
    except ElementTree.ParseError:
        pass
    return FormatFacts("philips", mpp, _philips_objective(properties), properties,
                        {"label": "Label", "overview": "Macro"})


def _philips_objective(properties: Mapping[str, str]) -> float | None:
    """The objective power as OpenSlide reads it: the first ``levels=`` entry of
    DICOM_DERIVATION_DESCRIPTION, when it is a plausible magnification (else it is a code
    above 10000)."""
    found = re.search(r"(?:^|-)levels=(\d+)", properties.get("DICOM_DERIVATION_DESCRIPTION", ""))
    return float(found.group(1)) if found and 0 < int(found.group(1)) <= 200 else None


def _openslide_only(vendor: str) -> Callable[[tifffile.TiffFile], FormatFacts]:
    """Facts of a TIFF flavour whose geometry lives in vendor XML (Leica SCN: images placed
    in a collection; Ventana BIF: tiles stitched with overlaps): OpenSlide reads it."""

    def facts(tf: tifffile.TiffFile) -> FormatFacts:
        raise Unsupported(f"{vendor} slides are read through OpenSlide")

    return facts


def _ome_facts(tf: tifffile.TiffFile) -> FormatFacts:
    from xml.etree import ElementTree

    mpp = None
    try:
        root = ElementTree.fromstring(tf.ome_metadata or "")
        pixels = next(e for e in root.iter() if e.tag.endswith("Pixels"))
        x, y = pixels.get("PhysicalSizeX"), pixels.get("PhysicalSizeY")
        units = pixels.get("PhysicalSizeXUnit", "µm")
        if x and y and units in ("µm", "um"):
            mpp = (float(x), float(y))
    except (ElementTree.ParseError, StopIteration, ValueError):
        pass
    return FormatFacts("ome", mpp)


def _generic_facts(tf: tifffile.TiffFile) -> FormatFacts:
    page = tf.pages.first
    properties = {"ImageDescription": page.description[:MAX_PROPERTY]} if page.description else {}
    return FormatFacts("generic-tiff", _resolution_mpp(page), None, properties)


FORMATS: tuple[TiffFormat, ...] = (
    TiffFormat("svs", lambda tf: bool(tf.is_svs), _svs_facts),
    TiffFormat("ndpi", lambda tf: bool(tf.is_ndpi), _ndpi_facts),
    TiffFormat("philips", lambda tf: bool(tf.is_philips), _philips_facts),
    TiffFormat("ome", lambda tf: bool(tf.is_ome), _ome_facts),
    TiffFormat("scn", lambda tf: bool(tf.is_scn), _openslide_only("Leica SCN")),
    TiffFormat("bif", lambda tf: bool(tf.is_bif), _openslide_only("Ventana BIF")),
    TiffFormat("tiff", lambda tf: True, _generic_facts),
)
"""The TIFF flavours this reader knows, most specific first; the last one always matches."""
