"""The small slide reader interface: a few primitives plus default batch methods.

A reader gives the pyramid levels of one slide, the stored bytes of a tile where the format
stores tiles that a DICOM frame can carry unchanged (passthrough), decoded RGB regions for
everything else, and the slide-wide facts (pixel spacing, objective power, associated images,
ICC profile, vendor properties). Values past the reader boundary are frozen dataclasses.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import ClassVar, Literal

import numpy as np

from wsi.errors import Unsupported

AssociatedKind = Literal["label", "overview", "thumbnail"]
ASSOCIATED_KINDS: tuple[AssociatedKind, ...] = ("label", "overview", "thumbnail")


@dataclass(frozen=True)
class StoredTiles:
    """How the stored tiles of a level are encoded, when they can be passed through.

    ``read_tile`` returns complete JPEG interchange streams (tables spliced in) whose
    decoded colour space is given by ``photometric`` in DICOM terms (PS3.3 C.7.6.3.1.2):
    ``RGB`` for JPEG holding RGB samples (Aperio), ``YBR_FULL_422`` for YCbCr with chroma
    subsampling.
    """

    transfer_syntax_uid: str
    photometric: str
    lossy_method: str | None = "ISO_10918_1"


@dataclass(frozen=True)
class StoredRun:
    """Consecutive stored tiles in one buffer: frame ``i`` is ``prefix`` followed by
    ``data[starts[i]:ends[i]]`` (for TIFF JPEG tiles the spliced tables, then the tile after
    its SOI), so a writer can copy them without building each frame."""

    prefix: bytes
    data: bytes = field(repr=False)
    starts: np.ndarray = field(repr=False)
    ends: np.ndarray = field(repr=False)

    def __len__(self) -> int:
        return len(self.starts)

    @classmethod
    def of_frames(cls, frames: Sequence[bytes]) -> StoredRun:
        """A run holding complete frames back to back."""
        lengths = np.array([len(frame) for frame in frames], dtype=np.int64)
        ends = np.cumsum(lengths)
        return cls(b"", b"".join(frames), ends - lengths, ends)

    def frames(self) -> list[bytes]:
        """Each frame as one bytes object."""
        view = memoryview(self.data)
        return [self.prefix + view[start:end]
                for start, end in zip(self.starts.tolist(), self.ends.tolist(), strict=True)]


@dataclass(frozen=True)
class Level:
    """One resolution level of the slide pyramid as the source stores it."""

    index: int
    width: int
    height: int
    tile_width: int
    tile_height: int
    downsample: float
    stored: StoredTiles | None = None
    """Set when ``read_tile`` returns frame-ready bytes for this level."""

    @property
    def tiles_across(self) -> int:
        """Number of tile columns."""
        return math.ceil(self.width / self.tile_width)

    @property
    def tiles_down(self) -> int:
        """Number of tile rows."""
        return math.ceil(self.height / self.tile_height)


@dataclass(frozen=True)
class AssociatedImage:
    """A label, overview (macro) or thumbnail image; decoded pixels, RGB uint8."""

    kind: AssociatedKind
    pixels: np.ndarray = field(repr=False)

    @property
    def width(self) -> int:
        """Columns."""
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        """Rows."""
        return int(self.pixels.shape[0])


@dataclass(frozen=True)
class StoredImage:
    """A label, overview or thumbnail as the source stores it, when that is one frame-ready
    stream (described as :class:`StoredTiles` describes tiles) to pass through unchanged."""

    kind: AssociatedKind
    width: int
    height: int
    frame: bytes = field(repr=False)
    encoding: StoredTiles


@dataclass(frozen=True)
class SlideProperties:
    """Slide-wide facts; any of them may be unknown (``None``)."""

    vendor: str
    mpp: tuple[float, float] | None = None
    """Base level pixel spacing in micrometres per pixel, (x, y)."""
    objective_power: float | None = None
    icc_profile: bytes | None = field(default=None, repr=False)
    vendor_properties: Mapping[str, str] = field(default_factory=dict, repr=False)
    lossy_method: str | None = None
    """PS3.3 C.7.6.1.1.5 method of the source's lossy compression, if it was lossy."""
    chroma_subsampled: bool | None = None
    """Whether the source JPEG stores chroma at reduced resolution (``None``: unknown)."""


class SlideReader(ABC):
    """Reads one slide. Implementations are constructed as ``cls(path)`` and are thread-safe
    for ``read_tile``/``read_region`` (the converter reads from worker threads)."""

    name: ClassVar[str]

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    # -- primitives ----------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def accepts(cls, path: Path, head: bytes) -> bool:
        """Cheap check (file name and first bytes) whether this reader may read the file."""

    @property
    @abstractmethod
    def levels(self) -> Sequence[Level]:
        """The stored levels, base first."""

    @property
    @abstractmethod
    def properties(self) -> SlideProperties:
        """Slide-wide facts."""

    @abstractmethod
    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """Decoded RGB uint8 pixels ``(height, width, 3)``; outside the level is white."""

    @abstractmethod
    def associated(self, kind: AssociatedKind) -> AssociatedImage | None:
        """The associated image of that kind, or ``None`` if the slide has none."""

    def associated_stored(self, kind: AssociatedKind) -> StoredImage | None:
        """The associated image of that kind as stored, if it can be passed through."""
        return None

    def read_tile(self, level: int, col: int, row: int) -> bytes:
        """Stored bytes of one tile, ready to be a frame (see :class:`StoredTiles`)."""
        raise Unsupported(f"{self.name} reader has no stored tiles for level {level}")

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release the file."""

    # -- default batch methods -----------------------------------------------------------

    def read_tiles(self, level: int, positions: Sequence[tuple[int, int]]) -> Iterator[bytes]:
        """Stored bytes of several tiles, in the order of ``positions`` (col, row)."""
        for col, row in positions:
            yield self.read_tile(level, col, row)

    def read_tile_row(self, level: int, row: int) -> list[bytes]:
        """Stored bytes of every tile of one tile row."""
        across = self.levels[level].tiles_across
        return list(self.read_tiles(level, [(col, row) for col in range(across)]))

    def read_stored_run(self, level: int, start: int, count: int) -> StoredRun:
        """Stored bytes of ``count`` tiles in row-major order from tile ``start`` on."""
        across = self.levels[level].tiles_across
        positions = [(index % across, index // across) for index in range(start, start + count)]
        return StoredRun.of_frames(list(self.read_tiles(level, positions)))

    def associated_images(self) -> list[AssociatedImage]:
        """Every associated image the slide has."""
        found = (self.associated(kind) for kind in ASSOCIATED_KINDS)
        return [image for image in found if image is not None]

    def __enter__(self) -> SlideReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def paste(
    out: np.ndarray, tile: np.ndarray, tile_x: int, tile_y: int, x: int, y: int
) -> None:
    """Copy the part of ``tile`` (whose top left is at ``tile_x, tile_y`` in level
    coordinates) that overlaps ``out`` (whose top left is at ``x, y``) into ``out``."""
    height, width = out.shape[:2]
    x0, y0 = max(x, tile_x), max(y, tile_y)
    x1 = min(x + width, tile_x + tile.shape[1])
    y1 = min(y + height, tile_y + tile.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    out[y0 - y : y1 - y, x0 - x : x1 - x] = tile[y0 - tile_y : y1 - tile_y,
                                                   x0 - tile_x : x1 - tile_x, :3]
