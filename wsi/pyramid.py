"""The pyramid model of a whole-slide series: levels, tile grids, (level, col, row) → frame.

Pure geometry over typed facts (:class:`InstanceFacts`, one per stored instance); no I/O.

Rules (PS3.3 A.32.8 VL Whole Slide Microscopy Image IOD):

- Only VOLUME images (ImageType value 3, C.8.12.4.1.1) make levels; LABEL, OVERVIEW and
  THUMBNAIL are associated images.
- Pyramids are told apart by PyramidUID (C.8.12.4.1.8); instances without one form one
  pyramid. Inside a pyramid, a level is the set of instances with the same total pixel
  matrix size, pixel spacing and tile size; level 0 has the highest resolution.
- TILED_FULL (C.7.6.17.3): frames run along a row, then down the rows, then through the
  focal planes, then the optical paths; a concatenation (C.7.6.16.2.2.4, ConcatenationUID
  and ConcatenationFrameOffsetNumber) splits that sequence over several instances.
- TILED_SPARSE: each frame's position comes from the Plane Position (Slide) functional group
  (C.8.12.6.1, 1-based Column/RowPositionInTotalImagePixelMatrix, ZOffset in µm) and its
  optical path from the Optical Path Identification group (C.8.12.13); tiles that no frame
  covers are absent (served as background).
- Without DimensionOrganizationType, an instance whose frame count equals the full grid is
  read as TILED_FULL (as most readers do); otherwise it cannot be located and is left out.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from wsi.codecs import PixelDescription
from wsi.errors import NotFound

TILED_FULL = "TILED_FULL"
TILED_SPARSE = "TILED_SPARSE"
VOLUME = "VOLUME"
ASSOCIATED_FLAVORS = ("LABEL", "OVERVIEW", "THUMBNAIL")


@dataclass(frozen=True, order=True)
class Size:
    """Width and height in pixels."""

    width: int
    height: int


@dataclass(frozen=True)
class FramePosition:
    """Where one frame of a TILED_SPARSE instance lies (0-based tile column and row)."""

    column: int
    row: int
    z: float = 0.0
    """Focal plane, ZOffsetInSlideCoordinateSystem in µm."""
    path: str = ""
    """Optical path identifier; empty means the instance's first path."""


@dataclass(frozen=True)
class FrameRef:
    """A stored frame: the instance and the 1-based frame number."""

    sop_instance_uid: str
    frame_number: int


@dataclass(frozen=True)
class InstanceFacts:
    """What the pyramid model needs to know about one stored image instance."""

    sop_instance_uid: str
    image_type: tuple[str, ...]
    total_size: Size
    tile_size: Size
    number_of_frames: int
    transfer_syntax_uid: str
    pixel_spacing: tuple[float, float] | None = None
    """(row spacing, column spacing) in mm, as PixelSpacing orders them."""
    photometric_interpretation: str = "RGB"
    pixels: PixelDescription | None = None
    bits_stored: int = 8
    optical_paths: tuple[str, ...] = ("",)
    """Identifiers in Optical Path Sequence order (TILED_FULL's path order)."""
    focal_planes: tuple[float, ...] = (0.0,)
    """Z of each focal plane in µm, in TILED_FULL frame order."""
    dimension_organization: str = TILED_FULL
    pyramid_uid: str | None = None
    frame_positions: tuple[FramePosition, ...] | None = field(default=None, repr=False)
    """TILED_SPARSE only: one position per frame, in frame order."""
    concatenation_uid: str | None = None
    concatenation_frame_offset: int = 0

    @property
    def flavor(self) -> str:
        """ImageType value 3 (VOLUME, LABEL, OVERVIEW, THUMBNAIL), or '' when absent."""
        return self.image_type[2].upper() if len(self.image_type) >= 3 else ""

    @property
    def grid(self) -> Size:
        """Tiles across and down."""
        return Size(
            math.ceil(self.total_size.width / self.tile_size.width),
            math.ceil(self.total_size.height / self.tile_size.height),
        )

    @property
    def is_sparse(self) -> bool:
        """Frames located by per-frame positions."""
        return self.dimension_organization == TILED_SPARSE and self.frame_positions is not None


@dataclass(frozen=True)
class _FullSource:
    """A TILED_FULL frame sequence, possibly split over a concatenation's instances."""

    planes: tuple[float, ...]
    paths: tuple[str, ...]
    grid: Size
    offsets: tuple[int, ...]
    """ConcatenationFrameOffsetNumber of each part, ascending."""
    parts: tuple[InstanceFacts, ...]

    def locate(self, col: int, row: int, z: float, path: str) -> FrameRef | None:
        if z not in self.planes or path not in self.paths:
            return None
        plane, path_index = self.planes.index(z), self.paths.index(path)
        across, down = self.grid.width, self.grid.height
        number = ((path_index * len(self.planes) + plane) * down + row) * across + col + 1
        part = bisect.bisect_left(self.offsets, number) - 1
        if part < 0:
            return None
        local = number - self.offsets[part]
        if local > self.parts[part].number_of_frames:
            return None
        return FrameRef(self.parts[part].sop_instance_uid, local)


@dataclass(frozen=True)
class Level:
    """One resolution level: a tile grid over one or several instances."""

    index: int
    size: Size
    tile_size: Size
    downsample: float
    """Level 0 width over this level's width."""
    pixel_spacing: tuple[float, float] | None
    focal_planes: tuple[float, ...]
    optical_paths: tuple[str, ...]
    instances: tuple[InstanceFacts, ...]
    _full: tuple[_FullSource, ...] = field(default=(), repr=False, compare=False)
    _sparse: Mapping[tuple[float, str, int, int], FrameRef] = field(
        default_factory=dict, repr=False, compare=False
    )

    @property
    def grid(self) -> Size:
        """Tiles across and down."""
        return Size(
            math.ceil(self.size.width / self.tile_size.width),
            math.ceil(self.size.height / self.tile_size.height),
        )

    def contains(self, col: int, row: int) -> bool:
        """True if (col, row) is a tile of this level's grid."""
        grid = self.grid
        return 0 <= col < grid.width and 0 <= row < grid.height

    def nearest_plane(self, z: float) -> float:
        """The focal plane of this level closest to ``z``."""
        return min(self.focal_planes, key=lambda plane: abs(plane - z))

    def locate(self, col: int, row: int, z: float, path: str) -> FrameRef | None:
        """The frame holding tile (col, row) at focal plane ``z`` and optical path ``path``.

        None when no stored frame covers the tile (a sparse gap, a missing concatenation
        part or a path this level lacks). The caller checks the grid with :meth:`contains`.
        """
        z = self.nearest_plane(z)
        ref = self._sparse.get((z, path, col, row))
        if ref is not None:
            return ref
        for source in self._full:
            ref = source.locate(col, row, z, path)
            if ref is not None:
                return ref
        return None


@dataclass(frozen=True)
class Pyramid:
    """The levels of one pyramid, level 0 the highest resolution."""

    uid: str | None
    levels: tuple[Level, ...]

    @property
    def base(self) -> Level:
        """Level 0."""
        return self.levels[0]

    @property
    def focal_planes(self) -> tuple[float, ...]:
        """The focal planes (µm) of level 0, ascending."""
        return self.base.focal_planes

    @property
    def optical_paths(self) -> tuple[str, ...]:
        """The optical path identifiers of level 0, first the default."""
        return self.base.optical_paths

    def level(self, index: int) -> Level:
        """Level by index; NotFound outside the pyramid."""
        if not 0 <= index < len(self.levels):
            raise NotFound(f"level {index} is outside 0..{len(self.levels) - 1}")
        return self.levels[index]

    def plane(self, z: int | None) -> float:
        """The focal plane (µm) selected by index ``z`` (None: the first)."""
        index = 0 if z is None else z
        if not 0 <= index < len(self.focal_planes):
            raise NotFound(f"focal plane {index} is outside 0..{len(self.focal_planes) - 1}")
        return self.focal_planes[index]

    def path(self, path: str | None) -> str:
        """The optical path selected by identifier (None: the first)."""
        if path is None:
            return self.optical_paths[0]
        if path not in self.optical_paths:
            raise NotFound(f"optical path {path!r} is not one of {list(self.optical_paths)}")
        return path

    def locate(
        self, level: int, col: int, row: int, z: int | None = None, path: str | None = None
    ) -> FrameRef | None:
        """(level, col, row[, z, path]) → the stored frame, or None for a missing tile.

        NotFound when the level, tile, focal plane index or optical path does not exist.
        """
        found = self.level(level)
        if not found.contains(col, row):
            grid = found.grid
            raise NotFound(
                f"tile ({col}, {row}) is outside the {grid.width}x{grid.height} grid "
                f"of level {level}"
            )
        return found.locate(col, row, self.plane(z), self.path(path))


def _unique(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(values))


def _locatable(facts: InstanceFacts) -> bool:
    if facts.is_sparse or facts.dimension_organization == TILED_FULL:
        return True
    if facts.dimension_organization or facts.concatenation_uid:
        return False
    grid = facts.grid
    full = grid.width * grid.height * len(facts.focal_planes) * len(facts.optical_paths)
    return facts.number_of_frames == full


def _full_sources(instances: list[InstanceFacts]) -> tuple[_FullSource, ...]:
    groups: dict[str, list[InstanceFacts]] = {}
    for facts in instances:
        if not facts.is_sparse:
            groups.setdefault(facts.concatenation_uid or facts.sop_instance_uid, []).append(facts)
    sources = []
    for parts in groups.values():
        parts.sort(key=lambda f: f.concatenation_frame_offset)
        first = parts[0]
        sources.append(
            _FullSource(
                planes=first.focal_planes,
                paths=first.optical_paths,
                grid=first.grid,
                offsets=tuple(p.concatenation_frame_offset for p in parts),
                parts=tuple(parts),
            )
        )
    return tuple(sources)


def _sparse_index(instances: list[InstanceFacts]) -> dict[tuple[float, str, int, int], FrameRef]:
    index: dict[tuple[float, str, int, int], FrameRef] = {}
    for facts in instances:
        if not facts.is_sparse:
            continue
        assert facts.frame_positions is not None
        for number, pos in enumerate(facts.frame_positions, 1):
            key = (pos.z, pos.path or facts.optical_paths[0], pos.column, pos.row)
            index.setdefault(key, FrameRef(facts.sop_instance_uid, number))
    return index


def _planes_of(facts: InstanceFacts) -> Iterable[float]:
    if facts.is_sparse:
        assert facts.frame_positions is not None
        return {p.z for p in facts.frame_positions}
    return facts.focal_planes


def _paths_of(facts: InstanceFacts) -> Iterable[str]:
    if facts.is_sparse:
        assert facts.frame_positions is not None
        return [*facts.optical_paths, *(p.path for p in facts.frame_positions if p.path)]
    return facts.optical_paths


def _level(index: int, instances: list[InstanceFacts], base_width: int) -> Level:
    first = instances[0]
    return Level(
        index=index,
        size=first.total_size,
        tile_size=first.tile_size,
        downsample=base_width / first.total_size.width,
        pixel_spacing=first.pixel_spacing,
        focal_planes=tuple(sorted({z for f in instances for z in _planes_of(f)})),
        optical_paths=_unique(p for f in instances for p in _paths_of(f)),
        instances=tuple(instances),
        _full=_full_sources(instances),
        _sparse=_sparse_index(instances),
    )


def _spacing_key(spacing: tuple[float, float] | None) -> tuple[float, float] | None:
    return None if spacing is None else (round(spacing[0], 9), round(spacing[1], 9))


def build_pyramids(facts: Iterable[InstanceFacts]) -> list[Pyramid]:
    """The pyramids of a series, the one with the largest level 0 first."""
    by_pyramid: dict[str | None, dict[tuple, list[InstanceFacts]]] = {}
    for f in facts:
        if f.flavor not in (VOLUME, "") or not _locatable(f):
            continue
        key = (f.total_size, _spacing_key(f.pixel_spacing), f.tile_size)
        by_pyramid.setdefault(f.pyramid_uid, {}).setdefault(key, []).append(f)
    pyramids = []
    for uid, groups in by_pyramid.items():
        ordered = sorted(
            groups.values(),
            key=lambda g: (-g[0].total_size.width * g[0].total_size.height,
                           -sum(f.number_of_frames for f in g)),
        )
        # Two groups of one size (different tile sizes): keep the one with more frames.
        kept: list[list[InstanceFacts]] = []
        for group in ordered:
            if not kept or kept[-1][0].total_size != group[0].total_size:
                kept.append(group)
        base_width = kept[0][0].total_size.width
        pyramids.append(
            Pyramid(uid, tuple(_level(i, g, base_width) for i, g in enumerate(kept)))
        )
    pyramids.sort(key=lambda p: -p.base.size.width * p.base.size.height)
    return pyramids


def associated_images(facts: Iterable[InstanceFacts]) -> dict[str, InstanceFacts]:
    """The label, overview and thumbnail instances by lower-case flavor (largest of each)."""
    found: dict[str, InstanceFacts] = {}
    for f in facts:
        if f.flavor in ASSOCIATED_FLAVORS:
            kind = f.flavor.lower()
            current = found.get(kind)
            area = f.total_size.width * f.total_size.height
            if current is None or area > current.total_size.width * current.total_size.height:
                found[kind] = f
    return found
