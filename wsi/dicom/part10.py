"""Header-only reading of DICOM Part 10 files (PS3.10 §7.1).

The data set is parsed up to, not into, the pixel data; the pixel data element header is then
decoded by hand so that later reads of frames can be positioned reads into the file. Neither
the pixel data nor the whole file is ever loaded, except for the Deflated Explicit VR Little
Endian transfer syntax, whose data set pydicom has to inflate in memory.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import pydicom
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.errors import InvalidDicomError

from wsi.errors import InvalidInput

PIXEL_DATA_TAGS = frozenset({0x7FE00010, 0x7FE00008, 0x7FE00009})
"""Pixel Data, Float Pixel Data and Double Float Pixel Data."""

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"
DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1.99"

_UNDEFINED_LENGTH = 0xFFFFFFFF


@dataclass(frozen=True)
class PixelDataLocation:
    """Where the value of the pixel data element lies in the file."""

    tag: int
    """0x7FE00010, or 0x7FE00008 / 0x7FE00009 for (double) float pixel data."""
    value_offset: int
    """Absolute file offset of the first byte of the element value."""
    value_length: int | None
    """Value length in bytes; None for undefined length (encapsulated)."""
    encapsulated: bool


@dataclass(frozen=True)
class Part10Header:
    """Everything of a Part 10 file except the pixel data value."""

    dataset: pydicom.Dataset
    """All elements before the pixel data; the file meta is ``dataset.file_meta``."""
    transfer_syntax_uid: str
    pixel_data: PixelDataLocation | None
    """None if there is no pixel data, or if the transfer syntax is deflated (the file offsets
    then describe compressed bytes, so callers must decode the instance instead)."""
    file_size: int


def read_header(path: Path) -> Part10Header:
    """Read the file meta and data set of ``path`` up to the pixel data.

    Raises :class:`InvalidInput` if the file is not a Part 10 file (preamble, ``DICM`` and
    file meta with a Transfer Syntax UID are required), cannot be parsed, or is truncated.
    """
    with open(path, "rb") as fp:
        file_size = os.fstat(fp.fileno()).st_size
        try:
            ds = pydicom.dcmread(fp, stop_before_pixels=True, force=False)
        except InvalidDicomError as exc:
            raise InvalidInput(f"not a DICOM Part 10 file: {exc}") from exc
        except Exception as exc:  # pydicom raises many types on garbage input
            raise InvalidInput(f"cannot parse DICOM header: {exc}") from exc
        end_of_dataset = fp.tell()

        meta = getattr(ds, "file_meta", None)
        ts_value = meta.get("TransferSyntaxUID") if meta is not None else None
        transfer_syntax = str(ts_value).strip("\x00 ") if ts_value else ""
        if not transfer_syntax:
            raise InvalidInput("file meta information lacks TransferSyntaxUID")
        if len(ds) == 0:
            raise InvalidInput("DICOM data set is empty (truncated file?)")
        if transfer_syntax == DEFLATED_EXPLICIT_VR_LITTLE_ENDIAN:
            return Part10Header(ds, transfer_syntax, None, file_size)

        _check_last_element(fp, ds, end_of_dataset, transfer_syntax)
        location = None
        if end_of_dataset < file_size:
            location = _read_pixel_data_header(fp, end_of_dataset, file_size, transfer_syntax)
    return Part10Header(ds, transfer_syntax, location, file_size)


def _check_last_element(fp: BinaryIO, ds: pydicom.Dataset, end: int, transfer_syntax: str) -> None:
    """Reject data sets whose last element is cut off.

    pydicom silently returns short values when a file ends early, so the last top-level
    element must end exactly where the pixel data (or the file) begins.
    """
    last_tell, last_length = -1, 0
    # Iterating the Dataset itself would convert every raw element; keys() does not.
    for tag in ds.keys():  # noqa: SIM118
        elem = ds.get_item(tag)
        if isinstance(elem, RawDataElement):
            tell, length = elem.value_tell, elem.length
        elif isinstance(elem, DataElement):
            tell = elem.file_tell if elem.file_tell is not None else -1
            length = _UNDEFINED_LENGTH if elem.is_undefined_length else -1
        else:
            continue
        if tell > last_tell:
            last_tell, last_length = tell, length
    if last_tell < 0 or last_length < 0:
        return
    if last_length != _UNDEFINED_LENGTH:
        if last_tell + last_length != end:
            raise InvalidInput(f"truncated DICOM header: element at offset {last_tell} is cut off")
        return
    # An undefined-length value ends with a Sequence Delimitation Item (PS3.5 §7.5.2).
    fp.seek(end - 8)
    order = ">" if transfer_syntax == EXPLICIT_VR_BIG_ENDIAN else "<"
    tail = fp.read(8)
    if len(tail) < 8 or struct.unpack(f"{order}HHL", tail) != (0xFFFE, 0xE0DD, 0):
        raise InvalidInput("truncated DICOM header: missing sequence delimitation item")


def _read_pixel_data_header(
    fp: BinaryIO, offset: int, file_size: int, transfer_syntax: str
) -> PixelDataLocation:
    """Decode the pixel data element header that starts at ``offset`` (PS3.5 §7.1)."""
    fp.seek(offset)
    raw = fp.read(12)
    if len(raw) < 8:
        raise InvalidInput("truncated pixel data element header")
    order = ">" if transfer_syntax == EXPLICIT_VR_BIG_ENDIAN else "<"
    group, element = struct.unpack(f"{order}HH", raw[:4])
    tag = group << 16 | element
    if tag not in PIXEL_DATA_TAGS:
        raise InvalidInput(f"unexpected element ({group:04X},{element:04X}) before pixel data")

    vr = raw[4:6]
    # Like pydicom, accept an implicit VR element in an explicit VR data set when the VR bytes
    # are not letters; OB/OW/OF/OD have 2 reserved bytes and a 32-bit length (PS3.5 §7.1.2).
    explicit = transfer_syntax != IMPLICIT_VR_LITTLE_ENDIAN and vr.isalpha()
    if explicit:
        if vr not in (b"OB", b"OW", b"OF", b"OD", b"UN"):
            raise InvalidInput(f"pixel data has unexpected VR {vr!r}")
        if len(raw) < 12:
            raise InvalidInput("truncated pixel data element header")
        (length,) = struct.unpack(f"{order}L", raw[8:12])
        value_offset = offset + 12
    else:
        (length,) = struct.unpack(f"{order}L", raw[4:8])
        value_offset = offset + 8

    if length == _UNDEFINED_LENGTH:
        if tag != 0x7FE00010:
            raise InvalidInput("float pixel data cannot be encapsulated")
        return PixelDataLocation(tag, value_offset, None, True)
    if value_offset + length > file_size:
        raise InvalidInput(
            f"truncated pixel data: {length} bytes declared at offset {value_offset}, "
            f"file has {file_size} bytes"
        )
    return PixelDataLocation(tag, value_offset, length, False)
