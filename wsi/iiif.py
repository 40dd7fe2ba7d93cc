"""IIIF Image API 3.0 (https://iiif.io/api/image/3.0/): request parsing, info.json, planning.

Pure functions over a :class:`~wsi.pyramid.Pyramid`. The parameters are read as §4.1–4.5
define them (region, size with ``^`` upscaling and ``!`` confinement, rotation by multiples
of 90 with ``!`` mirroring, quality, format); syntax errors are :class:`InvalidInput` (400),
valid requests for features not offered are :class:`FeatureNotImplemented` (501, §7.1).

Tiles: ``scaleFactors`` are the powers of two from 1 up to the one at which the whole image
fits in a tile, as long as a stored level is no more than :data:`MAX_SOURCE_RATIO` times finer
than the scale asked for (so a tile request never decodes more than ~25 stored tiles).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from wsi.errors import InvalidInput, Unsupported
from wsi.pyramid import Level, Pyramid, Size

CONTEXT = "http://iiif.io/api/image/3/context.json"
PROTOCOL = "http://iiif.io/api/image"
PROFILE = "level2"
PROFILE_URI = "http://iiif.io/api/image/3/level2.json"
MAX_SIDE = 4096
"""Largest width or height of a returned image (``maxWidth``/``maxHeight`` in info.json)."""
MAX_SOURCE_RATIO = 4.0
FORMATS = {"jpg": "jpeg", "png": "png", "webp": "webp"}
QUALITIES = ("default", "color", "gray", "bitonal")
_TOLERANCE = 0.01


class FeatureNotImplemented(Unsupported):
    """A valid IIIF request for a feature this server does not offer (HTTP 501)."""


@dataclass(frozen=True)
class ImageRequest:
    """A parsed image request: region in level-0 pixels, output size before rotation."""

    x: int
    y: int
    w: int
    h: int
    width: int
    height: int
    rotation: int = 0
    mirror: bool = False
    quality: str = "default"
    format: str = "jpg"

    @property
    def canonical(self) -> str:
        """The canonical URI path form (§4.7), used as a cache key."""
        rotation = f"{'!' if self.mirror else ''}{self.rotation}"
        return (
            f"{self.x},{self.y},{self.w},{self.h}/{self.width},{self.height}/{rotation}/"
            f"{'color' if self.quality == 'default' else self.quality}.{self.format}"
        )

    @property
    def output_format(self) -> str:
        """The imaging format name (jpeg, png, webp)."""
        return FORMATS[self.format]


def _numbers(text: str, count: int, kind: type) -> list[Any]:
    parts = text.split(",")
    if len(parts) != count:
        raise InvalidInput(f"expected {count} comma-separated numbers, got {text!r}")
    try:
        return [kind(p) for p in parts]
    except ValueError as exc:
        raise InvalidInput(f"invalid number in {text!r}") from exc


def parse_region(text: str, image: Size) -> tuple[int, int, int, int]:
    """§4.1: full, square, x,y,w,h or pct:x,y,w,h → (x, y, w, h) clipped to the image."""
    W, H = image.width, image.height
    if text == "full":
        return 0, 0, W, H
    if text == "square":
        side = min(W, H)
        return (W - side) // 2, (H - side) // 2, side, side
    if text.startswith("pct:"):
        px, py, pw, ph = _numbers(text[4:], 4, float)
        if min(px, py) < 0 or pw <= 0 or ph <= 0:
            raise InvalidInput(f"invalid region {text!r}")
        x, y = round(px * W / 100), round(py * H / 100)
        w, h = round(pw * W / 100), round(ph * H / 100)
    else:
        x, y, w, h = _numbers(text, 4, int)
        if min(x, y) < 0 or w <= 0 or h <= 0:
            raise InvalidInput(f"invalid region {text!r}")
    if x >= W or y >= H:
        raise InvalidInput(f"region {text!r} lies outside the {W}x{H} image")
    w, h = min(w, W - x), min(h, H - y)
    if w <= 0 or h <= 0:
        raise InvalidInput(f"region {text!r} is empty")
    return x, y, w, h


def _bounded(w: float, h: float, max_side: int) -> tuple[int, int]:
    scale = min(1.0, max_side / max(w, h))
    return max(1, round(w * scale)), max(1, round(h * scale))


def parse_size(text: str, rw: int, rh: int, max_side: int = MAX_SIDE) -> tuple[int, int]:
    """§4.2: max, w,, ,h, pct:n, w,h, !w,h (each optionally ``^``) → output (width, height)."""
    upscale = text.startswith("^")
    body = text[1:] if upscale else text
    if body == "max":
        width, height = (
            _bounded(rw * max_side / max(rw, rh), rh * max_side / max(rw, rh), max_side)
            if upscale else _bounded(rw, rh, max_side)
        )
        return width, height
    if body.startswith("pct:"):
        try:
            pct = float(body[4:])
        except ValueError as exc:
            raise InvalidInput(f"invalid size {text!r}") from exc
        if pct <= 0 or (pct > 100 and not upscale):
            raise InvalidInput(f"invalid size {text!r}")
        width, height = max(1, round(rw * pct / 100)), max(1, round(rh * pct / 100))
    elif body.startswith("!"):
        bw, bh = _numbers(body[1:], 2, int)
        if bw <= 0 or bh <= 0:
            raise InvalidInput(f"invalid size {text!r}")
        scale = min(bw / rw, bh / rh)
        if not upscale:
            scale = min(scale, 1.0)
        width, height = max(1, math.floor(rw * scale)), max(1, math.floor(rh * scale))
    else:
        ws, _, hs = body.partition(",")
        if not _ or (not ws and not hs):
            raise InvalidInput(f"invalid size {text!r}")
        try:
            w = int(ws) if ws else None
            h = int(hs) if hs else None
        except ValueError as exc:
            raise InvalidInput(f"invalid size {text!r}") from exc
        if (w is not None and w <= 0) or (h is not None and h <= 0):
            raise InvalidInput(f"invalid size {text!r}")
        if w is None:
            assert h is not None
            w = max(1, round(rw * h / rh))
        elif h is None:
            h = max(1, round(rh * w / rw))
        width, height = w, h
    if not upscale and (width > rw or height > rh):
        raise InvalidInput(f"size {text!r} is larger than the region; use ^ to upscale")
    if width > max_side or height > max_side:
        raise InvalidInput(f"size {width}x{height} exceeds the maximum of {max_side} pixels")
    return width, height


def parse_rotation(text: str) -> tuple[int, bool]:
    """§4.3: ``[!]degrees``; multiples of 90 only."""
    mirror = text.startswith("!")
    try:
        degrees = float(text[1:] if mirror else text)
    except ValueError as exc:
        raise InvalidInput(f"invalid rotation {text!r}") from exc
    if not 0 <= degrees <= 360:
        raise InvalidInput(f"rotation {text!r} is outside 0..360")
    if degrees % 90:
        raise FeatureNotImplemented("only rotations by multiples of 90 degrees are offered")
    return int(degrees) % 360, mirror


def parse_quality_format(text: str) -> tuple[str, str]:
    """§4.4–4.5: ``quality.format``."""
    quality, dot, fmt = text.rpartition(".")
    if not dot or not quality:
        raise InvalidInput(f"invalid quality and format {text!r}")
    if quality not in QUALITIES:
        raise InvalidInput(f"unknown quality {quality!r}")
    if fmt not in FORMATS:
        raise FeatureNotImplemented(f"format {fmt!r} is not offered; use jpg, png or webp")
    return quality, fmt


def parse_request(
    region: str, size: str, rotation: str, quality_format: str, image: Size,
    max_side: int = MAX_SIDE,
) -> ImageRequest:
    """All four path parameters of an image request."""
    x, y, w, h = parse_region(region, image)
    width, height = parse_size(size, w, h, max_side)
    degrees, mirror = parse_rotation(rotation)
    quality, fmt = parse_quality_format(quality_format)
    return ImageRequest(x, y, w, h, width, height, degrees, mirror, quality, fmt)


def _downsamples(level: Level, base: Size) -> tuple[float, float]:
    return base.width / level.size.width, base.height / level.size.height


def source_level(pyramid: Pyramid, scale: float) -> Level:
    """The coarsest level with at least the resolution ``scale`` (level-0 px per output px)."""
    best = pyramid.base
    for level in pyramid.levels:
        dx, dy = _downsamples(level, pyramid.base.size)
        if max(dx, dy) <= scale * (1 + _TOLERANCE):
            best = level
    return best


def scale_factors(pyramid: Pyramid) -> list[int]:
    """Power-of-two scale factors served at bounded cost (see the module docstring)."""
    base, tile = pyramid.base.size, pyramid.base.tile_size
    factors = []
    scale = 1
    while True:
        level = source_level(pyramid, scale)
        if scale / level.downsample > MAX_SOURCE_RATIO:
            break
        factors.append(scale)
        if math.ceil(base.width / scale) <= tile.width and math.ceil(
            base.height / scale
        ) <= tile.height:
            break
        scale *= 2
    return factors


def info(pyramid: Pyramid, service_id: str, max_side: int = MAX_SIDE) -> dict[str, Any]:
    """The image information document (§5) of a pyramid."""
    base = pyramid.base
    sizes = [
        {"width": level.size.width, "height": level.size.height}
        for level in reversed(pyramid.levels)
        if max(level.size.width, level.size.height) <= max_side
    ]
    return {
        "@context": CONTEXT,
        "id": service_id,
        "type": "ImageService3",
        "protocol": PROTOCOL,
        "profile": PROFILE,
        "width": base.size.width,
        "height": base.size.height,
        "maxWidth": max_side,
        "maxHeight": max_side,
        "sizes": sizes,
        "tiles": [
            {
                "width": base.tile_size.width,
                "height": base.tile_size.height,
                "scaleFactors": scale_factors(pyramid),
            }
        ],
        "extraQualities": ["color", "gray", "bitonal"],
        "extraFormats": ["webp"],
        "extraFeatures": ["mirroring", "sizeUpscaling", "rotationBy90s", "profileLinkHeader",
                          "baseUriRedirect", "cors", "jsonldMediaType"],
    }


@dataclass(frozen=True)
class Plan:
    """Where to read a request from: a stored tile as it is, or a region of one level."""

    level: Level
    tile: tuple[int, int] | None
    """(col, row) when one stored tile is exactly the answer."""
    x: int = 0
    y: int = 0
    w: int = 0
    h: int = 0
    """The region to compose, in the level's pixels."""


def plan(pyramid: Pyramid, request: ImageRequest) -> Plan:
    """Choose the level (and, for level-aligned tile requests, the stored tile) to read."""
    base = pyramid.base.size
    scale = min(request.w / request.width, request.h / request.height)
    level = source_level(pyramid, scale)
    dx, dy = _downsamples(level, base)
    tile = _aligned_tile(level, dx, dy, request)
    if tile is not None:
        return Plan(level, tile)
    x0, y0 = math.floor(request.x / dx), math.floor(request.y / dy)
    x1 = min(level.size.width, math.ceil((request.x + request.w) / dx))
    y1 = min(level.size.height, math.ceil((request.y + request.h) / dy))
    return Plan(level, None, x0, y0, max(1, x1 - x0), max(1, y1 - y0))


def _aligned_tile(level: Level, dx: float, dy: float, request: ImageRequest
                  ) -> tuple[int, int] | None:
    """The stored tile that is the answer, when the request is one whole interior tile."""
    tw, th = level.tile_size.width, level.tile_size.height
    if (request.width, request.height) != (tw, th):
        return None
    sx, sy = request.w / tw, request.h / th
    if abs(sx - dx) > dx * _TOLERANCE or abs(sy - dy) > dy * _TOLERANCE:
        return None
    col, row = round(request.x / request.w), round(request.y / request.h)
    if col * request.w != request.x or row * request.h != request.y:
        return None
    if (col + 1) * tw > level.size.width or (row + 1) * th > level.size.height:
        return None
    # The stored grid drifts from the requested one when the downsample is not exact.
    if abs((col + 1) * tw * (dx / sx - 1)) > 0.5 or abs((row + 1) * th * (dy / sy - 1)) > 0.5:
        return None
    return col, row
