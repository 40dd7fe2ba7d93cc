"""Fixtures for end-to-end DIMSE tests: a DCMTK storescp as a remote modality."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from tests.conftest import free_port

DEST_AE = "STORESCP"


@dataclass
class StoreScp:
    """A DCMTK storescp writing what it receives, bit for bit, into ``folder``."""

    port: int
    folder: Path

    def received(self) -> dict[str, bytes]:
        """Received files by SOP Instance UID."""
        out = {}
        for path in self.folder.iterdir():
            data = path.read_bytes()
            out[str(pydicom.dcmread(path, stop_before_pixels=True).SOPInstanceUID)] = data
        return out


def wait_for_echo(port: int, ae_title: str) -> None:
    """Wait until something answers C-ECHO as ``ae_title`` on ``port``."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        result = subprocess.run(["echoscu", "-aec", ae_title, "127.0.0.1", str(port)],
                                capture_output=True, timeout=30)
        if result.returncode == 0:
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing answers C-ECHO on port {port}")


@pytest.fixture(scope="module")
def storescp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StoreScp]:
    """A running DCMTK storescp with AE title STORESCP on a free port."""
    folder = tmp_path_factory.mktemp("storescp")
    port = free_port()
    process = subprocess.Popen(
        ["storescp", "-aet", DEST_AE, "+xa", "-pm", "+B", "-od", str(folder), str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_echo(port, DEST_AE)
        yield StoreScp(port, folder)
    finally:
        process.terminate()
        process.wait(timeout=10)
