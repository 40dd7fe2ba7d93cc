"""WADO-RS instances in Explicit VR Little Endian: compressed instances decompressed on the fly.

Each compressed test file of pydicom has a twin holding the same pixels that pydicom decodes
itself (MR_small.dcm uncompressed; SC_rgb_rle.dcm with pydicom's own RLE decoder), so lossless
syntaxes must come back exactly equal to it.
"""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import imagecodecs
import numpy as np
import pydicom
import pytest
from dicomweb_client import DICOMwebClient
from pydicom.encaps import generate_frames
from pydicom.uid import generate_uid

from samples.wsi_level import write_wsi_level
from tests.conftest import Server
from tests.support import fresh_copy, multipart, parse_multipart, to_bytes
from tests.support import testdata as bundled

EXPLICIT = "1.2.840.10008.1.2.1"
ACCEPT_EXPLICIT = f'multipart/related; type="application/dicom"; transfer-syntax={EXPLICIT}'

LOSSLESS = [  # (file, uncompressed twin)
    ("MR_small_RLE.dcm", "MR_small.dcm"),
    ("MR_small_jpeg_ls_lossless.dcm", "MR_small.dcm"),
    ("MR_small_implicit.dcm", "MR_small.dcm"),
    ("MR_small_bigendian.dcm", "MR_small.dcm"),
    ("SC_rgb_rle.dcm", "SC_rgb_rle.dcm"),
    ("SC_rgb_jpeg_gdcm.dcm", "SC_rgb_rle.dcm"),
]


def _store(http: httpx.Client, datasets: list[pydicom.Dataset]) -> None:
    body, content_type = multipart([to_bytes(ds) for ds in datasets])
    response = http.post("/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


def _url(ds: pydicom.Dataset) -> str:
    return (f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}")


def _retrieve(http: httpx.Client, url: str, accept: str = ACCEPT_EXPLICIT
              ) -> list[tuple[dict[str, str], pydicom.Dataset]]:
    response = http.get(url, headers={"Accept": accept})
    assert response.status_code == 200, response.text
    return [(headers, pydicom.dcmread(io.BytesIO(body)))
            for headers, body in parse_multipart(response.headers["content-type"],
                                                 response.content)]


@pytest.mark.parametrize(("name", "twin"), LOSSLESS)
def test_lossless_instances_decompress_to_their_uncompressed_twin(
        http: httpx.Client, name: str, twin: str) -> None:
    original = fresh_copy(name)
    _store(http, [original])

    ((headers, ds),) = _retrieve(http, _url(original))

    assert headers["content-type"] == f"application/dicom; transfer-syntax={EXPLICIT}"
    assert ds.file_meta.TransferSyntaxUID == EXPLICIT
    assert not ds.is_implicit_VR and ds.is_little_endian
    assert ds.SOPInstanceUID == original.SOPInstanceUID
    assert ds.PatientName == original.PatientName
    reference = pydicom.dcmread(bundled(twin)).pixel_array
    np.testing.assert_array_equal(ds.pixel_array, reference)
    assert ds.PhotometricInterpretation == pydicom.dcmread(bundled(twin)).PhotometricInterpretation


def test_lossy_jpeg_becomes_rgb_and_stays_marked_lossy(http: httpx.Client) -> None:
    original = fresh_copy("SC_rgb_jpeg_dcmtk.dcm")
    _store(http, [original])

    ((_, ds),) = _retrieve(http, _url(original))

    assert ds.PhotometricInterpretation == "RGB"
    assert ds.LossyImageCompression == "01"
    reference = pydicom.dcmread(bundled("SC_rgb_rle.dcm")).pixel_array.astype(int)
    assert np.abs(ds.pixel_array.astype(int) - reference).mean() < 3


def test_multi_frame_wsi_level_decompresses_frame_by_frame(http: httpx.Client,
                                                           tmp_path: Path) -> None:
    path = write_wsi_level(tmp_path / "level.dcm", width=600, height=300, tile=256,
                           study_uid=generate_uid())
    original = pydicom.dcmread(path)
    _store(http, [original])

    ((_, ds),) = _retrieve(http, _url(original))

    stored = list(generate_frames(original.PixelData, number_of_frames=6))
    assert int(ds.NumberOfFrames) == 6
    assert "ExtendedOffsetTable" not in ds
    assert ds.PhotometricInterpretation == "RGB"
    assert ds.PlanarConfiguration == 0
    assert len(ds.PixelData) == 6 * 256 * 256 * 3
    pixels = ds.pixel_array
    for number in (0, 5):
        expected = imagecodecs.jpeg8_decode(stored[number]).astype(int)
        assert np.abs(pixels[number].astype(int) - expected).max() <= 1


def test_study_with_mixed_syntaxes_and_dicomweb_client(server: Server,
                                                       http: httpx.Client) -> None:
    study = generate_uid()
    native = fresh_copy("MR_small.dcm", study_uid=study)
    rle = fresh_copy("MR_small_RLE.dcm", study_uid=study)
    _store(http, [native, rle])
    client = DICOMwebClient(server.dicomweb)

    parts = _retrieve(http, f"/studies/{study}")
    instances = client.retrieve_study(study, media_types=(("application/dicom", EXPLICIT),))

    assert len(parts) == 2
    assert {ds.file_meta.TransferSyntaxUID for ds in instances} == {EXPLICIT}
    for _, ds in parts:
        np.testing.assert_array_equal(ds.pixel_array, native.pixel_array)


def test_as_stored_unless_asked_and_406_for_other_syntaxes(http: httpx.Client) -> None:
    original = fresh_copy("MR_small_RLE.dcm")
    _store(http, [original])

    ((headers, _),) = _retrieve(http, _url(original), 'multipart/related; type="application/dicom"')
    refused = http.get(_url(original), headers={
        "Accept": 'multipart/related; type="application/dicom"; '
                  "transfer-syntax=1.2.840.10008.1.2.4.50"})

    assert headers["content-type"].endswith("transfer-syntax=1.2.840.10008.1.2.5")
    assert refused.status_code == 406
    assert EXPLICIT in refused.json()["error"]
