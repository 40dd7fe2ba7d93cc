"""The one frozen options object of a conversion (built by the CLI, passed explicitly)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Literal

from dicomizer.codec_names import CodecName
from dicomizer.metadata import SlideMetadata

DEFAULT_TILE_SIZE = 256

PyramidLevels = Literal["full", "source"]
"""Which pyramid levels a conversion writes: ``full`` every level down to one tile,
``source`` only the levels the source stores."""
PYRAMID_LEVELS: tuple[PyramidLevels, ...] = ("full", "source")


@dataclass(frozen=True)
class ConversionOptions:
    """How to convert one slide."""

    reader: str | None = None
    """Reader name (``tiff``, ``openslide``) or ``None`` to pick the best one."""
    tile_size: int | None = None
    """Output tile size; ``None``: the source tile size where the base level stores square
    frame-ready JPEG tiles (whether passed through or re-encoded), else
    :data:`DEFAULT_TILE_SIZE`."""
    codec: CodecName = "jpeg"
    quality: int = 90
    subsampling: str | None = None
    """JPEG chroma subsampling of re-encoded tiles: ``420``, ``422`` or ``444``; ``None``
    keeps the source's chroma resolution (4:4:4 for RGB or 4:4:4 JPEG sources, which a
    4:2:0 re-encode would blur: e.g. NDPI fluorescence loses 20 dB), else 4:2:0."""
    force_reencode: bool = False
    levels: PyramidLevels = "full"
    """``full``: every level from the base down by ``downsample_factor`` to the first that
    fits in one tile, lower source levels passed through where they match one. ``source``:
    exactly the levels the source stores (what wsidicomizer and OrthancWSIDicomizer write by
    default), each passed through where it can be, else re-encoded from itself."""
    downsample_factor: int = 2
    workers: int = field(default_factory=lambda: max(1, os.cpu_count() or 1))
    include_associated: bool = True
    mpp: float | None = None
    """Base pixel spacing (µm) to use when the source does not state it."""
    metadata: SlideMetadata = field(default_factory=SlideMetadata)

    def __post_init__(self) -> None:
        if self.tile_size is not None and not 16 <= self.tile_size <= 8192:
            raise ValueError("tile size must be 16-8192")
        if not 2 <= self.downsample_factor <= 16:
            raise ValueError("downsample factor must be 2-16")
        if not 1 <= self.quality <= 100:
            raise ValueError("quality must be 1-100")
        if self.levels not in PYRAMID_LEVELS:
            raise ValueError(f"levels must be one of {', '.join(PYRAMID_LEVELS)}")
        if self.subsampling not in (None, "420", "422", "444"):
            raise ValueError("subsampling must be 420, 422 or 444")
