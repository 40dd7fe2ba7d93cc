"""Whole instances in Explicit VR Little Endian: decompression for WADO-RS (PS3.18 §8.7.3.5.2).

A client that names ``transfer-syntax=1.2.840.10008.1.2.1`` (the default of PS3.18 for
``application/dicom``) gets every instance in that syntax: the header is re-encoded by
pydicom and the pixel data is written frame by frame as each stored frame is decoded, so
memory stays at one frame whatever the instance size. The attributes that describe the
pixels change with them (PS3.3 C.7.6.3): JPEG and JPEG 2000 decoders give RGB for colour
frames, samples are pixel-interleaved, the offset tables of the encapsulated form go, and a
lossy source stays marked lossy (Lossy Image Compression "01", PS3.3 C.7.6.1.1.5).
Elements after the pixel data (trailing padding, signatures) are not carried over.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterable, Iterator

import pydicom
from pydicom.uid import UID

from wsi.browser_jpeg import for_browser
from wsi.codecs import (
    CODECS,
    DEFLATED_LE,
    EXPLICIT_VR_LE,
    JPEG_BASELINE,
    NATIVE,
    RLE_LOSSLESS,
    PixelDescription,
    decode_frame,
    native_bytes,
)
from wsi.dicom.part10 import Part10Header
from wsi.errors import InvalidInput, Unsupported

_JPEG_8BIT = frozenset({JPEG_BASELINE, "1.2.840.10008.1.2.4.51"})
_JPEG_2000 = frozenset({
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.92",
    "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.201", "1.2.840.10008.1.2.4.202",
    "1.2.840.10008.1.2.4.203",
})
_LOSSY = frozenset({
    JPEG_BASELINE, "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.81",
    "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.93", "1.2.840.10008.1.2.4.203",
})
_OFFSET_TABLES = (0x7FE00001, 0x7FE00002)  # Extended Offset Table (Lengths), PS3.5 A.4
_PIXEL_DATA = 0x7FE00010
_MAX_VALUE_LENGTH = 0xFFFFFFFE


def can_decompress(transfer_syntax_uid: str) -> bool:
    """True if instances stored in this syntax can be sent as Explicit VR Little Endian."""
    if transfer_syntax_uid == DEFLATED_LE:
        return False  # its header offsets describe deflated bytes; decoding needs it all
    codec = CODECS.get(transfer_syntax_uid)
    return transfer_syntax_uid in NATIVE or transfer_syntax_uid == RLE_LOSSLESS or (
        codec is not None and codec.decode is not None
    )


def explicit_vr_little_endian(header: Part10Header, frames: Iterable[bytes]) -> Iterator[bytes]:
    """The instance as an Explicit VR Little Endian Part 10 file, in pieces.

    ``frames`` yields the stored frames in order (it is not consumed when the instance has
    no pixel data). Raises :class:`Unsupported` before anything is yielded when the pixels
    cannot be decoded or would not fit one native Pixel Data value.
    """
    stored = header.transfer_syntax_uid
    if not can_decompress(stored):
        raise Unsupported(f"instances in transfer syntax {stored} cannot be decompressed")
    dataset = header.dataset
    plan = _PixelPlan(dataset, stored) if header.pixel_data is not None else None
    for tag in _OFFSET_TABLES:
        if tag in dataset:
            del dataset[tag]
    if plan is not None:
        plan.update(dataset)
    dataset.file_meta.TransferSyntaxUID = UID(EXPLICIT_VR_LE)
    head = io.BytesIO()
    pydicom.dcmwrite(head, dataset, enforce_file_format=True, implicit_vr=False,
                     little_endian=True)
    if plan is None:
        yield head.getvalue()
        return
    yield head.getvalue() + plan.element_header()
    written = 0
    for number, frame in enumerate(frames, start=1):
        if number > plan.frames:
            break
        data = plan.decode(frame)
        written += len(data)
        yield data
    if written != plan.value_bytes:
        raise InvalidInput(f"decoded {written} bytes of pixel data, expected {plan.value_bytes}")
    if plan.value_bytes % 2:
        yield b"\x00"


class _PixelPlan:
    """What the decoded pixel data will be, worked out from the header before any frame."""

    def __init__(self, dataset: pydicom.Dataset, stored: str) -> None:
        try:
            self.pixels = PixelDescription(
                rows=int(dataset.Rows), columns=int(dataset.Columns),
                samples_per_pixel=int(dataset.get("SamplesPerPixel", 1)),
                bits_allocated=int(dataset.BitsAllocated),
                pixel_representation=int(dataset.get("PixelRepresentation", 0)),
                planar_configuration=int(dataset.get("PlanarConfiguration", 0) or 0),
            )
            self.frames = int(dataset.get("NumberOfFrames", 1) or 1)
        except (AttributeError, TypeError, ValueError) as exc:
            raise InvalidInput(f"image pixel attributes missing or invalid: {exc}") from exc
        if self.pixels.bits_allocated not in (8, 16, 32):
            raise Unsupported(f"cannot decompress {self.pixels.bits_allocated}-bit pixels")
        self.stored = stored
        self.stored_photometric = str(dataset.get("PhotometricInterpretation", ""))
        self.photometric = self.stored_photometric
        colour = self.pixels.samples_per_pixel == 3
        if colour and (stored in _JPEG_8BIT or (
                stored in _JPEG_2000 and self.photometric.startswith("YBR"))):
            self.photometric = "RGB"  # the decoders apply the colour transform
        self.frame_bytes = (self.pixels.rows * self.pixels.columns
                            * self.pixels.samples_per_pixel * self.pixels.bits_allocated // 8)
        self.value_bytes = self.frame_bytes * self.frames
        if self.value_bytes + 1 > _MAX_VALUE_LENGTH:
            raise Unsupported(
                f"decompressed pixel data would be {self.value_bytes} bytes, more than one "
                "Pixel Data value can hold (4 GiB)"
            )
        self.lossy = stored in _LOSSY

    def update(self, dataset: pydicom.Dataset) -> None:
        """Make the Image Pixel module describe the decoded pixels."""
        if self.photometric:
            dataset.PhotometricInterpretation = self.photometric
        if self.pixels.samples_per_pixel > 1:
            dataset.PlanarConfiguration = 0
        if self.lossy and dataset.get("LossyImageCompression") != "01":
            dataset.LossyImageCompression = "01"

    def element_header(self) -> bytes:
        """(7FE0,0010) with VR OB or OW and the explicit length (PS3.5 §7.1.2, A.2)."""
        vr = b"OB" if self.pixels.bits_allocated <= 8 else b"OW"
        length = self.value_bytes + self.value_bytes % 2
        return struct.pack("<HH2sHI", _PIXEL_DATA >> 16, _PIXEL_DATA & 0xFFFF, vr, 0, length)

    def decode(self, frame: bytes) -> bytes:
        if self.stored in _JPEG_8BIT:
            # Decode the colours a browser would show (Aperio RGB-in-JPEG gets its marker).
            frame = for_browser(frame, self.stored_photometric) or frame
        array = decode_frame(frame, self.stored, self.pixels)
        data = native_bytes(array)
        if len(data) != self.frame_bytes:  # e.g. 16-bit samples where BitsAllocated says 8
            raise InvalidInput(
                f"a frame decodes to {array.shape} {array.dtype} samples ({len(data)} bytes), "
                f"the header describes {self.frame_bytes} bytes"
            )
        return data
