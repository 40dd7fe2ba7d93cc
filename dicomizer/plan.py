"""Which levels are written, how big, and which ones pass the source tiles through.

The base level passes the stored tiles through when the source stores frame-ready JPEG
tiles, the requested codec is JPEG, re-encoding is not forced and the output tile size equals
the stored one (by default the source tile size is then chosen). Every lower level is built
from the level above by a box filter of ``downsample_factor`` and encoded, down to the first
level that fits in one tile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from dicomizer.encoders import Encoder
from dicomizer.options import DEFAULT_TILE_SIZE, ConversionOptions
from wsi.readers.base import Level, StoredTiles


@dataclass(frozen=True)
class LevelPlan:
    """One output pyramid level."""

    index: int
    width: int
    height: int
    tile: int
    passthrough: StoredTiles | None
    """The stored-tile description when the base level's tiles are copied unchanged."""

    @property
    def tiles_across(self) -> int:
        """Tile columns."""
        return math.ceil(self.width / self.tile)

    @property
    def tiles_down(self) -> int:
        """Tile rows."""
        return math.ceil(self.height / self.tile)

    @property
    def frames(self) -> int:
        """Frames (tiles) in the level."""
        return self.tiles_across * self.tiles_down


@dataclass(frozen=True)
class PyramidPlan:
    """The output levels, base first, and the shared tile size and downsample factor."""

    levels: tuple[LevelPlan, ...]
    tile: int
    factor: int

    @property
    def passthrough(self) -> bool:
        """True if the base level copies the source tiles."""
        return self.levels[0].passthrough is not None


def passthrough_possible(base: Level, options: ConversionOptions, encoder: Encoder) -> bool:
    """True if the base level's stored tiles can be copied into frames."""
    return (
        base.stored is not None
        and not options.force_reencode
        and encoder.name == "jpeg"
        and base.tile_width == base.tile_height
        and base.stored.transfer_syntax_uid == encoder.transfer_syntax_uid
        and options.tile_size in (None, base.tile_width)
    )


def plan_pyramid(base: Level, options: ConversionOptions, encoder: Encoder) -> PyramidPlan:
    """Plan the levels for a source whose base level is ``base``."""
    passthrough = passthrough_possible(base, options, encoder)
    tile = base.tile_width if passthrough else options.tile_size or DEFAULT_TILE_SIZE
    factor = options.downsample_factor
    levels = [LevelPlan(0, base.width, base.height, tile, base.stored if passthrough else None)]
    while levels[-1].width > tile or levels[-1].height > tile:
        above = levels[-1]
        levels.append(LevelPlan(len(levels), math.ceil(above.width / factor),
                                math.ceil(above.height / factor), tile, None))
    return PyramidPlan(tuple(levels), tile, factor)
