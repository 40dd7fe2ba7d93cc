"""A ≥1 GB instance goes in by STOW-RS and out by WADO-RS while the server stays small."""

from __future__ import annotations

import hashlib
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pydicom
import pytest

from dicomweb.multipart import MultipartReader, PartData, PartEnd, parse_content_type
from samples.large_instance import frame_bytes_of, large_instance_frame_count, write_large_instance
from tests.conftest import Server
from tests.support import parse_multipart

pytestmark = pytest.mark.slow

TOTAL = 1_100_000_000
FRAME = 1_048_576
RSS_LIMIT = 300 * 1024 * 1024


class PeakRss:
    """Samples a process's resident set size every 20 ms in a background thread."""

    def __init__(self, pid: int) -> None:
        self._process = psutil.Process(pid)
        self.peak = self._process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, self._process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _multipart_stream(path: Path, boundary: str) -> Iterator[bytes]:
    yield f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
    with path.open("rb") as fh:
        while chunk := fh.read(4 * 1024 * 1024):
            yield chunk
    yield f"\r\n--{boundary}--\r\n".encode()


def test_gigabyte_instance_streams_in_and_out_with_flat_memory(
    server: Server, tmp_path: Path
) -> None:
    path = write_large_instance(tmp_path / "large.dcm", total_bytes=TOTAL, frame_bytes=FRAME)
    header = pydicom.dcmread(path, stop_before_pixels=True)
    frames = large_instance_frame_count(TOTAL, FRAME)
    base = (f"{server.dicomweb}/studies/{header.StudyInstanceUID}/series/"
            f"{header.SeriesInstanceUID}/instances/{header.SOPInstanceUID}")
    boundary = uuid.uuid4().hex
    source_hash = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(8 * 1024 * 1024):
            source_hash.update(chunk)

    with PeakRss(server.process.pid) as rss, httpx.Client(timeout=600) as client:
        stored = client.post(
            f"{server.dicomweb}/studies", content=_multipart_stream(path, boundary),
            headers={"Content-Type":
                     f'multipart/related; type="application/dicom"; boundary={boundary}'},
        )
        picked = [1, frames // 2, frames]
        frame_response = client.get(
            f"{base}/frames/{','.join(map(str, picked))}",
            headers={"Accept": 'multipart/related; type="application/octet-stream"; '
                               "transfer-syntax=*"},
        )
        retrieved_hash = hashlib.sha256()
        parts_seen = 0
        with client.stream("GET", base) as response:
            _, params = parse_content_type(response.headers["content-type"])
            reader = MultipartReader(params["boundary"])
            for chunk in response.iter_bytes():
                for event in reader.feed(chunk):
                    if isinstance(event, PartData):
                        retrieved_hash.update(event.data)
                    parts_seen += isinstance(event, PartEnd)
            reader.close()

    assert stored.status_code == 200, stored.text
    parts = parse_multipart(frame_response.headers["content-type"], frame_response.content)
    assert [body for _, body in parts] == [frame_bytes_of(0, n - 1, FRAME) for n in picked]
    assert response.status_code == 200
    assert parts_seen == 1
    assert retrieved_hash.hexdigest() == source_hash.hexdigest()
    assert rss.peak < RSS_LIMIT, f"server peak RSS {rss.peak / 2**20:.0f} MiB"
    stored_files = list((server.data_dir / "instances").rglob("*.dcm"))
    large = [p for p in stored_files if p.stat().st_size == path.stat().st_size]
    assert len(large) == 1
    stored_hash = hashlib.sha256()
    with large[0].open("rb") as fh:
        while chunk := fh.read(8 * 1024 * 1024):
            stored_hash.update(chunk)
    assert stored_hash.hexdigest() == source_hash.hexdigest()
