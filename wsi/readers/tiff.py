"""Slides in TIFF containers read with tifffile: Aperio SVS, Hamamatsu NDPI, Philips TIFF,
OME-TIFF and generic tiled pyramidal TIFF. Leica SCN and Ventana BIF, TIFF containers whose
geometry lives in vendor XML, are handed over to OpenSlide.

Stored tiles are read with positioned reads (``os.pread``, so worker threads need no lock)
and, for JPEG tiles, spliced with the page's ``JPEGTables`` into frame-ready streams. Regions
are decoded segment by segment (tiles, or NDPI's restart-interval stripes), so a region read
costs memory for the region plus one segment (or one run of NDPI intervals decoded together,
512 KB at most), never a whole level.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tifffile

from wsi.errors import InvalidInput, Unsupported
from wsi.jpeg_stream import JpegHeader, parse_header
from wsi.readers import restart_runs
from wsi.readers.base import (
    AssociatedImage,
    AssociatedKind,
    Level,
    SlideProperties,
    SlideReader,
    StoredImage,
    StoredRun,
    StoredTiles,
    paste,
)
from wsi.readers.jpeg import splice_prefix
from wsi.readers.jpeg_strips import join_strips
from wsi.readers.tiff_formats import FORMATS

JPEG_BASELINE = "1.2.840.10008.1.2.4.50"
_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_JPEG = 7
_LOSSY_METHODS = {6: "ISO_10918_1", 7: "ISO_10918_1", 33003: "ISO_15444_1",
                  33005: "ISO_15444_1", 34712: "ISO_15444_1"}
_PHOTOMETRIC_RGB = 2
_PHOTOMETRIC_YCBCR = 6
_MAX_RUN = 1024
"""Tiles read with one positioned read, at most."""
_RUN_BYTES = 512 << 10
"""Decoded bytes of NDPI restart intervals decoded as one stream, at most: cache-sized (runs
of 256 KB-1 MB took 15-20 % less CPU than one interval at a time on a 4000-pixel-wide
level, runs of 4 MB more)."""


@dataclass(frozen=True)
class _PageAccess:
    """What reading the segments of one level's page needs."""

    page: tifffile.TiffPage
    offsets: tuple[int, ...]
    counts: tuple[int, ...]
    segment_height: int
    segment_width: int
    segments_across: int
    prefix: bytes | None
    """Splice prefix for stored JPEG tiles; ``None`` when tiles cannot be passed through."""
    run_sof: int | None = None
    """NDPI: offset of the SOF marker in tifffile's per-interval JPEG header, when runs of
    restart intervals can be decoded as one stream (:mod:`wsi.readers.restart_runs`)."""


class TiffReader(SlideReader):
    """tifffile based reader with direct stored-tile access."""

    name = "tiff"

    @classmethod
    def accepts(cls, path: Path, head: bytes) -> bool:
        """TIFF and BigTIFF files, either byte order."""
        return head[:4] in _TIFF_MAGIC

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        try:
            self._tiff = tifffile.TiffFile(self.path)
        except (tifffile.TiffFileError, ValueError, OSError, IndexError, KeyError) as exc:
            # Possibly a TIFF variant tifffile does not parse: let the next reader try.
            raise Unsupported(f"{self.path.name}: not a readable TIFF ({exc})") from None
        try:
            self._fd = os.open(self.path, os.O_RDONLY)
            self._setup()
        except BaseException:
            self.close()
            raise

    def _setup(self) -> None:
        tf = self._tiff
        if not len(tf.pages):
            raise InvalidInput(f"{self.path.name}: file is truncated or corrupt (no readable "
                               "TIFF directory)")
        try:
            self._format = next(f for f in FORMATS if f.detect(tf))
            self._facts = self._format.facts(tf)
            series = tf.series[0]
        except (IndexError, KeyError, ValueError, tifffile.TiffFileError) as exc:
            raise Unsupported(f"{self.path.name}: unreadable TIFF structure ({exc})") from None
        size = os.fstat(self._fd).st_size
        self._check_ifd_chain(size)
        accesses: list[_PageAccess] = []
        for level in series.levels:
            if len(level.pages) != 1 or level.keyframe is None:
                raise Unsupported(f"{self.path.name}: multi-plane TIFF levels are not supported")
            page = level.keyframe
            if not isinstance(page, tifffile.TiffPage):
                page = tf.pages[page.index]
            accesses.append(self._access(page, size))
        if not accesses:
            raise InvalidInput(f"{self.path.name}: TIFF without images")
        self._pages = accesses
        base_width = accesses[0].page.imagewidth
        self._levels = tuple(
            Level(
                index=i,
                width=a.page.imagewidth,
                height=a.page.imagelength,
                tile_width=a.segment_width,
                tile_height=a.segment_height,
                downsample=base_width / a.page.imagewidth,
                stored=self._stored(a),
            )
            for i, a in enumerate(accesses)
        )
        self._icc = self._pages[0].page.tags.valueof(34675)

    def _check_ifd_chain(self, file_size: int) -> None:
        """tifffile stops quietly at an IFD offset past the end of the file; that is a
        truncated file, not a slide with fewer images."""
        tf = self._tiff
        at = tf.pages.next_page_offset
        if at is None:
            return
        width = tf.tiff.offsetsize
        data = os.pread(self._fd, width, at)
        value = int.from_bytes(data, "little" if tf.byteorder == "<" else "big")
        if len(data) < width or value >= file_size:
            raise InvalidInput(f"{self.path.name}: file is truncated ({file_size} bytes; "
                               "a TIFF directory lies beyond the end)")

    def _access(self, page: tifffile.TiffPage, file_size: int) -> _PageAccess:
        name = self.path.name
        if page.dtype != np.uint8 or page.samplesperpixel not in (1, 3, 4):
            raise Unsupported(f"{name}: only 8-bit grey, RGB or RGBA slides are supported "
                              f"(got {page.dtype}, {page.samplesperpixel} samples)")
        if page.planarconfig != 1 and page.samplesperpixel > 1:
            raise Unsupported(f"{name}: planar (separate) TIFF samples are not supported")
        offsets, counts = tuple(page.dataoffsets), tuple(page.databytecounts)
        end = max((o + c for o, c in zip(offsets, counts, strict=True)), default=0)
        if end > file_size:
            raise InvalidInput(f"{name}: file is truncated ({file_size} bytes, image data "
                               f"reaches byte {end})")
        height, width = page.chunks[0], page.chunks[1]
        across = -(-page.imagewidth // width)
        prefix = None
        if (page.is_tiled and page.compression == _JPEG and page.jpegheader is None
                and all(counts) and page.samplesperpixel == 3):
            rgb = page.photometric == _PHOTOMETRIC_RGB
            prefix = splice_prefix(page.jpegtables, rgb_marker=rgb)
        run_sof = None
        if page.jpegheader is not None and page.compression == _JPEG and page.bitspersample == 8:
            run_sof = restart_runs.sof_offset(page.jpegheader)
        return _PageAccess(page, offsets, counts, height, width, across, prefix, run_sof)

    def _stored(self, access: _PageAccess) -> StoredTiles | None:
        if access.prefix is None:
            return None
        try:
            header = parse_header(self._splice(access, 0))
        except (ValueError, IndexError, struct.error, InvalidInput):
            return None
        return _frame_encoding(header)

    # -- primitives ----------------------------------------------------------------------

    @property
    def levels(self) -> Sequence[Level]:
        """Levels of the first (baseline) series."""
        return self._levels

    @property
    def properties(self) -> SlideProperties:
        """Facts from the format's metadata."""
        compression = self._pages[0].page.compression
        return SlideProperties(
            vendor=self._facts.vendor,
            mpp=self._facts.mpp,
            objective_power=self._facts.objective_power,
            icc_profile=bytes(self._icc) if self._icc else None,
            vendor_properties=self._facts.properties,
            lossy_method=_LOSSY_METHODS.get(int(compression)),
            chroma_subsampled=self._chroma_subsampled(),
        )

    def _chroma_subsampled(self) -> bool | None:
        access = self._pages[0]
        page = access.page
        if page.compression != _JPEG:
            return None
        try:
            if page.jpegheader is not None:
                return parse_header(page.jpegheader).subsampled
            stream = self._read(access.offsets[0], access.counts[0])
            if page.jpegtables:
                stream = page.jpegtables[:-2] + stream[2:]
            return parse_header(stream).subsampled
        except (ValueError, IndexError, struct.error, InvalidInput):
            return None

    def _read(self, offset: int, count: int) -> bytes:
        data = os.pread(self._fd, count, offset)
        if len(data) != count:
            raise InvalidInput(f"{self.path.name}: file is truncated at byte {offset + len(data)}")
        return data

    def _splice(self, access: _PageAccess, index: int) -> bytes:
        tile = self._read(access.offsets[index], access.counts[index])
        if not tile.startswith(b"\xff\xd8"):
            raise InvalidInput(f"{self.path.name}: tile {index} is not a JPEG stream")
        assert access.prefix is not None
        return access.prefix + tile[2:]

    def read_tile(self, level: int, col: int, row: int) -> bytes:
        """The stored JPEG tile with the page's tables (and RGB marker) spliced in."""
        access = self._pages[level]
        if access.prefix is None:
            return super().read_tile(level, col, row)
        return self._splice(access, row * access.segments_across + col)

    def read_stored_run(self, level: int, start: int, count: int) -> StoredRun:
        """Tiles that lie back to back in the file (as TIFF writers store them, row-major)
        with one positioned read and no per-tile copy; others as the default does."""
        access = self._pages[level]
        offsets = np.asarray(access.offsets[start : start + count], dtype=np.int64)
        counts = np.asarray(access.counts[start : start + count], dtype=np.int64)
        if (access.prefix is None or not len(offsets)
                or np.any(offsets[1:] != offsets[:-1] + counts[:-1])):
            return super().read_stored_run(level, start, count)
        first = int(offsets[0])
        data = self._read(first, int(offsets[-1] + counts[-1]) - first)
        starts = offsets - first
        pixels = np.frombuffer(data, dtype=np.uint8)
        if (np.any(counts < 2) or np.any(pixels[starts] != 0xFF)
                or np.any(pixels[starts + 1] != 0xD8)):
            raise InvalidInput(f"{self.path.name}: a tile of level {level} is not a JPEG stream")
        return StoredRun(access.prefix, data, starts + 2, starts + counts)

    def read_tiles(self, level: int, positions: Sequence[tuple[int, int]]) -> Iterator[bytes]:
        """Stored tiles as :meth:`read_tile` gives them; tiles that lie back to back in the
        file (as a tile row usually does) are read with one positioned read."""
        access = self._pages[level]
        if access.prefix is None:
            yield from super().read_tiles(level, positions)
            return
        indices = [row * access.segments_across + col for col, row in positions]
        offsets, counts = access.offsets, access.counts
        start = 0
        while start < len(indices):
            end = start + 1
            while end < len(indices) and end - start < _MAX_RUN:
                previous = indices[end - 1]
                if offsets[indices[end]] != offsets[previous] + counts[previous]:
                    break
                end += 1
            first, last = offsets[indices[start]], indices[end - 1]
            data = memoryview(self._read(first, offsets[last] + counts[last] - first))
            for index in indices[start:end]:
                at = offsets[index] - first
                if data[at : at + 2] != b"\xff\xd8":
                    raise InvalidInput(f"{self.path.name}: tile {index} is not a JPEG stream")
                yield access.prefix + data[at + 2 : at + counts[index]]
            start = end

    def read_region(self, level: int, x: int, y: int, width: int, height: int) -> np.ndarray:
        """Decode the segments overlapping the region and paste them together (NDPI's
        restart intervals in runs, :mod:`wsi.readers.restart_runs`)."""
        access = self._pages[level]
        page = access.page
        out = np.full((height, width, 3), 255, dtype=np.uint8)
        seg_h, seg_w = access.segment_height, access.segment_width
        x_end, y_end = min(x + width, page.imagewidth), min(y + height, page.imagelength)
        rows = range(max(y, 0) // seg_h, -(-y_end // seg_h))
        cols = range(max(x, 0) // seg_w, -(-x_end // seg_w))
        if access.run_sof is None:
            runs: Iterator[tuple[range, range]] = iter([(rows, cols)])
        else:
            runs = restart_runs.blocks(rows, cols, access.segments_across,
                                       _RUN_BYTES // max(1, seg_h * seg_w * 3))
        for run_rows, run_cols in runs:
            pixels = self._decode_run(access, run_rows, run_cols)
            if pixels is not None:
                self._paste(out, pixels, run_rows.start, run_cols.start, x, y, access)
                continue
            for seg_row in run_rows:
                for seg_col in run_cols:
                    pixels = self._decode_segment(access, seg_row * access.segments_across
                                                  + seg_col)
                    self._paste(out, pixels, seg_row, seg_col, x, y, access)
        return out

    @staticmethod
    def _paste(out: np.ndarray, pixels: np.ndarray, seg_row: int, seg_col: int, x: int,
               y: int, access: _PageAccess) -> None:
        seg_h, seg_w, page = access.segment_height, access.segment_width, access.page
        # Clip the padding of edge segments, which lies outside the level.
        pixels = pixels[: page.imagelength - seg_row * seg_h, : page.imagewidth - seg_col * seg_w]
        paste(out, _rgb(pixels), seg_col * seg_w, seg_row * seg_h, x, y)

    def _decode_run(self, access: _PageAccess, rows: range, cols: range) -> np.ndarray | None:
        """Restart intervals ``rows`` x ``cols`` decoded as one stream; ``None`` if they
        are one segment, not a run of consecutive intervals, or do not decode so."""
        if access.run_sof is None or len(rows) * len(cols) < 2:
            return None
        across, page = access.segments_across, access.page
        first, last = rows.start * across + cols.start, (rows.stop - 1) * across + cols.stop - 1
        offsets, counts = access.offsets[first : last + 1], access.counts[first : last + 1]
        if not all(counts) or any(b != a + n for a, n, b in zip(offsets, counts, offsets[1:],
                                                              strict=False)):
            return None  # a missing interval (no marker) or one stored elsewhere
        data = self._read(offsets[0], offsets[-1] + counts[-1] - offsets[0])
        height, width = len(rows) * access.segment_height, len(cols) * access.segment_width
        assert page.jpegheader is not None
        stream = restart_runs.run_stream(page.jpegheader, access.run_sof, data,
                                         [a - offsets[0] for a in offsets[1:]], height, width)
        if stream is None:
            return None
        colorspace, outcolorspace = tifffile.tifffile.jpeg_decode_colorspace(
            page.photometric, page.planarconfig, page.extrasamples, page.is_jfif)
        return restart_runs.decode_run(stream, height, width, colorspace, outcolorspace)

    def _decode_segment(self, access: _PageAccess, index: int) -> np.ndarray:
        page = access.page
        if not access.counts[index]:
            return np.full((access.segment_height, access.segment_width, 3), 255, np.uint8)
        data = self._read(access.offsets[index], access.counts[index])
        try:
            segment, _, _ = page.decode(data, index, jpegtables=page.jpegtables,
                                        jpegheader=page.jpegheader)
        except Exception as exc:  # codec errors come as many types
            raise InvalidInput(f"{self.path.name}: cannot decode image data ({exc})") from None
        if segment is None:
            raise InvalidInput(f"{self.path.name}: cannot decode segment {index}")
        return np.asarray(segment).reshape(segment.shape[-3:])

    def _associated_series(self, kind: AssociatedKind) -> tifffile.TiffPageSeries | None:
        name = self._facts.associated.get(kind)
        return next((s for s in self._tiff.series if name and s.name == name), None)

    def associated_stored(self, kind: AssociatedKind) -> StoredImage | None:
        """A JPEG label, macro or thumbnail as stored: its strips joined into one stream
        (:mod:`wsi.readers.jpeg_strips`), the tables and RGB marker spliced in."""
        series = self._associated_series(kind)
        page = series.keyframe if series is not None else None
        if (not isinstance(page, tifffile.TiffPage) or page.compression != _JPEG
                or page.is_tiled or page.samplesperpixel != 3 or page.planarconfig != 1
                or page.jpegheader is not None or not all(page.databytecounts)):
            return None
        strips = [self._read(offset, count)
                  for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True)]
        try:
            frame = join_strips(strips, page.jpegtables, page.imagewidth, page.imagelength,
                                rgb_marker=page.photometric == _PHOTOMETRIC_RGB)
            encoding = _frame_encoding(parse_header(frame)) if frame else None
        except (ValueError, IndexError, struct.error):
            return None
        if frame is None or encoding is None:
            return None
        return StoredImage(kind, page.imagewidth, page.imagelength, frame, encoding)

    def associated(self, kind: AssociatedKind) -> AssociatedImage | None:
        """Label, macro (overview) or thumbnail series by their tifffile names."""
        series = self._associated_series(kind)
        if series is None:
            return None
        try:
            pixels = series.asarray()
        except Exception as exc:  # codec errors come as many types
            raise InvalidInput(f"{self.path.name}: cannot decode the {kind} image ({exc})") \
                from None
        return AssociatedImage(kind, _rgb(pixels))

    def close(self) -> None:
        """Close tifffile's handle and our descriptor."""
        self._tiff.close()
        fd = getattr(self, "_fd", -1)
        if fd >= 0:
            os.close(fd)
            self._fd = -1



def _frame_encoding(header: JpegHeader) -> StoredTiles | None:
    """How a DICOM frame describes this JPEG stream, or ``None`` if it cannot be one."""
    if not header.baseline or header.components != 3:
        return None
    if header.holds_rgb:
        return StoredTiles(JPEG_BASELINE, "RGB")
    if header.subsampled:
        return StoredTiles(JPEG_BASELINE, "YBR_FULL_422")
    # YCbCr without subsampling would be YBR_FULL, which the WSI IOD does not allow
    # (PS3.3 C.8.12.4.1.5): such streams are re-encoded.
    return None


def _rgb(pixels: np.ndarray) -> np.ndarray:
    """RGB uint8 ``(h, w, 3)`` from grey ``(h, w)``/``(h, w, 1)`` or RGBA."""
    if pixels.ndim == 2:
        pixels = pixels[..., np.newaxis]
    if pixels.shape[-1] == 1:
        return np.repeat(pixels, 3, axis=-1)
    return pixels[..., :3]
