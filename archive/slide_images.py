"""Browser images of stored slides: tiles, IIIF regions, label/overview/thumbnail.

A tile a browser can show (8-bit JPEG, see :mod:`wsi.browser_jpeg`) is the stored frame: one
positioned read, no decode. Anything else is decoded, composed and encoded, and the encoded
result is kept in a byte-bounded LRU so that a viewer's repeated requests cost one transcode.

Memory: the LRU holds at most ``cache_bytes`` of encoded images; a request decodes at most
:data:`MAX_SOURCE_PIXELS` source pixels plus one tile (IIIF regions, associated images and
thumbnails larger than that are refused or read from a coarser level).
"""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from archive.slides import Slide
from wsi import imaging
from wsi.browser_jpeg import for_browser
from wsi.codecs import JPEG_BASELINE
from wsi.errors import InvalidInput, NotFound, WsiArchiveError
from wsi.iiif import ImageRequest, plan
from wsi.imaging import MEDIA_TYPES, OutputFormat
from wsi.pyramid import FrameRef, InstanceFacts, Level, Pyramid, build_pyramids

if TYPE_CHECKING:
    from archive.archive import InstanceRecord

MAX_SOURCE_PIXELS = 40_000_000
THUMBNAIL_SIDE = 512
ASSOCIATED_SIDE = 2048
_PASSTHROUGH_SYNTAXES = frozenset({JPEG_BASELINE, "1.2.840.10008.1.2.4.51"})

ReadFrames = Callable[["InstanceRecord", list[int]], Iterator[bytes]]


@dataclass(frozen=True)
class EncodedImage:
    """An image ready to send, with its strong entity tag (unquoted)."""

    data: bytes
    media_type: str
    etag: str


@dataclass(frozen=True)
class FrameSpan:
    """Where the bytes of one stored frame are in its instance file."""

    path: Path
    content_hash: str
    """The instance file's SHA-256: a file at ``path`` with another hash is another file."""
    file_size: int
    offset: int
    length: int


@dataclass(frozen=True)
class StoredTile:
    """A tile whose stored frame a browser may get as it is (after
    :func:`wsi.browser_jpeg.for_browser`), and the entity tag :meth:`SlideImages.tile` gives."""

    span: FrameSpan
    photometric_interpretation: str
    etag: str


class _ByteLRU:
    """Encoded images by key, evicting the least recently used past ``capacity`` bytes."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._size = 0
        self._items: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> bytes | None:
        with self._lock:
            data = self._items.get(key)
            if data is not None:
                self._items.move_to_end(key)
            return data

    def put(self, key: tuple, data: bytes) -> None:
        if len(data) > self._capacity // 8:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self._size += len(data) - (len(old) if old else 0)
            self._items[key] = data
            while self._size > self._capacity:
                _, evicted = self._items.popitem(last=False)
                self._size -= len(evicted)


class SlideImages:
    """Tiles and derived images of slides, from stored frames. Thread-safe.

    Memory: ``cache_bytes`` of encoded images, plus per request at most
    :data:`MAX_SOURCE_PIXELS` decoded pixels and one decoded tile.
    """

    def __init__(self, read_frames: ReadFrames, cache_bytes: int = 64 * 1024 * 1024) -> None:
        self._read_frames = read_frames
        self._cache = _ByteLRU(cache_bytes)

    # ---- tiles -----------------------------------------------------------------------------
    def tile_etag(
        self, slide: Slide, level: int, col: int, row: int, z: int | None, path: str | None,
        fmt: OutputFormat,
    ) -> str:
        """The entity tag :meth:`tile` will give, without reading anything."""
        ref = slide.pyramid.locate(level, col, row, z, path)
        if ref is None:
            size = slide.pyramid.level(level).tile_size
            return f"blank-{size.width}x{size.height}-{fmt}"
        return self._frame_etag(slide, ref, fmt)

    def tile(
        self, slide: Slide, level: int, col: int, row: int, z: int | None, path: str | None,
        fmt: OutputFormat,
    ) -> EncodedImage:
        """Tile (col, row) of a level; a white tile where the slide stores none."""
        ref = slide.pyramid.locate(level, col, row, z, path)
        if ref is None:
            size = slide.pyramid.level(level).tile_size
            return EncodedImage(
                imaging.blank(size.width, size.height, fmt), MEDIA_TYPES[fmt],
                f"blank-{size.width}x{size.height}-{fmt}",
            )
        return self._frame_image(slide, ref, fmt)

    def stored_tile(
        self, slide: Slide, level: int, col: int, row: int,
        frame_span: Callable[[InstanceRecord, int], FrameSpan | None],
    ) -> StoredTile | None:
        """The stored JPEG frame behind a default-plane, default-path tile, if it is known
        without any I/O (``frame_span`` answers from cached frame tables only); None in every
        other case (outside the grid, a sparse gap, another codec, not cached).
        """
        try:
            ref = slide.pyramid.locate(level, col, row)
        except WsiArchiveError:
            return None
        if ref is None:
            return None
        facts = slide.facts[ref.sop_instance_uid]
        if facts.transfer_syntax_uid not in _PASSTHROUGH_SYNTAXES:
            return None
        span = frame_span(slide.records[ref.sop_instance_uid], ref.frame_number)
        if span is None:
            return None
        return StoredTile(span, facts.photometric_interpretation,
                          self._frame_etag(slide, ref, "jpeg"))

    def _frame_etag(self, slide: Slide, ref: FrameRef, fmt: str) -> str:
        return f"{slide.records[ref.sop_instance_uid].sha256[:24]}-{ref.frame_number}-{fmt}"

    def _frame_image(self, slide: Slide, ref: FrameRef, fmt: OutputFormat) -> EncodedImage:
        etag = self._frame_etag(slide, ref, fmt)
        key = ("frame", etag)
        cached = self._cache.get(key)
        if cached is not None:
            return EncodedImage(cached, MEDIA_TYPES[fmt], etag)
        record = slide.records[ref.sop_instance_uid]
        facts = slide.facts[ref.sop_instance_uid]
        (data,) = self._read_frames(record, [ref.frame_number])
        if fmt == "jpeg" and facts.transfer_syntax_uid in _PASSTHROUGH_SYNTAXES:
            ready = for_browser(data, facts.photometric_interpretation)
            if ready is not None:
                return EncodedImage(ready, MEDIA_TYPES[fmt], etag)
        encoded = imaging.encode(self._decode(facts, data), fmt)
        self._cache.put(key, encoded)
        return EncodedImage(encoded, MEDIA_TYPES[fmt], etag)

    @staticmethod
    def _decode(facts: InstanceFacts, data: bytes) -> np.ndarray:
        assert facts.pixels is not None
        return imaging.decode_for_display(
            data, facts.transfer_syntax_uid, facts.pixels,
            facts.photometric_interpretation, facts.bits_stored,
        )

    def _decoded_tile(
        self, slide: Slide, level: Level, col: int, row: int, z: float, path: str
    ) -> np.ndarray | None:
        ref = level.locate(col, row, z, path)
        if ref is None:
            return None
        (data,) = self._read_frames(slide.records[ref.sop_instance_uid], [ref.frame_number])
        return self._decode(slide.facts[ref.sop_instance_uid], data)

    def _compose(
        self, slide: Slide, pyramid: Pyramid, level: Level, x: int, y: int, w: int, h: int,
        grey: bool = False,
    ) -> np.ndarray:
        if w * h > MAX_SOURCE_PIXELS:
            raise InvalidInput(
                f"the region needs {w}x{h} pixels of level {level.index}; at most "
                f"{MAX_SOURCE_PIXELS} are read per request"
            )
        z, path = pyramid.plane(None), pyramid.path(None)
        tw, th = level.tile_size.width, level.tile_size.height
        return imaging.compose(
            w, h, x, y, tw, th,
            lambda col, row: self._decoded_tile(slide, level, col, row, z, path), grey,
        )

    # ---- IIIF ------------------------------------------------------------------------------
    def iiif_etag(self, slide: Slide, request: ImageRequest) -> str:
        """The entity tag of an IIIF image: the slide's version and the canonical request."""
        digest = hashlib.sha256(request.canonical.encode()).hexdigest()[:16]
        return f"{slide.version}-{digest}"

    def iiif(self, slide: Slide, request: ImageRequest) -> EncodedImage:
        """An IIIF image request: a stored tile as it is when aligned, else composed."""
        pyramid = slide.pyramid
        fmt: OutputFormat = request.output_format  # type: ignore[assignment]
        found = plan(pyramid, request)
        etag = self.iiif_etag(slide, request)
        plain = request.rotation == 0 and not request.mirror and request.quality in (
            "default", "color")
        if found.tile is not None and plain:
            ref = found.level.locate(*found.tile, pyramid.plane(None), pyramid.path(None))
            if ref is None:
                size = found.level.tile_size
                return EncodedImage(imaging.blank(size.width, size.height, fmt),
                                    MEDIA_TYPES[fmt], etag)
            image = self._frame_image(slide, ref, fmt)
            return dataclasses.replace(image, etag=etag)
        key = ("iiif", etag)
        cached = self._cache.get(key)
        if cached is None:
            level = found.level
            if found.tile is not None:
                col, row = found.tile
                tw, th = level.tile_size.width, level.tile_size.height
                found = dataclasses.replace(found, x=col * tw, y=row * th, w=tw, h=th)
            grey = request.quality in ("gray", "bitonal")
            array = self._compose(slide, pyramid, level, found.x, found.y, found.w, found.h, grey)
            array = imaging.resize(array, request.width, request.height)
            if request.quality == "bitonal":
                array = np.where(array > 127, 255, 0).astype(np.uint8)
            if request.mirror:
                array = array[:, ::-1]
            if request.rotation:
                array = np.rot90(array, k=(4 - request.rotation // 90) % 4)
            cached = imaging.encode(array, fmt)
            self._cache.put(key, cached)
        return EncodedImage(cached, MEDIA_TYPES[fmt], etag)

    # ---- associated images -------------------------------------------------------------------
    def associated(self, slide: Slide, kind: str, fmt: OutputFormat) -> EncodedImage:
        """The label, overview or thumbnail instance as one image (largest side bounded)."""
        facts = slide.associated.get(kind)
        if facts is None:
            if kind == "thumbnail":
                return self.thumbnail(slide, fmt)
            raise NotFound(f"series {slide.series_uid} has no {kind} image")
        record = slide.records[facts.sop_instance_uid]
        etag = f"{record.sha256[:24]}-{kind}-{fmt}"
        if facts.number_of_frames == 1 and facts.tile_size == facts.total_size:
            return self._frame_image(slide, FrameRef(facts.sop_instance_uid, 1), fmt)
        key = ("associated", etag)
        cached = self._cache.get(key)
        if cached is None:
            as_volume = dataclasses.replace(facts, image_type=("DERIVED", "PRIMARY", "VOLUME"))
            pyramids = build_pyramids([as_volume])
            if not pyramids:
                raise NotFound(f"the {kind} image of series {slide.series_uid} is not tiled "
                               "in a way that can be read")
            level = pyramids[0].base
            array = self._compose(slide, pyramids[0], level, 0, 0,
                                  level.size.width, level.size.height)
            array = imaging.resize(array, *imaging.fit_within(
                level.size.width, level.size.height, ASSOCIATED_SIDE))
            cached = imaging.encode(array, fmt)
            self._cache.put(key, cached)
        return EncodedImage(cached, MEDIA_TYPES[fmt], etag)

    def thumbnail(self, slide: Slide, fmt: OutputFormat, side: int = THUMBNAIL_SIDE
                  ) -> EncodedImage:
        """A thumbnail made from the smallest level that is still at least ``side`` wide."""
        pyramid = slide.pyramid
        level = pyramid.levels[-1]
        for candidate in pyramid.levels:
            if max(candidate.size.width, candidate.size.height) >= side:
                level = candidate
        etag = f"{slide.version}-thumbnail-{side}-{fmt}"
        key = ("thumbnail", etag)
        cached = self._cache.get(key)
        if cached is None:
            array = self._compose(slide, pyramid, level, 0, 0, level.size.width,
                                  level.size.height)
            array = imaging.resize(array, *imaging.fit_within(
                level.size.width, level.size.height, side))
            cached = imaging.encode(array, fmt)
            self._cache.put(key, cached)
        return EncodedImage(cached, MEDIA_TYPES[fmt], etag)
