"""Helpers shared by the sample generators."""

from __future__ import annotations

import functools
import io
from datetime import datetime

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

IMPLEMENTATION_VERSION_NAME = "WSI_SAMPLES_1"


def dicom_date(value: datetime) -> str:
    """Return ``value`` as a DICOM DA string (YYYYMMDD)."""
    return value.strftime("%Y%m%d")


def dicom_time(value: datetime) -> str:
    """Return ``value`` as a DICOM TM string (HHMMSS.ffffff)."""
    return value.strftime("%H%M%S.%f")


def dicom_datetime(value: datetime) -> str:
    """Return ``value`` as a DICOM DT string (YYYYMMDDHHMMSS.ffffff)."""
    return value.strftime("%Y%m%d%H%M%S.%f")


@functools.cache
def srgb_icc_profile() -> bytes | None:
    """Return an sRGB ICC profile made by Pillow's littleCMS, or ``None`` if unavailable."""
    try:
        from PIL import ImageCms

        return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    except (ImportError, OSError):
        return None


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """Return a Code Sequence Macro item (CodeValue, CodingSchemeDesignator, CodeMeaning)."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str) -> FileMetaDataset:
    """Return a Part 10 File Meta Information dataset."""
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


def encode_preamble_and_meta(meta: FileMetaDataset) -> bytes:
    """Return the 128-byte preamble, ``DICM`` prefix and encoded File Meta Information."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_file_meta_info(fp, meta, enforce_standard=True)
    return b"\x00" * 128 + b"DICM" + fp.getvalue()


def encode_explicit_le(ds: Dataset, character_set: str | list[str] = "iso8859") -> bytes:
    """Return the elements of ``ds`` encoded as Explicit VR Little Endian (no file meta).

    ``character_set`` is the Specific Character Set in force for ``ds``: a fragment of a
    larger dataset does not carry (0008,0005) itself but its strings must be encoded with it.
    """
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds, parent_encoding=character_set)
    return fp.getvalue()


def encode_part10_header(ds: Dataset) -> bytes:
    """Return a complete Part 10 encoding (preamble, meta, dataset) of ``ds`` as bytes.

    ``ds.file_meta`` must be set; the dataset is written Explicit VR Little Endian, which is
    the encoding of every transfer syntax used by these samples (native or encapsulated).
    """
    buffer = io.BytesIO()
    buffer.write(encode_preamble_and_meta(ds.file_meta))
    buffer.write(encode_explicit_le(ds, ds.get("SpecificCharacterSet", "iso8859")))
    return buffer.getvalue()
