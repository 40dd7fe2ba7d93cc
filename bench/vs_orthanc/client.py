"""A keep-alive HTTP client, multipart helpers and STOW-RS."""

from __future__ import annotations

import contextlib
import http.client
import json
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Server:
    """A running server under test."""

    name: str
    port: int
    dicomweb: str  # path prefix of the DICOMweb root, no trailing slash
    process: subprocess.Popen[bytes]
    log_path: Path
    peak_rss: int = 0
    dicom_port: int = 0  # DIMSE port (0: unknown)
    ae_title: str = ""  # called AE title of the DIMSE service

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def rss(self) -> int:
        """Resident memory of the server process (bytes), 0 if gone."""
        try:
            with open(f"/proc/{self.process.pid}/status") as fp:
                for line in fp:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0


class Client:
    """A keep-alive HTTP/1.1 connection to one server (reconnects after errors)."""

    def __init__(self, port: int, timeout: float = 300.0) -> None:
        self.port = port
        self.timeout = timeout
        self._conn: http.client.HTTPConnection | None = None

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
        """Send one request and read the whole response."""
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = http.client.HTTPConnection("127.0.0.1", self.port,
                                                        timeout=self.timeout)
            try:
                self._conn.request(method, path, body=body, headers=headers or {})
                response = self._conn.getresponse()
                data = response.read()
                return response.status, data, {k.lower(): v for k, v in response.getheaders()}
            except (http.client.HTTPException, ConnectionError, OSError):
                self.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def wait_http(server: Server, path: str, timeout: float = 60.0) -> None:
    """Wait until the server answers ``path`` with 200."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            with contextlib.suppress(OSError):
                tail = server.log_path.read_text(errors="replace")[-3000:]
                print(f"--- {server.log_path} (last lines)\n{tail}", file=sys.stderr)
            raise SystemExit(f"{server.name} exited early (code {server.process.returncode})")
        try:
            status, _, _ = Client(server.port, timeout=2).request("GET", path)
            if status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"{server.name} did not answer {path} within {timeout} s")


def multipart_related(parts: Sequence[bytes], part_type: str = "application/dicom"
                      ) -> tuple[bytes, str]:
    """A multipart/related body and its Content-Type header."""
    boundary = uuid.uuid4().hex
    chunks = []
    for part in parts:
        chunks += [f"--{boundary}\r\nContent-Type: {part_type}\r\n\r\n".encode(), part, b"\r\n"]
    chunks.append(f"--{boundary}--\r\n".encode())
    content_type = f'multipart/related; type="{part_type}"; boundary={boundary}'
    return b"".join(chunks), content_type


def multipart_payloads(body: bytes, content_type: str) -> list[bytes]:
    """Split a multipart response into its part payloads (for correctness checks only)."""
    params = dict(
        p.strip().split("=", 1) for p in content_type.split(";")[1:] if "=" in p
    )
    boundary = params["boundary"].strip('"').encode()
    payloads = []
    for chunk in body.split(b"--" + boundary)[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, payload = chunk.partition(b"\r\n\r\n")
        payloads.append(payload[:-2] if payload.endswith(b"\r\n") else payload)
    return payloads


def stow(client: Client, server: Server, files: Sequence[bytes]) -> tuple[int, int, int]:
    """One STOW-RS request; returns (HTTP status, stored count, failed count)."""
    body, content_type = multipart_related(files)
    status, data, _ = client.request(
        "POST", f"{server.dicomweb}/studies", body=body,
        headers={"Content-Type": content_type, "Accept": "application/dicom+json"})
    stored = failed = 0
    with contextlib.suppress(ValueError):
        answer = json.loads(data) if data else {}
        stored = len(answer.get("00081199", {}).get("Value", []))
        failed = len(answer.get("00081198", {}).get("Value", []))
    return status, stored, failed
