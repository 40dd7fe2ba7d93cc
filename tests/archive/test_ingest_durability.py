"""Ingest is atomic across a killed server, and the conflict policy is a setting."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.conftest import start_server, stop_server
from tests.support import fresh_copy, multipart, to_bytes


def test_killed_during_upload_leaves_nothing_and_restarts_clean(tmp_path: Path) -> None:
    data = tmp_path / "data"
    server = start_server(data)
    ds = fresh_copy("CT_small.dcm")
    raw = to_bytes(ds)
    boundary = uuid.uuid4().hex
    sent = threading.Event()

    def body() -> Iterator[bytes]:
        yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
        yield raw[: len(raw) // 2]
        sent.set()
        time.sleep(30)  # never finishes: the server is killed meanwhile
        yield raw[len(raw) // 2 :]

    def upload() -> None:
        # The server dies mid-request, so the client's failure is the expected outcome.
        with contextlib.suppress(httpx.HTTPError):
            httpx.post(f"{server.dicomweb}/studies", content=body(), timeout=60, headers={
                "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}'
            })

    thread = threading.Thread(target=upload, daemon=True)
    thread.start()
    assert sent.wait(10)
    time.sleep(0.5)
    staged_while_running = list((data / "staging").iterdir())
    server.process.send_signal(signal.SIGKILL)
    server.process.wait()

    restarted = start_server(data)
    try:
        found = httpx.get(f"{restarted.dicomweb}/studies/{ds.StudyInstanceUID}/instances")
        staging_after = list((data / "staging").iterdir())
    finally:
        stop_server(restarted)

    assert len(staged_while_running) == 1  # the half-received instance was being staged
    assert found.status_code == 200 and found.json() == []
    assert staging_after == []
    assert not list((data / "instances").rglob("*.dcm"))


def test_overwrite_policy_replaces_the_instance(tmp_path: Path) -> None:
    server = start_server(tmp_path / "data", "--on-conflict", "overwrite")
    try:
        ds = fresh_copy("CT_small.dcm", PatientName="Before^Change")
        body, content_type = multipart([to_bytes(ds)])
        first = httpx.post(f"{server.dicomweb}/studies", content=body,
                           headers={"Content-Type": content_type})
        ds.PatientName = "After^Change"
        ds.SeriesDescription = "changed"
        body, content_type = multipart([to_bytes(ds)])
        second = httpx.post(f"{server.dicomweb}/studies", content=body,
                            headers={"Content-Type": content_type})
        series = httpx.get(f"{server.dicomweb}/studies/{ds.StudyInstanceUID}/series").json()
        files = list((server.data_dir / "instances").rglob("*.dcm"))
    finally:
        stop_server(server)

    assert first.status_code == 200 and second.status_code == 200
    assert series[0]["0008103E"]["Value"] == ["changed"]
    assert len(files) == 1 and b"After^Change" in files[0].read_bytes()
