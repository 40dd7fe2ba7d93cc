"""Server-side conversion: upload a vendor slide, poll the job, find and fetch the series."""

from __future__ import annotations

import io
import subprocess
import sys
import time
import uuid
import zipfile
from pathlib import Path

import httpx
import imagecodecs
import pytest
from pydicom.uid import generate_uid

from samples.vendor_slides import write_mirax
from tests.conftest import SHARED_SLIDES, Server, start_server, stop_server

SVS = SHARED_SLIDES / "aperio" / "CMU-1-Small-Region.svs"
NDPI_DAPI = SHARED_SLIDES / "hamamatsu" / "test3-DAPI-2-(387).ndpi"


def _wait(api: httpx.Client, job_id: str, timeout: float = 180) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = api.get(f"/api/jobs/{job_id}").json()
        if job["state"] in ("done", "failed"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} did not finish")


def _studies_of(api: httpx.Client, patient_id: str) -> list[dict]:
    return api.get("/dicom-web/studies", params={"PatientID": patient_id}).json()


@pytest.fixture
def api(server: Server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=120)


def test_upload_converts_and_stores_one_series(api: httpx.Client, server: Server) -> None:
    patient = f"UP-{uuid.uuid4().hex[:8]}"
    with SVS.open("rb") as fh:
        response = api.post("/api/slides", files={"file": (SVS.name, fh)},
                            data={"patient_id": patient, "series_description": "uploaded"})

    assert response.status_code == 202
    assert response.headers["location"] == f"/api/jobs/{response.json()['id']}"
    job = _wait(api, response.json()["id"])
    assert job["state"] == "done", job
    series = api.get("/dicom-web/series", params={"PatientID": patient}).json()
    assert [s["0020000E"]["Value"][0] for s in series] == [job["series_uid"]]
    assert series[0]["0008103E"]["Value"] == ["uploaded"]
    instances = api.get("/dicom-web/instances", params={
        "SeriesInstanceUID": job["series_uid"], "includefield": "ImageType"}).json()
    assert len(instances) == job["instances"]
    base = next(i for i in instances if i["00080008"]["Value"][2:] == ["VOLUME", "NONE"])
    url = base["00081190"]["Value"][0] + "/frames/1"
    frame = api.get(url, headers={"Accept": "image/jpeg"})
    assert frame.status_code == 200
    assert imagecodecs.jpeg8_decode(frame.content).shape[2] == 3
    assert not list((server.data_dir / "conversions").iterdir())


def test_raw_upload_with_filename(api: httpx.Client) -> None:
    patient = f"RAW-{uuid.uuid4().hex[:8]}"

    response = api.post("/api/slides", content=SVS.read_bytes(),
                        params={"filename": SVS.name, "patient_id": patient},
                        headers={"Content-Type": "application/octet-stream"})

    assert response.status_code == 202
    assert _wait(api, response.json()["id"])["state"] == "done"
    assert len(_studies_of(api, patient)) == 1


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("empty.svs", b"", ""),
        ("notes.svs", b"this is a text file, not a slide\n" * 20, ""),
        ("cut.svs", SVS.read_bytes()[: 600_000], ""),
        ("slide.zip", _zip({"slide.mrxs": b"[GENERAL]\n"}), "data folder"),
        ("evil.zip", _zip({"../../escape.mrxs": b"x"}), "escapes"),
    ],
)
def test_bad_slides_fail_with_a_reason_and_store_nothing(
    api: httpx.Client, server: Server, name: str, content: bytes, reason: str
) -> None:
    patient = f"BAD-{uuid.uuid4().hex[:8]}"

    response = api.post("/api/slides", files={"file": (name, content)},
                        data={"patient_id": patient})

    assert response.status_code == 202
    job = _wait(api, response.json()["id"])
    assert job["state"] == "failed"
    assert job["error"] and reason in job["error"]
    assert "Traceback" not in job["error"]
    assert _studies_of(api, patient) == []
    assert not (server.data_dir / "conversions" / job["id"]).exists()
    assert not (server.data_dir.parent / "escape.mrxs").exists()


def _mrxs_zip(folder: Path, *, leave_out: str | None = None) -> bytes:
    """A synthetic MIRAX slide zipped as users send it: ``slide.mrxs`` and ``slide/``."""
    slide = write_mirax(folder / "slide.mrxs", 4, 3, zoom_levels=3)
    members = {slide.name: slide.read_bytes()}
    for path in sorted(slide.with_suffix("").iterdir()):
        if path.name != leave_out:
            members[f"{slide.stem}/{path.name}"] = path.read_bytes()
    return _zip(members)


def test_mrxs_zip_upload_converts_with_label_and_overview(
    api: httpx.Client, server: Server, tmp_path: Path
) -> None:
    patient = f"MRXS-{uuid.uuid4().hex[:8]}"

    response = api.post("/api/slides", files={"file": ("slide.zip", _mrxs_zip(tmp_path))},
                        data={"patient_id": patient})

    assert response.status_code == 202
    job = _wait(api, response.json()["id"])
    assert job["state"] == "done", job
    instances = api.get("/dicom-web/instances", params={
        "SeriesInstanceUID": job["series_uid"], "includefield": "ImageType"}).json()
    kinds = sorted(i["00080008"]["Value"][2] for i in instances)
    # 1024 x 768 in tiles of 256: levels of 1024, 512 and 256 pixels, then label and macro.
    assert kinds == ["LABEL", "OVERVIEW", "VOLUME", "VOLUME", "VOLUME"]
    assert not list((server.data_dir / "conversions").iterdir())


def test_mrxs_zip_without_its_index_fails_with_openslides_reason(
    api: httpx.Client, server: Server, tmp_path: Path
) -> None:
    patient = f"MRXS-{uuid.uuid4().hex[:8]}"

    response = api.post("/api/slides", data={"patient_id": patient}, files={
        "file": ("slide.zip", _mrxs_zip(tmp_path, leave_out="Index.dat"))})

    job = _wait(api, response.json()["id"])
    assert job["state"] == "failed"
    assert "Index.dat" in job["error"] and "Traceback" not in job["error"]
    assert _studies_of(api, patient) == []
    assert not (server.data_dir / "conversions" / job["id"]).exists()


def test_bad_requests_are_refused_before_any_job(api: httpx.Client, server: Server) -> None:
    before = set((server.data_dir / "conversions").iterdir())

    no_file = api.post("/api/slides", files={"patient_id": (None, "x")})
    unknown_field = api.post("/api/slides", files={"file": ("a.svs", b"x")},
                             data={"favourite_colour": "blue"})
    wrong_type = api.post("/api/slides", content=b"x", headers={"Content-Type": "text/plain"})
    raw_without_name = api.post("/api/slides", content=b"x",
                                headers={"Content-Type": "application/octet-stream"})
    unknown_job = api.get("/api/jobs/does-not-exist")

    assert no_file.status_code == 400 and "file" in no_file.json()["error"]
    assert unknown_field.status_code == 400 and "favourite_colour" in unknown_field.json()["error"]
    assert wrong_type.status_code == 415
    assert raw_without_name.status_code == 400
    assert unknown_job.status_code == 404
    assert set((server.data_dir / "conversions").iterdir()) == before




def test_cli_dicomize_store_uses_the_same_path(tmp_path: Path) -> None:
    data = tmp_path / "data"
    patient = f"CLI-{uuid.uuid4().hex[:8]}"

    done = subprocess.run(
        [sys.executable, "-m", "wsi", "dicomize", str(SVS), "--store", "--data-dir", str(data),
         "--patient-id", patient, "-q"], capture_output=True, text=True, timeout=300)
    server = start_server(data)
    try:
        series = httpx.get(f"{server.dicomweb}/series", params={"PatientID": patient}).json()
    finally:
        stop_server(server)

    assert done.returncode == 0, done.stderr
    assert "stored 8 instance(s)" in done.stderr
    assert len(series) == 1 and series[0]["00201209"]["Value"] == [8]
    assert not list((data / "conversions").iterdir())


def test_cli_dicomize_store_several_slides_into_one_study(tmp_path: Path) -> None:
    data = tmp_path / "data"
    study = generate_uid()
    not_a_slide = tmp_path / "notes.svs"
    not_a_slide.write_text("not a slide")

    done = subprocess.run(
        [sys.executable, "-m", "wsi", "dicomize", str(SVS), str(not_a_slide), str(NDPI_DAPI),
         "--store", "--data-dir", str(data), "--study-uid", study, "--levels", "source", "-q"],
        capture_output=True, text=True, timeout=300)
    server = start_server(data)
    try:
        series = httpx.get(f"{server.dicomweb}/studies/{study}/series").json()
    finally:
        stop_server(server)

    assert done.returncode == 2, done.stderr
    assert "wsi: notes.svs: " in done.stderr and "2 of 3 slides converted" in done.stderr
    # The SVS stores its base, label, overview and thumbnail; the NDPI 4 levels and a macro.
    assert sorted(s["00201209"]["Value"][0] for s in series) == [4, 5]
    assert not list((data / "conversions").iterdir())
