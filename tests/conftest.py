"""Root fixtures: the real server, started through the CLI on a free loopback port."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_SLIDES = REPO.parent / "shared" / "slides"


def free_port() -> int:
    """A TCP port that is free on the loopback interface right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    """A running ``wsi serve`` process."""

    process: subprocess.Popen[bytes]
    port: int
    dicom_port: int
    data_dir: Path
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> Server:
    """Start ``wsi serve`` and wait until /healthz answers."""
    port, dicom_port = free_port(), free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = data_dir.parent / f"server-{port}.log"
    log = open(log_path, "wb")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(
        [sys.executable, "-m", "wsi", "serve", "--port", str(port), "--dicom-port",
         str(dicom_port), "--data-dir", str(data_dir), *extra],
        stdout=log, stderr=subprocess.STDOUT, cwd=REPO, env={**os.environ, **(env or {})},
    )
    server = Server(process, port, dicom_port, data_dir, log_path)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited early:\n{server.log()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    process.kill()
    raise RuntimeError(f"server did not start:\n{server.log()}")


def stop_server(server: Server) -> None:
    """Stop the server and wait for it to exit."""
    server.process.terminate()
    try:
        server.process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server shared by the session's tests (tests use their own UIDs)."""
    running = start_server(tmp_path_factory.mktemp("archive") / "data")
    yield running
    stop_server(running)
    assert running.process.returncode is not None


@pytest.fixture
def http(server: Server) -> Iterator[httpx.Client]:
    """An httpx client bound to the server's DICOMweb root."""
    with httpx.Client(base_url=server.dicomweb, timeout=60) as client:
        yield client
