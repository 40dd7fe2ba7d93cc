"""REST /api/modalities: echo, store to, find on and move from remote DICOM peers."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.conftest import Server, free_port, start_server, stop_server
from tests.e2e.conftest import DEST_AE, StoreScp, wait_for_echo
from tests.support import fresh_copy, multipart, to_bytes

pytestmark = pytest.mark.skipif(shutil.which("storescp") is None, reason="DCMTK is missing")


@dataclass
class Setup:
    server: Server
    api: httpx.Client
    storescp: StoreScp


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, storescp: StoreScp) -> Iterator[Setup]:
    own_port = free_port()
    server = start_server(
        tmp_path_factory.mktemp("modalities") / "data", "--dicom-port", str(own_port),
        env={"WSI_MODALITIES": f"{DEST_AE}@127.0.0.1:{storescp.port},"
                               f"SELF@127.0.0.1:{own_port},DOWN@127.0.0.1:{free_port()}"},
    )
    try:
        wait_for_echo(own_port, "WSIARCHIVE")
        with httpx.Client(base_url=server.url, timeout=60) as api:
            yield Setup(server, api, storescp)
    finally:
        stop_server(server)


def _store(api: httpx.Client, *datasets: object) -> None:
    body, content_type = multipart([to_bytes(ds) for ds in datasets])  # type: ignore[arg-type]
    response = api.post("/dicom-web/studies", content=body, headers={"Content-Type": content_type})
    assert response.status_code == 200, response.text


def test_list_and_echo(setup: Setup) -> None:
    listed = setup.api.get("/api/modalities").json()
    echo = setup.api.post(f"/api/modalities/{DEST_AE}/echo")
    unknown = setup.api.post("/api/modalities/NOPE/echo")
    down = setup.api.post("/api/modalities/DOWN/echo")

    assert {m["ae_title"] for m in listed} == {DEST_AE, "SELF", "DOWN"}
    assert echo.status_code == 200 and echo.json() == {"status": 0}
    assert unknown.status_code == 404
    assert down.status_code == 503 and "DOWN" in down.json()["error"]


def test_store_study_to_a_modality(setup: Setup) -> None:
    ds = fresh_copy("CT_small.dcm")
    _store(setup.api, ds)

    response = setup.api.post(f"/api/modalities/{DEST_AE}/store",
                              json={"study": ds.StudyInstanceUID})

    assert response.status_code == 200
    assert response.json() == {"completed": 1, "failed": 0, "warning": 0}
    received = setup.storescp.received()
    assert ds.SOPInstanceUID in received


def test_find_and_move_through_a_peer(setup: Setup, tmp_path: Path) -> None:
    ds = fresh_copy("MR_small.dcm", patient_id=f"API-{tmp_path.name[-6:]}")
    _store(setup.api, ds)

    found = setup.api.post("/api/modalities/SELF/find", json={
        "level": "STUDY", "query": {"PatientID": ds.PatientID}, "return_keys": ["StudyDate"]})
    moved = setup.api.post("/api/modalities/SELF/move", json={
        "level": "STUDY", "uids": [ds.StudyInstanceUID], "destination": DEST_AE})

    assert found.status_code == 200
    (match,) = found.json()
    assert match["0020000D"]["Value"] == [ds.StudyInstanceUID]
    assert match["00080020"]["Value"] == [ds.StudyDate]
    assert moved.status_code == 200 and moved.json()["completed"] == 1
    assert ds.SOPInstanceUID in setup.storescp.received()


def test_openapi_documents_the_modality_routes(setup: Setup) -> None:
    paths = setup.api.get("/schema/openapi.json").json()["paths"]

    assert "/api/modalities/{name}/move" in paths
