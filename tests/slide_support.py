"""Helpers for slide tests: store sample files, read their stored frames, OSD's IIIF URLs."""

from __future__ import annotations

import io
import math
from pathlib import Path

import httpx
import numpy as np
import pydicom
from PIL import Image
from pydicom.encaps import generate_frames

from tests.support import multipart


def store(client: httpx.Client, paths: list[Path]) -> None:
    """STOW-RS the files (client bound to the DICOMweb root)."""
    body, content_type = multipart([p.read_bytes() for p in paths])
    response = client.post("/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


def frames_of(path: Path) -> list[bytes]:
    """The stored frames of a file, in frame order."""
    ds = pydicom.dcmread(path)
    count = int(ds.get("NumberOfFrames", 1))
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        return list(generate_frames(ds.PixelData, number_of_frames=count))
    size = len(ds.PixelData) // count
    return [ds.PixelData[i * size : (i + 1) * size] for i in range(count)]


def decode(data: bytes) -> np.ndarray:
    """An image file's pixels as a browser-like decoder (Pillow/libjpeg) gives them, RGB."""
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def osd_iiif_urls(info: dict, level: int) -> list[tuple[str, tuple[int, int]]]:
    """The tile URLs OpenSeadragon 6's IIIFTileSource requests for one of its levels, with
    the image size each should have (a port of ``IIIFTileSource.getTileUrl``, version 3)."""
    width, height = info["width"], info["height"]
    tile = info["tiles"][0]
    tile_w, tile_h = tile["width"], tile.get("height", tile["width"])
    max_level = round(math.log2(max(tile["scaleFactors"])))
    scale = 0.5 ** (max_level - level)
    level_w, level_h = math.ceil(width * scale), math.ceil(height * scale)
    size_w_full, size_h_full = round(tile_w / scale), round(tile_h / scale)
    urls = []
    if level_w < tile_w and level_h < tile_h:
        size = "max" if (level_w, level_h) == (width, height) else f"{level_w},{level_h}"
        return [(f"{info['id']}/full/{size}/0/default.jpg", (level_w, level_h))]
    for y in range(math.ceil(level_h / tile_h)):
        for x in range(math.ceil(level_w / tile_w)):
            rx, ry = x * size_w_full, y * size_h_full
            rw, rh = min(size_w_full, width - rx), min(size_h_full, height - ry)
            region = "full" if (x, y, rw, rh) == (0, 0, width, height) else f"{rx},{ry},{rw},{rh}"
            sw, sh = min(tile_w, level_w - x * tile_w), min(tile_h, level_h - y * tile_h)
            size = "max" if (sw, sh) == (width, height) else f"{sw},{sh}"
            urls.append((f"{info['id']}/{region}/{size}/0/default.jpg", (sw, sh)))
    return urls
