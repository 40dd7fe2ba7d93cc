"""STOW-RS against the real server: success, duplicates, and every bad-input case."""

from __future__ import annotations

import httpx
import pydicom
from dicomweb_client import DICOMwebClient
from pydicom.uid import generate_uid

from tests.conftest import Server
from tests.support import PYDICOM_FILES, fresh_copy, multipart, to_bytes

FAILED = "00081198"
REFERENCED = "00081199"
FAILURE_REASON = "00081197"


def _instances_of_study(http: httpx.Client, study: str) -> list[dict]:
    response = http.get(f"/studies/{study}/instances")
    assert response.status_code == 200
    return response.json()


def _staging_is_empty(server: Server) -> bool:
    return not any((server.data_dir / "staging").iterdir())


def test_store_pydicom_files_with_dicomweb_client(server: Server) -> None:
    client = DICOMwebClient(server.dicomweb)
    study = generate_uid()
    datasets = [fresh_copy(name, study_uid=study) for name in PYDICOM_FILES]

    response = client.store_instances(datasets)

    assert FAILED not in response
    stored = {item.ReferencedSOPInstanceUID for item in response.ReferencedSOPSequence}
    assert stored == {ds.SOPInstanceUID for ds in datasets}
    found = client.search_for_instances(study_instance_uid=study)
    assert {f["00080018"]["Value"][0] for f in found} == stored


def test_identical_duplicate_succeeds_and_changes_nothing(http: httpx.Client) -> None:
    ds = fresh_copy("CT_small.dcm")
    body, content_type = multipart([to_bytes(ds)])

    first = http.post("/studies", content=body, headers={"Content-Type": content_type})
    second = http.post("/studies", content=body, headers={"Content-Type": content_type})

    assert first.status_code == 200 and second.status_code == 200
    assert len(_instances_of_study(http, ds.StudyInstanceUID)) == 1


def test_different_bytes_for_same_uid_is_rejected(server: Server, http: httpx.Client) -> None:
    ds = fresh_copy("CT_small.dcm")
    body, content_type = multipart([to_bytes(ds)])
    assert http.post("/studies", content=body, headers={"Content-Type": content_type}
                     ).status_code == 200
    ds.PatientName = "Changed^Name"
    body2, content_type2 = multipart([to_bytes(ds)])

    response = http.post("/studies", content=body2, headers={"Content-Type": content_type2})

    assert response.status_code == 409
    failed = response.json()[FAILED]["Value"][0]
    assert failed[FAILURE_REASON]["Value"] == [0x0111]
    assert failed["00081155"]["Value"] == [ds.SOPInstanceUID]
    stored = http.get(f"/studies/{ds.StudyInstanceUID}/instances",
                      params={"includefield": "PatientName"}).json()
    assert stored[0]["00100010"]["Value"][0]["Alphabetic"] != "Changed^Name"
    assert _staging_is_empty(server)


def test_instance_of_other_study_fails_alone(http: httpx.Client) -> None:
    study = generate_uid()
    good = fresh_copy("CT_small.dcm", study_uid=study)
    other = fresh_copy("MR_small.dcm")
    body, content_type = multipart([to_bytes(good), to_bytes(other)])

    response = http.post(f"/studies/{study}", content=body,
                         headers={"Content-Type": content_type})

    assert response.status_code == 202
    payload = response.json()
    assert [i["00081155"]["Value"][0] for i in payload[REFERENCED]["Value"]] == [
        good.SOPInstanceUID
    ]
    failed = payload[FAILED]["Value"][0]
    assert failed["00081155"]["Value"] == [other.SOPInstanceUID]
    assert failed[FAILURE_REASON]["Value"] == [0xA900]
    assert http.get(f"/studies/{other.StudyInstanceUID}/instances").json() == []


def test_non_dicom_and_truncated_parts_fail_without_trace(
    server: Server, http: httpx.Client
) -> None:
    good = fresh_copy("CT_small.dcm")
    truncated_ds = fresh_copy("CT_small.dcm")
    truncated = to_bytes(truncated_ds)[:-5000]
    body, content_type = multipart([b"this is not DICOM at all", truncated, to_bytes(good)])

    response = http.post("/studies", content=body, headers={"Content-Type": content_type})

    assert response.status_code == 202
    failed = response.json()[FAILED]["Value"]
    assert len(failed) == 2
    assert all(f[FAILURE_REASON]["Value"] == [0xC000] for f in failed)
    assert http.get(f"/studies/{truncated_ds.StudyInstanceUID}/instances").json() == []
    assert len(_instances_of_study(http, good.StudyInstanceUID)) == 1
    assert _staging_is_empty(server)


def test_all_parts_failing_is_409(http: httpx.Client) -> None:
    body, content_type = multipart([b"garbage"])

    response = http.post("/studies", content=body, headers={"Content-Type": content_type})

    assert response.status_code == 409
    assert response.json()[FAILED]["Value"][0][FAILURE_REASON]["Value"] == [0xC000]


def test_wrong_content_types_are_415(http: httpx.Client) -> None:
    ds = to_bytes(fresh_copy("CT_small.dcm"))
    body, _ = multipart([ds])

    plain = http.post("/studies", content=ds, headers={"Content-Type": "application/dicom"})
    json_type = http.post("/studies", content=body, headers={
        "Content-Type": 'multipart/related; type="application/dicom+json"; boundary=x'})
    missing = http.post("/studies", content=body)

    assert plain.status_code == 415
    assert json_type.status_code == 415
    assert missing.status_code == 415
    assert "error" in plain.json()


def test_malformed_and_truncated_multipart_are_400(server: Server, http: httpx.Client) -> None:
    ds = fresh_copy("CT_small.dcm")
    body, content_type = multipart([to_bytes(ds)])

    no_boundary = http.post("/studies", content=body,
                            headers={"Content-Type": 'multipart/related; type="application/dicom"'})
    cut = http.post("/studies", content=body[: len(body) // 2],
                    headers={"Content-Type": content_type})
    no_delimiter = http.post("/studies", content=b"x" * 1000,
                             headers={"Content-Type": content_type})

    assert no_boundary.status_code == 400
    assert cut.status_code == 400 and "truncated" in cut.json()["error"]
    assert no_delimiter.status_code == 400
    assert http.get(f"/studies/{ds.StudyInstanceUID}/instances").json() == []
    assert _staging_is_empty(server)
    assert http.get("/studies", params={"limit": 1}).status_code == 200


def test_path_like_and_invalid_uids_are_400(http: httpx.Client) -> None:
    body, content_type = multipart([to_bytes(fresh_copy("CT_small.dcm"))])

    traversal = http.post("/studies/..%2F..%2Fetc", content=body,
                          headers={"Content-Type": content_type})
    dotted = http.post("/studies/1..2", content=body, headers={"Content-Type": content_type})
    letters = http.get("/studies/abc.def/series")
    dotdot = http.get("/studies/1.2.3/series/..%2F..%2Fsecret/instances")
    frames = http.get("/studies/1.2.3/series/1.2.3/instances/..%2Fx/frames/1")

    # uvicorn decodes %2F before routing, so these no longer match a route at all.
    assert traversal.status_code == 404 and "error" in traversal.json()
    assert dotdot.status_code == 404
    assert frames.status_code == 404
    assert dotted.status_code == 400 and "invalid" in dotted.json()["error"]
    assert letters.status_code == 400


def test_instance_with_invalid_uid_fails(http: httpx.Client) -> None:
    ds = fresh_copy("CT_small.dcm")
    ds.SOPInstanceUID = "../../evil"
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3"
    body, content_type = multipart([to_bytes(ds)])

    response = http.post("/studies", content=body, headers={"Content-Type": content_type})

    assert response.status_code == 409
    assert response.json()[FAILED]["Value"][0][FAILURE_REASON]["Value"] == [0xC000]


def test_stored_file_is_byte_identical(http: httpx.Client, server: Server) -> None:
    ds = fresh_copy("SC_rgb_jpeg_dcmtk.dcm")
    raw = to_bytes(ds)
    body, content_type = multipart([raw])
    assert http.post("/studies", content=body, headers={"Content-Type": content_type}
                     ).status_code == 200

    files = [p for p in (server.data_dir / "instances").rglob("*.dcm")
             if pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID == ds.SOPInstanceUID]

    assert len(files) == 1 and files[0].read_bytes() == raw
