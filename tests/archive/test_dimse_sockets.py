"""DIMSE associations, accepted and requested, send their PDUs without Nagle's delay.

pynetdicom leaves Nagle's algorithm on; without TCP_NODELAY the second of two back-to-back
PDUs waits for the peer's delayed ACK (see ``archive.dimse.switches``). Checked on the real
DIMSE server and the archive's own SCU, talking to each other over loopback.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from archive.archive import Archive
from archive.dimse.contexts import verification_context
from archive.dimse.scu import _association
from archive.dimse.server import DimseServer, start_dimse
from tests.conftest import free_port
from wsi.settings import RemoteModality, Settings


@pytest.fixture
def server(tmp_path: Path) -> Iterator[DimseServer]:
    settings = Settings(data_dir=tmp_path / "data", dicom_port=free_port())
    archive = Archive(settings)
    dimse = start_dimse(settings, archive)
    try:
        yield dimse
    finally:
        dimse.shutdown()
        archive.close()


def _nodelay(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_both_ends_of_an_association_send_without_delay(server: DimseServer) -> None:
    peer = RemoteModality(server.ae.ae_title, *server.address)

    with _association(peer, "TESTSCU", [verification_context()]) as requested:
        assert requested.send_c_echo().Status == 0x0000
        accepted = server.ae.active_associations

        assert len(accepted) == 1
        assert _nodelay(requested.dul.socket.socket) == 1
        assert _nodelay(accepted[0].dul.socket.socket) == 1
