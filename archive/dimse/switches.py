"""pynetdicom's process-wide switches, set once by the composition root (``wsi.cli``)."""

from __future__ import annotations

import logging
import socket
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom import _config, evt
from pynetdicom.association import Association
from pynetdicom.events import Event

STORED_PATH_ATTRIBUTE = "_wsi_stored_path"
"""Set on the stand-in data set a retrieve handler yields; names the stored file to send."""


def configure_pynetdicom(log_level: str = "INFO") -> None:
    """Stream C-STORE data sets to and from disk and keep pynetdicom's logging quiet.

    ``STORE_RECV_CHUNKED_DATASET`` makes the C-STORE SCP write each incoming data set to a
    temporary file fragment by fragment instead of collecting it in memory (large WSI
    instances would hit ``MemoryError``); ``STORE_SEND_CHUNKED_DATASET`` makes ``send_c_store``
    of a file path send the encoded bytes in PDU-sized chunks without decoding them.
    """
    _config.STORE_RECV_CHUNKED_DATASET = True
    _config.STORE_SEND_CHUNKED_DATASET = True
    _send_stored_files_by_path()
    # pynetdicom logs every PDU and identifier at INFO; only its warnings belong in ours
    # unless the operator asked for DEBUG. Its logging handlers are then not bound at all:
    # they run on every PDU and DIMSE message, each taking the association's lock, and
    # cost ~1 ms per C-FIND match even with their output filtered away.
    if logging.getLevelName(log_level.upper()) != logging.DEBUG:
        logging.getLogger("pynetdicom").setLevel(logging.WARNING)
        _config.LOG_HANDLER_LEVEL = "none"


def _send_without_delay(event: Event) -> None:
    # pynetdicom writes each PDU with its own send() and leaves Nagle's algorithm on, so the
    # second of two back-to-back PDUs (a C-FIND response's command, then its identifier)
    # waited for the peer's delayed ACK: ~45 ms per C-FIND on an open association with
    # findscu (TCP_NODELAY=1), 14 ms with this; DCMTK's own servers set TCP_NODELAY too.
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


NO_SEND_DELAY: list[Any] = [(evt.EVT_CONN_OPEN, _send_without_delay)]
"""Event handlers for every association, accepted or requested: PDUs go out at once."""


def stored_file(path: Path, sop_instance_uid: str) -> Dataset:
    """A stand-in data set for a C-GET/C-MOVE sub-operation that sends ``path`` as it is."""
    stand_in = Dataset()
    stand_in.SOPInstanceUID = sop_instance_uid
    setattr(stand_in, STORED_PATH_ATTRIBUTE, path)
    return stand_in


def _send_stored_files_by_path() -> None:
    # pynetdicom's C-GET/C-MOVE SCPs accept only decoded Datasets from the handler, though
    # send_c_store itself can stream a file path in chunks. Decoding a multi-GB WSI level
    # would hold it in memory, so the handlers yield a stand-in naming the file and this
    # wrapper hands send_c_store the path instead. Idempotent.
    original = Association.send_c_store
    if getattr(original, "_wsi_wrapped", False):
        return

    def send_c_store(self: Association, dataset: Any, *args: Any, **kwargs: Any) -> Any:
        path = getattr(dataset, STORED_PATH_ATTRIBUTE, None)
        return original(self, path if path is not None else dataset, *args, **kwargs)

    send_c_store._wsi_wrapped = True  # type: ignore[attr-defined]
    Association.send_c_store = send_c_store  # type: ignore[method-assign]
