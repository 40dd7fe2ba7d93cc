"""Fallback reader through OpenSlide (openslide-python + openslide-bin): every format
OpenSlide reads (MIRAX, Leica SCN, Ventana BIF, Sakura, Zeiss CZI, DICOM, ...).

OpenSlide decodes everything, so this reader offers no stored tiles (no passthrough).
Regions come back as premultiplied RGBA; transparent (no-data) areas are flattened on white.
Where OpenSlide states the bounds of the scanned data (``openslide.bounds-*``, e.g. Leica SCN,
whose level 0 spans the whole collection, often the whole glass), the levels are cropped to
them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from wsi.errors import InvalidInput, Unsupported
from wsi.readers.base import AssociatedImage, AssociatedKind, Level, SlideProperties, SlideReader

_ASSOCIATED_NAMES: dict[AssociatedKind, str] = {
    "label": "label", "overview": "macro", "thumbnail": "thumbnail"
}
_DEFAULT_TILE = 256
_LOSSY_FORMATS = {"aperio": "ISO_10918_1", "hamamatsu": "ISO_10918_1",
                  "mirax": "ISO_10918_1", "ventana": "ISO_10918_1"}


class OpenSlideReader(SlideReader):
    """Reads anything OpenSlide can open; regions only."""

    name = "openslide"

    @classmethod
    def accepts(cls, path: Path, head: bytes) -> bool:
        """OpenSlide's own format detection."""
        import openslide

        try:
            return openslide.OpenSlide.detect_format(str(path)) is not None
        except openslide.OpenSlideError:
            return False

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        import openslide

        self._openslide = openslide
        try:
            self._slide = openslide.OpenSlide(str(self.path))
        except openslide.OpenSlideUnsupportedFormatError:
            raise Unsupported(f"{self.path.name}: format not recognised by OpenSlide") from None
        except openslide.OpenSlideError as exc:
            # Name files relative to the slide's folder: the reason may reach an uploader.
            reason = str(exc).replace(f"{self.path.parent}{os.sep}", "")
            raise InvalidInput(f"{self.path.name}: OpenSlide cannot read it ({reason})") \
                from None
        props = self._slide.properties
        self._origin, (base_w, base_h) = _bounds(props, self._slide.dimensions)
        levels = []
        for i, ((width, height), downsample) in enumerate(
            zip(self._slide.level_dimensions, self._slide.level_downsamples, strict=True)
        ):
            tile_w = int(props.get(f"openslide.level[{i}].tile-width", _DEFAULT_TILE))
            tile_h = int(props.get(f"openslide.level[{i}].tile-height", _DEFAULT_TILE))
            if (base_w, base_h) != self._slide.dimensions:
                width = min(width, math.ceil(base_w / downsample))
                height = min(height, math.ceil(base_h / downsample))
            levels.append(Level(i, width, height, tile_w, tile_h, float(downsample)))
        self._levels = tuple(levels)

    @property
    def levels(self) -> Sequence[Level]:
        """OpenSlide's levels (including any it synthesises), cropped to the bounds."""
        return self._levels

    @property
    def properties(self) -> SlideProperties:
        """mpp, objective power, vendor, ICC profile and all OpenSlide properties."""
        props = dict(self._slide.properties)
        mpp = None
        if "openslide.mpp-x" in props and "openslide.mpp-y" in props:
            mpp = (float(props["openslide.mpp-x"]), float(props["openslide.mpp-y"]))
        power = props.get("openslide.objective-power")
        icc = None
        profile = self._slide.color_profile
        if profile is not None:
            icc = bytes(profile.tobytes())
        vendor = props.get("openslide.vendor", "unknown")
        return SlideProperties(
            vendor=vendor,
            mpp=mpp,
            objective_power=float(power) if power else None,
            icc_profile=icc,
            vendor_properties={k: v for k, v in props.items() if len(v) < 4096},
            lossy_method=_LOSSY_FORMATS.get(vendor),
        )

    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """OpenSlide's region (relative to the bounds), flattened on white."""
        downsample = self._levels[level].downsample
        origin_x, origin_y = self._origin
        try:
            image = self._slide.read_region(
                (origin_x + round(x * downsample), origin_y + round(y * downsample)), level,
                (width, height),
            )
        except self._openslide.OpenSlideError as exc:
            raise InvalidInput(f"{self.path.name}: OpenSlide read failed ({exc})") from None
        return _flatten(np.asarray(image))

    def associated(self, kind: AssociatedKind) -> AssociatedImage | None:
        """OpenSlide's associated image of that kind."""
        name = _ASSOCIATED_NAMES[kind]
        if name not in self._slide.associated_images:
            return None
        return AssociatedImage(kind, _flatten(np.asarray(self._slide.associated_images[name])))

    def close(self) -> None:
        """Close the OpenSlide handle."""
        self._slide.close()


def _bounds(props: Mapping[str, str], size: tuple[int, int]
            ) -> tuple[tuple[int, int], tuple[int, int]]:
    """((x, y), (width, height)) of the scanned data in level 0: OpenSlide's bounds, or the
    whole level when it states none (or nonsense)."""
    try:
        x, y, width, height = (int(props[f"openslide.bounds-{key}"])
                               for key in ("x", "y", "width", "height"))
    except (KeyError, ValueError):
        return (0, 0), size
    if x < 0 or y < 0 or width <= 0 or height <= 0 or x + width > size[0] \
            or y + height > size[1]:
        return (0, 0), size
    return (x, y), (width, height)


def _flatten(rgba: np.ndarray) -> np.ndarray:
    """Premultiplied RGBA → RGB on a white background."""
    if rgba.shape[-1] == 3:
        return rgba
    rgb = rgba[..., :3].astype(np.uint16)
    alpha = rgba[..., 3:4].astype(np.uint16)
    if bool((alpha == 255).all()):
        return np.ascontiguousarray(rgba[..., :3])
    return (rgb + (255 - alpha)).clip(0, 255).astype(np.uint8)
