"""Rendered images (PS3.18 §8.3.5, §10.4.1.1.3): decoded pixels → 8-bit JPEG or PNG."""

from __future__ import annotations

from dataclasses import dataclass

import imagecodecs
import numpy as np

from wsi.errors import Unsupported

RENDERED_TYPES = ("image/jpeg", "image/png")


@dataclass(frozen=True)
class Presentation:
    """How to map stored values to display values (Modality and VOI LUT, PS3.3 C.11)."""

    photometric: str = "MONOCHROME2"
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    window_center: float | None = None
    window_width: float | None = None


@dataclass(frozen=True)
class RenderOptions:
    """What the client asked for."""

    media_type: str = "image/jpeg"
    quality: int = 90
    viewport: tuple[int, int] | None = None
    window: tuple[float, float] | None = None


def _to_8bit(array: np.ndarray, presentation: Presentation, options: RenderOptions) -> np.ndarray:
    if array.ndim == 3 and array.dtype == np.uint8:
        return array
    values = array.astype(np.float32) * presentation.rescale_slope
    values += presentation.rescale_intercept
    if options.window is not None:
        center, width = options.window
    elif presentation.window_center is not None and presentation.window_width:
        center, width = presentation.window_center, presentation.window_width
    else:
        low, high = float(values.min()), float(values.max())
        center, width = (low + high) / 2, max(high - low, 1.0)
    # Linear VOI LUT function of PS3.3 C.11.2.1.2.1.
    low = center - 0.5 - (width - 1) / 2
    scaled = np.clip((values - low) / max(width - 1, 1.0), 0.0, 1.0) * 255.0
    out = scaled.astype(np.uint8)
    if presentation.photometric == "MONOCHROME1":
        out = 255 - out
    return out


def _fit(array: np.ndarray, viewport: tuple[int, int] | None) -> np.ndarray:
    if viewport is None:
        return array
    width, height = viewport
    rows, cols = array.shape[:2]
    step = max(1, int(np.ceil(max(cols / max(width, 1), rows / max(height, 1)))))
    return array[::step, ::step] if step > 1 else array


def render(array: np.ndarray, presentation: Presentation, options: RenderOptions) -> bytes:
    """Encode a decoded frame for display."""
    image = np.ascontiguousarray(_fit(_to_8bit(array, presentation, options), options.viewport))
    if options.media_type == "image/jpeg":
        return bytes(imagecodecs.jpeg8_encode(image, level=options.quality))
    if options.media_type == "image/png":
        return bytes(imagecodecs.png_encode(image))
    raise Unsupported(f"cannot render as {options.media_type}")
