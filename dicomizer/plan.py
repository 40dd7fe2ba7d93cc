"""Which levels are written, how big, and which ones pass the source tiles through.

The output pyramid runs from the base level down by ``downsample_factor`` to the first level
that fits in one tile. A level passes the stored tiles of a source level through when the
source stores frame-ready JPEG tiles of the output tile size, the requested codec is JPEG and
re-encoding is not forced (by default the output keeps the tile size of a source that stores
square JPEG tiles, passed through or not; else it is 256): the base level,
and every lower source level whose size is the base size divided by that level's downsample
(rounded either way), as the 4x and 16x levels of an Aperio SVS. Every other level is
generated from the level above it and encoded.

With ``levels="source"`` the output has exactly the levels the source stores, each passed
through where it can be and otherwise re-encoded from itself (one segment per level): what
wsidicomizer and OrthancWSIDicomizer write by default.

The levels form *segments*: a level read from a source level, then the levels generated from
it, each from the one above; the builder makes one pass over the source level per segment.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
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
    """The stored-tile description when the source level's tiles are copied unchanged."""
    source: int | None = None
    """The source (reader) level this level is read from; ``None``: generated from the
    level above."""

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

    def segments(self) -> list[tuple[LevelPlan, ...]]:
        """The levels split before every level read from a source level."""
        starts = [level.index for level in self.levels if level.source is not None]
        ends = [*starts[1:], len(self.levels)]
        return [self.levels[start:end] for start, end in zip(starts, ends, strict=True)]


def passthrough_possible(level: Level, options: ConversionOptions, encoder: Encoder,
                         tile: int | None = None) -> bool:
    """True if the level's stored tiles can be copied into frames (of ``tile`` if given)."""
    return (
        level.stored is not None
        and not options.force_reencode
        and encoder.name == "jpeg"
        and level.tile_width == level.tile_height
        and level.stored.transfer_syntax_uid == encoder.transfer_syntax_uid
        and options.tile_size in (None, level.tile_width)
        and tile in (None, level.tile_width)
    )


def _square_stored(level: Level) -> bool:
    """True if the level stores square frame-ready tiles: their grid is then kept (also when
    they are re-encoded, so every decoded tile row fills exactly one band)."""
    return level.stored is not None and level.tile_width == level.tile_height


def _matches(level: Level, base: Level, downsample: int) -> bool:
    """True if ``level`` is ``base`` reduced by ``downsample``, its size rounded either way."""
    return (level.width in (base.width // downsample, -(-base.width // downsample))
            and level.height in (base.height // downsample, -(-base.height // downsample)))


def plan_pyramid(source: Sequence[Level] | Level, options: ConversionOptions,
                 encoder: Encoder) -> PyramidPlan:
    """Plan the output levels for a source with these levels (base first)."""
    stored = [source] if isinstance(source, Level) else list(source)
    base = stored[0]
    passthrough = passthrough_possible(base, options, encoder)
    tile = options.tile_size or (base.tile_width if _square_stored(base) else DEFAULT_TILE_SIZE)
    factor = options.downsample_factor
    if options.levels == "source":
        return PyramidPlan(tuple(
            LevelPlan(index, level.width, level.height, tile,
                      level.stored if passthrough_possible(level, options, encoder, tile)
                      else None, level.index)
            for index, level in enumerate(stored)), tile, factor)
    levels = [LevelPlan(0, base.width, base.height, tile, base.stored if passthrough else None,
                        base.index)]
    while levels[-1].width > tile or levels[-1].height > tile:
        above, index = levels[-1], len(levels)
        match = next((level for level in stored[1:]
                      if _matches(level, base, factor**index)
                      and passthrough_possible(level, options, encoder, tile)), None)
        if match is not None:
            levels.append(LevelPlan(index, match.width, match.height, tile, match.stored,
                                    match.index))
        else:
            levels.append(LevelPlan(index, math.ceil(above.width / factor),
                                    math.ceil(above.height / factor), tile, None))
    return PyramidPlan(tuple(levels), tile, factor)
