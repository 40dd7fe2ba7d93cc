"""Synthetic Aperio-like SVS slides: tiled TIFF with abbreviated JPEG tiles and JPEGTables.

Like real Aperio files, the base level stores RGB samples in baseline JPEG (no colour
transform, no JFIF/Adobe marker, component ids 0, 1, 2) as abbreviated streams whose
quantisation and Huffman tables live once in the ``JPEGTables`` tag; the ImageDescription
starts with ``Aperio`` and carries ``MPP`` and ``AppMag``. A thumbnail page follows, then
(with ``levels``) reduced pyramid levels as Aperio stores them (e.g. downsample 4 and 16,
each ``floor(size / downsample)``, tiled like the base, with their own JPEGTables).

The texture is the tissue-like texture of :mod:`samples.wsi_level`. For large benchmark
slides (``--reuse N``) only N distinct tiles are rendered and encoded and then written over
and over, so a 40000 x 30000 slide takes seconds.

Run ``python -m samples.synthetic_slide --help`` for the command line.
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections.abc import Iterator, Sequence
from pathlib import Path

import imagecodecs
import numpy as np
import tifffile

from samples.wsi_level import render_tile

_SOI = b"\xff\xd8"
_DQT, _DHT, _APP14 = 0xDB, 0xC4, 0xEE


def encode_rgb_jpeg(rgb: np.ndarray, quality: int = 80) -> bytes:
    """Baseline JPEG of RGB samples without colour transform (as Aperio writes them)."""
    return bytes(imagecodecs.jpeg8_encode(rgb, level=quality, colorspace="RGB",
                                          outcolorspace="RGB"))


def _segments(stream: bytes) -> Iterator[tuple[int, int, int]]:
    """(marker, start, end) of each marker segment after SOI, up to and including SOS."""
    index = 2
    while True:
        marker = stream[index + 1]
        length = int.from_bytes(stream[index + 2 : index + 4], "big")
        yield marker, index, index + 2 + length
        if marker == 0xDA:
            return
        index += 2 + length


def abbreviate(stream: bytes) -> tuple[bytes, bytes]:
    """Split a JPEG into (tables-only stream, abbreviated stream) as TIFF stores them.

    Tables go to the JPEGTables value; the abbreviated tile keeps SOI, SOF, SOS and the
    scan. Application markers (JFIF, Adobe) are dropped, as in Aperio files, and the frame
    component ids are set to 0, 1, 2.
    """
    tables, tile = [_SOI], [_SOI]
    rest_from = 0
    for marker, start, end in _segments(stream):
        if marker in (_DQT, _DHT):
            tables.append(stream[start:end])
        elif 0xE0 <= marker <= 0xEF:
            continue
        else:
            tile.append(stream[start:end])
        rest_from = end
    tile.append(stream[rest_from:])
    abbreviated = bytearray(b"".join(tile))
    sof = abbreviated.index(b"\xff\xc0")
    sos = abbreviated.index(b"\xff\xda")
    ids = {abbreviated[sof + 10 + 3 * i]: i for i in range(3)}
    for i in range(3):
        abbreviated[sof + 10 + 3 * i] = i
        selector = sos + 5 + 2 * i
        abbreviated[selector] = ids[abbreviated[selector]]
    return b"".join(tables) + b"\xff\xd9", bytes(abbreviated)


def write_synthetic_svs(
    path: Path,
    width: int = 2000,
    height: int = 1500,
    *,
    tile: int = 240,
    quality: int = 80,
    mpp: float = 0.25,
    seed: int = 0,
    reuse: int | None = None,
    levels: Sequence[int] = (),
) -> Path:
    """Write an Aperio-like SVS of ``width`` x ``height`` pixels with ``tile`` tiles.

    With ``reuse`` set, only that many distinct tiles are rendered and cycled (fast, for
    benchmarks); otherwise every tile shows its own part of the texture. ``levels`` are the
    downsample factors of reduced levels to store after the thumbnail. Returns ``path``.
    """
    path = Path(path)
    tables, tiles = _level_tiles(seed, width, height, tile, quality, reuse, 1)
    description = (f"Aperio Image Library v12.0.15 synthetic\r\n{width}x{height} "
                   f"({tile}x{tile}) JPEG/RGB Q={quality}|AppMag = 20|MPP = {mpp}"
                   f"|ScanScope ID = SYNTHETIC")
    thumb_w = max(1, width // 32)
    thumb_h = max(1, height // 32)
    thumbnail = np.ascontiguousarray(np.broadcast_to(
        render_tile(seed, thumb_w, thumb_h, 0, 0, max(thumb_w, thumb_h), 32.0)
        [:thumb_h, :thumb_w], (thumb_h, thumb_w, 3)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with tifffile.TiffWriter(path, bigtiff=width * height > 2**31) as tif:
        tif.write(tiles, shape=(height, width, 3), dtype=np.uint8, tile=(tile, tile),
                  compression="jpeg", compressionargs={"outcolorspace": "RGB"},
                  photometric="rgb", jpegtables=tables, description=description,
                  metadata=None)
        tif.write(thumbnail, photometric="rgb", compression="jpeg", rowsperstrip=16,
                  metadata=None,
                  description=f"Aperio Image Library v12.0.15 synthetic\r\n{width}x{height}"
                  f" -> {thumb_w}x{thumb_h} - |AppMag = 20|MPP = {mpp}")
        for downsample in levels:
            level_w, level_h = max(1, width // downsample), max(1, height // downsample)
            tables, tiles = _level_tiles(seed, level_w, level_h, tile, quality, reuse,
                                         downsample)
            tif.write(tiles, shape=(level_h, level_w, 3), dtype=np.uint8, tile=(tile, tile),
                      compression="jpeg", compressionargs={"outcolorspace": "RGB"},
                      photometric="rgb", jpegtables=tables, metadata=None,
                      description=f"Aperio Image Library v12.0.15 synthetic\r\n{width}x"
                      f"{height} ({tile}x{tile}) -> {level_w}x{level_h} JPEG/RGB Q={quality}")
    return path


def _level_tiles(seed: int, width: int, height: int, tile: int, quality: int,
                 reuse: int | None, downsample: int) -> tuple[bytes, Iterator[bytes]]:
    """(JPEGTables, abbreviated tiles in row-major order) of one level."""
    across, down = math.ceil(width / tile), math.ceil(height / tile)

    def rendered(col: int, row: int) -> np.ndarray:
        return render_tile(seed, width, height, row, col, tile, float(downsample))

    tables = b""
    if reuse:
        pool = []
        for i in range(min(reuse, across * down)):
            tables, abbreviated = abbreviate(encode_rgb_jpeg(rendered(i, i), quality))
            pool.append(abbreviated)
        return tables, itertools.islice(itertools.cycle(pool), across * down)
    encoded = [abbreviate(encode_rgb_jpeg(rendered(c, r), quality))
               for r in range(down) for c in range(across)]
    return encoded[0][0], iter(abbreviated for _, abbreviated in encoded)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(prog="python -m samples.synthetic_slide",
                                     description="Write a synthetic Aperio-like SVS slide.")
    parser.add_argument("output", type=Path, help="output .svs file")
    parser.add_argument("--width", type=int, default=2000)
    parser.add_argument("--height", type=int, default=1500)
    parser.add_argument("--tile", type=int, default=240)
    parser.add_argument("--quality", type=int, default=80)
    parser.add_argument("--mpp", type=float, default=0.25)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reuse", type=int, default=None,
                        help="render only N distinct tiles and repeat them (fast, for benchmarks)")
    parser.add_argument("--levels", default="",
                        help="downsample factors of reduced levels to store, as Aperio does, "
                        "e.g. 4,16 (default: the base level only)")
    args = parser.parse_args(argv)
    levels = [int(value) for value in args.levels.split(",") if value.strip()]
    path = write_synthetic_svs(args.output, args.width, args.height, tile=args.tile,
                               quality=args.quality, mpp=args.mpp, seed=args.seed,
                               reuse=args.reuse, levels=levels)
    print(f"{path} {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
