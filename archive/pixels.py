"""Pixel facts and header values of stored instances, for decoding and bulk data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pydicom.tag import Tag

from wsi.codecs import PixelDescription
from wsi.dicom.part10 import read_header
from wsi.errors import InvalidInput, NotFound


def _first(data: dict[str, Any], tag: str, default: Any = None) -> Any:
    values = data.get(tag, {}).get("Value")
    return values[0] if values else default


def pixel_description(metadata_text: str) -> PixelDescription:
    """The Image Pixel module facts (PS3.3 C.7.6.3) from stored metadata JSON."""
    data = json.loads(metadata_text)
    rows, columns = _first(data, "00280010"), _first(data, "00280011")
    if rows is None or columns is None:
        raise InvalidInput("instance has no image pixel description")
    return PixelDescription(
        rows=int(rows),
        columns=int(columns),
        samples_per_pixel=int(_first(data, "00280002", 1)),
        bits_allocated=int(_first(data, "00280100", 8)),
        pixel_representation=int(_first(data, "00280103", 0)),
        planar_configuration=int(_first(data, "00280006", 0)),
    )


def header_value(path: str, bulk_path: str) -> bytes:
    """The raw value of a header element addressed as ``TTTTTTTT[/item/TTTTTTTT...]``."""
    header = read_header(Path(path))
    current: Dataset = header.dataset
    steps = bulk_path.strip("/").split("/")
    try:
        for i in range(0, len(steps) - 1, 2):
            current = current[Tag(int(steps[i], 16))].value[int(steps[i + 1])]
        element = current[Tag(int(steps[-1], 16))]
    except (KeyError, IndexError, ValueError) as exc:
        raise NotFound(f"no bulk data at {bulk_path}") from exc
    value = element.value
    if isinstance(value, str):
        return value.encode()
    if not isinstance(value, bytes | bytearray):
        raise NotFound(f"{bulk_path} is not bulk data")
    return bytes(value)
