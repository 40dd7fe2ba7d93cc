"""WADO-RS: instances, metadata, frames, bulk data, rendered, plus delete, CORS and OpenAPI."""

from __future__ import annotations

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

OCTET_ANY = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
JPEG_PARTS = 'multipart/related; type="image/jpeg"'


def _store(http: httpx.Client, raw: list[bytes]) -> None:
    body, content_type = multipart(raw)
    response = http.post("/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def wsi_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("wsi") / "level.dcm"
    return write_wsi_level(path, width=1000, height=700, tile=256, study_uid=generate_uid())


@pytest.fixture(scope="module")
def wsi(server: Server, wsi_file: Path) -> pydicom.Dataset:
    with httpx.Client(base_url=server.dicomweb, timeout=60) as client:
        _store(client, [wsi_file.read_bytes()])
    return pydicom.dcmread(wsi_file)


def _instance_path(ds: pydicom.Dataset) -> str:
    return (f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}")


def test_retrieve_instance_is_byte_identical(http: httpx.Client, wsi: pydicom.Dataset,
                                             wsi_file: Path) -> None:
    response = http.get(_instance_path(wsi))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("multipart/related")
    ((headers, body),) = parse_multipart(response.headers["content-type"], response.content)
    assert headers["content-type"] == (
        "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50"
    )
    assert body == wsi_file.read_bytes()


def test_retrieve_study_and_series_with_dicomweb_client(server: Server, http: httpx.Client
                                                        ) -> None:
    study = generate_uid()
    first = fresh_copy("CT_small.dcm", study_uid=study)
    second = fresh_copy("MR_small.dcm", study_uid=study)
    _store(http, [to_bytes(first), to_bytes(second)])
    client = DICOMwebClient(server.dicomweb)

    whole = client.retrieve_study(study)
    series = client.retrieve_series(study, second.SeriesInstanceUID)

    assert {ds.SOPInstanceUID for ds in whole} == {first.SOPInstanceUID, second.SOPInstanceUID}
    assert [ds.SOPInstanceUID for ds in series] == [second.SOPInstanceUID]
    assert np.array_equal(series[0].pixel_array, second.pixel_array)


def test_metadata_round_trip(server: Server, http: httpx.Client) -> None:
    ds = fresh_copy("CT_small.dcm")
    _store(http, [to_bytes(ds)])
    client = DICOMwebClient(server.dicomweb)

    (meta,) = client.retrieve_series_metadata(ds.StudyInstanceUID, ds.SeriesInstanceUID)
    restored = pydicom.Dataset.from_json(meta)

    for element in ds:
        if element.tag.group in (0x0002, 0x7FE0) or element.VR in ("OB", "OW", "UN", "SQ"):
            continue
        assert restored[element.tag].value == element.value, element.keyword
    pixel_uri = meta["7FE00010"]["BulkDataURI"]
    assert pixel_uri.startswith(server.dicomweb + _instance_path(ds))
    pixel = http.get(pixel_uri, headers={"Accept": OCTET_ANY})
    ((_, data),) = parse_multipart(pixel.headers["content-type"], pixel.content)
    assert data == ds.PixelData


def test_bulkdata_of_a_nested_binary_value(http: httpx.Client) -> None:
    ds = fresh_copy("CT_small.dcm")
    item = pydicom.Dataset()
    item.OpticalPathIdentifier = "1"
    item.ICCProfile = np.random.default_rng(1).bytes(5000)
    ds.OpticalPathSequence = [item]
    _store(http, [to_bytes(ds)])
    meta = http.get(_instance_path(ds) + "/metadata").json()[0]
    uri = meta["00480105"]["Value"][0]["00282000"]["BulkDataURI"]

    single = http.get(uri, headers={"Accept": "application/octet-stream"})
    parts = http.get(uri, headers={"Accept": 'multipart/related; type="application/octet-stream"'})

    assert uri.endswith("/bulkdata/00480105/0/00282000")
    assert single.status_code == 200 and single.content == item.ICCProfile
    ((_, body),) = parse_multipart(parts.headers["content-type"], parts.content)
    assert body == item.ICCProfile
    assert http.get(uri.replace("/0/", "/7/")).status_code == 404


def test_frames_are_byte_identical_to_the_stored_frames(
    http: httpx.Client, wsi: pydicom.Dataset
) -> None:
    stored = list(generate_frames(wsi.PixelData, number_of_frames=int(wsi.NumberOfFrames)))
    numbers = list(range(1, len(stored) + 1))

    octet = http.get(f"{_instance_path(wsi)}/frames/{','.join(map(str, numbers))}",
                     headers={"Accept": OCTET_ANY})
    jpeg = http.get(f"{_instance_path(wsi)}/frames/2", headers={"Accept": JPEG_PARTS})
    single = http.get(f"{_instance_path(wsi)}/frames/3", headers={"Accept": "image/jpeg"})

    parts = parse_multipart(octet.headers["content-type"], octet.content)
    assert [body for _, body in parts] == stored
    assert parts[0][0]["content-type"] == (
        "application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.50"
    )
    ((jpeg_headers, jpeg_body),) = parse_multipart(jpeg.headers["content-type"], jpeg.content)
    assert jpeg_headers["content-type"].startswith("image/jpeg")
    assert jpeg_body == stored[1]
    assert single.headers["content-type"].startswith("image/jpeg") and single.content == stored[2]


def test_frames_decoded_for_plain_octet_stream(http: httpx.Client, wsi: pydicom.Dataset) -> None:
    response = http.get(f"{_instance_path(wsi)}/frames/1",
                        headers={"Accept": 'multipart/related; type="application/octet-stream"'})

    ((headers, body),) = parse_multipart(response.headers["content-type"], response.content)
    assert headers["content-type"].endswith("transfer-syntax=1.2.840.10008.1.2.1")
    assert len(body) == 256 * 256 * 3
    first = next(generate_frames(wsi.PixelData, number_of_frames=int(wsi.NumberOfFrames)))
    expected = imagecodecs.jpeg8_decode(first)
    assert np.array_equal(np.frombuffer(body, np.uint8).reshape(256, 256, 3), expected)


def test_frames_errors(http: httpx.Client, wsi: pydicom.Dataset) -> None:
    path = _instance_path(wsi)

    outside = http.get(f"{path}/frames/999", headers={"Accept": OCTET_ANY})
    zero = http.get(f"{path}/frames/0")
    junk = http.get(f"{path}/frames/a,b")
    not_acceptable = http.get(f"{path}/frames/1", headers={"Accept": "image/jp2"})
    unknown = http.get("/studies/1.2.3/series/4.5.6/instances/7.8.9/frames/1")

    assert outside.status_code == 404 and "outside" in outside.json()["error"]
    assert zero.status_code == 400 and junk.status_code == 400
    assert not_acceptable.status_code == 406
    assert unknown.status_code == 404


def test_frames_of_compressed_and_native_pydicom_files(http: httpx.Client) -> None:
    rle = fresh_copy("SC_rgb_rle_2frame.dcm")
    native = fresh_copy("CT_small.dcm")
    _store(http, [to_bytes(rle), to_bytes(native)])

    rle_frames = http.get(f"{_instance_path(rle)}/frames/1,2", headers={"Accept": OCTET_ANY})
    rle_decoded = http.get(f"{_instance_path(rle)}/frames/2",
                           headers={"Accept": "application/octet-stream"})
    native_frame = http.get(f"{_instance_path(native)}/frames/1")

    expected = list(generate_frames(rle.PixelData, number_of_frames=2))
    parts = parse_multipart(rle_frames.headers["content-type"], rle_frames.content)
    assert [body for _, body in parts] == expected
    decoded = np.frombuffer(rle_decoded.content, np.uint8).reshape(100, 100, 3)
    assert np.array_equal(decoded, rle.pixel_array[1])
    ((_, native_body),) = parse_multipart(native_frame.headers["content-type"],
                                          native_frame.content)
    assert native_body == native.PixelData


def test_rendered_and_thumbnails(http: httpx.Client, wsi: pydicom.Dataset) -> None:
    ct = fresh_copy("CT_small.dcm")
    _store(http, [to_bytes(ct)])

    png = http.get(f"{_instance_path(ct)}/rendered", headers={"Accept": "image/png"})
    jpeg = http.get(f"{_instance_path(ct)}/rendered", params={"window": "40,400"})
    thumb = http.get(f"/studies/{ct.StudyInstanceUID}/series/{ct.SeriesInstanceUID}/thumbnail",
                     params={"viewport": "64,64"})
    frame = http.get(f"{_instance_path(wsi)}/frames/1/rendered", headers={"Accept": "image/jpeg"})
    refused = http.get(f"{_instance_path(ct)}/rendered", headers={"Accept": "image/gif"})

    assert png.headers["content-type"] == "image/png"
    image = imagecodecs.png_decode(png.content)
    assert image.shape == (128, 128) and image.min() < image.max()
    assert jpeg.headers["content-type"] == "image/jpeg"
    assert imagecodecs.jpeg8_decode(jpeg.content).shape == (128, 128)
    assert max(imagecodecs.jpeg8_decode(thumb.content).shape[:2]) <= 64
    assert imagecodecs.jpeg8_decode(frame.content).shape == (256, 256, 3)
    assert refused.status_code == 406


def test_delete_study_series_instance(server: Server, http: httpx.Client) -> None:
    study = generate_uid()
    a = fresh_copy("CT_small.dcm", study_uid=study)
    b = fresh_copy("MR_small.dcm", study_uid=study)
    c = fresh_copy("MR_small.dcm", study_uid=study)
    c.SeriesInstanceUID = b.SeriesInstanceUID
    _store(http, [to_bytes(a), to_bytes(b), to_bytes(c)])
    files_before = len(list((server.data_dir / "instances").rglob("*.dcm")))

    one = http.delete(_instance_path(c))
    series = http.delete(f"/studies/{study}/series/{b.SeriesInstanceUID}")
    remaining = http.get(f"/studies/{study}/instances").json()
    whole = http.delete(f"/studies/{study}")
    again = http.delete(f"/studies/{study}")

    assert one.status_code == 204 and series.status_code == 204 and whole.status_code == 204
    assert [i["00080018"]["Value"][0] for i in remaining] == [a.SOPInstanceUID]
    assert http.get("/studies", params={"StudyInstanceUID": study}).json() == []
    assert http.get(_instance_path(a)).status_code == 404
    assert again.status_code == 404
    assert len(list((server.data_dir / "instances").rglob("*.dcm"))) == files_before - 3


def test_cors_and_openapi(server: Server) -> None:
    preflight = httpx.options(
        f"{server.dicomweb}/studies",
        headers={"Origin": "http://viewer.example", "Access-Control-Request-Method": "GET"},
    )
    simple = httpx.get(f"{server.dicomweb}/studies", params={"limit": 1},
                       headers={"Origin": "http://viewer.example"})
    schema = httpx.get(f"{server.url}/schema/openapi.json")

    assert preflight.status_code in (200, 204)
    assert simple.headers["access-control-allow-origin"] in ("*", "http://viewer.example")
    assert schema.status_code == 200
    assert "/dicom-web/studies" in schema.json()["paths"]


def test_instances_not_acceptable_in_other_transfer_syntax(
    http: httpx.Client, wsi: pydicom.Dataset
) -> None:
    response = http.get(_instance_path(wsi), headers={  # JPEG-LS: no encoding on the fly
        "Accept": 'multipart/related; type="application/dicom"; '
                  "transfer-syntax=1.2.840.10008.1.2.4.80"
    })

    assert response.status_code == 406


def test_metadata_urls_follow_forwarded_headers(http: httpx.Client, wsi: pydicom.Dataset
                                                ) -> None:
    meta = http.get(_instance_path(wsi) + "/metadata", headers={
        "X-Forwarded-Proto": "https", "X-Forwarded-Host": "pacs.example.org"}).json()[0]

    assert meta["7FE00010"]["BulkDataURI"].startswith("https://pacs.example.org/dicom-web/")


