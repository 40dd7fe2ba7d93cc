"""The JSON pyramid descriptor of a slide (``GET /wsi/series/{uid}``), for the viewer."""

from __future__ import annotations

import dataclasses
from typing import Any

from archive.slides import Slide
from wsi.pyramid import Level

WSI_PREFIX = "/wsi/series"
IIIF_PREFIX = "/iiif/3"


def _level(level: Level) -> dict[str, Any]:
    grid = level.grid
    syntaxes = sorted({f.transfer_syntax_uid for f in level.instances})
    return {
        "level": level.index,
        "width": level.size.width,
        "height": level.size.height,
        "tile_width": level.tile_size.width,
        "tile_height": level.tile_size.height,
        "tiles_across": grid.width,
        "tiles_down": grid.height,
        "downsample": level.downsample,
        "pixel_spacing_mm": list(level.pixel_spacing) if level.pixel_spacing else None,
        "focal_planes_um": list(level.focal_planes),
        "optical_paths": list(level.optical_paths),
        "instances": [f.sop_instance_uid for f in level.instances],
        "transfer_syntax_uids": syntaxes,
        "sparse": any(f.is_sparse for f in level.instances),
    }


def describe(slide: Slide, origin: str) -> dict[str, Any]:
    """Levels, tile URL template, associated images and context; URLs absolute on ``origin``."""
    pyramid = slide.pyramid
    base = f"{origin}{WSI_PREFIX}/{slide.series_uid}"
    info = slide.info
    descriptions = {p.identifier: p.description for p in info.optical_paths}
    associated = {
        kind: f"{base}/{kind}" if kind in slide.associated else None
        for kind in ("label", "overview")
    }
    associated["thumbnail"] = f"{base}/thumbnail"
    return {
        "study_uid": slide.study_uid,
        "series_uid": slide.series_uid,
        "version": slide.version,
        "width": pyramid.base.size.width,
        "height": pyramid.base.size.height,
        "tile_width": pyramid.base.tile_size.width,
        "tile_height": pyramid.base.tile_size.height,
        "pixel_spacing_mm": (
            list(pyramid.base.pixel_spacing) if pyramid.base.pixel_spacing else None
        ),
        "objective_power": info.objective_power,
        "levels": [_level(level) for level in pyramid.levels],
        "focal_planes_um": list(pyramid.focal_planes),
        "optical_paths": [
            {"id": p, "description": descriptions.get(p, "")} for p in pyramid.optical_paths
        ],
        "tiles": f"{base}/tiles/{{level}}/{{col}}/{{row}}?v={slide.version}",
        "iiif": f"{origin}{IIIF_PREFIX}/{slide.series_uid}/info.json",
        "associated": associated,
        "other_pyramids": [p.uid for p in slide.pyramids[1:]],
        "context": {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in dataclasses.asdict(info).items()
            if k not in ("optical_paths", "objective_power")
        },
        "dicomweb": {
            "series": f"{origin}/dicom-web/studies/{slide.study_uid}/series/{slide.series_uid}",
        },
    }
