"""Helpers shared by tests: DICOM test data with fresh UIDs and multipart bodies."""

from __future__ import annotations

import io
import uuid
from pathlib import Path

import pydicom
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

PYDICOM_FILES = [
    "CT_small.dcm",
    "MR_small.dcm",
    "SC_rgb_jpeg_dcmtk.dcm",
    "JPEG2000.dcm",
    "SC_rgb_rle_2frame.dcm",
    "rtplan.dcm",
    "693_J2KI.dcm",
    "SC_rgb_small_odd.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_jpeg_ls_lossless.dcm",
    "image_dfl.dcm",
    "rtdose.dcm",
    "waveform_ecg.dcm",
    "test-SR.dcm",
]


def testdata(name: str) -> Path:
    """Path of one of pydicom's bundled test files."""
    path = get_testdata_file(name)
    assert path is not None, name
    return Path(path)


def fresh_copy(name: str, study_uid: str | None = None, patient_id: str | None = None,
               **attributes: object) -> Dataset:
    """A pydicom test file with new study/series/instance UIDs (tests stay independent)."""
    ds = pydicom.dcmread(testdata(name))
    ds.StudyInstanceUID = study_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    if patient_id is not None:
        ds.PatientID = patient_id
    for keyword, value in attributes.items():
        setattr(ds, keyword, value)
    return ds


def to_bytes(ds: Dataset) -> bytes:
    """Part 10 bytes of a dataset, written as it is."""
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def multipart(parts: list[bytes], part_type: str = "application/dicom") -> tuple[bytes, str]:
    """A multipart/related body and its Content-Type header."""
    boundary = uuid.uuid4().hex
    body = b"".join(
        f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode() + part + b"\r\n"
        for part in parts
    ) + f"--{boundary}--\r\n".encode()
    return body, f'multipart/related; type="{part_type}"; boundary={boundary}'


def parse_multipart(content_type: str, body: bytes) -> list[tuple[dict[str, str], bytes]]:
    """Parts of a multipart response, with our own streaming reader."""
    from dicomweb.multipart import MultipartReader, PartData, PartEnd, PartStart, parse_content_type

    _, params = parse_content_type(content_type)
    reader = MultipartReader(params["boundary"])
    parts: list[tuple[dict[str, str], bytes]] = []
    headers: dict[str, str] = {}
    chunks: list[bytes] = []
    for event in [*reader.feed(body), *reader.close()]:
        if isinstance(event, PartStart):
            headers, chunks = event.headers, []
        elif isinstance(event, PartData):
            chunks.append(event.data)
        elif isinstance(event, PartEnd):
            parts.append((headers, b"".join(chunks)))
    return parts
