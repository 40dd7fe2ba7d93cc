"""The DIMSE server: one pynetdicom AE serving C-ECHO, C-STORE, C-FIND, C-MOVE and C-GET.

pynetdicom runs the listener and every association in threads of its own, so nothing here
touches the HTTP event loop; the handlers call the synchronous, thread-safe archive.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pynetdicom import AE, evt
from pynetdicom.events import Event

from archive.archive import Archive
from archive.dimse.contexts import add_supported_contexts
from archive.dimse.query_retrieve import handle_find, handle_get, handle_move
from archive.dimse.statuses import SUCCESS
from archive.dimse.store import handle_store
from archive.dimse.switches import NO_SEND_DELAY, configure_pynetdicom
from wsi.errors import Unavailable
from wsi.settings import Settings

log = logging.getLogger(__name__)

MAX_ASSOCIATIONS = 20
MAX_PDU = 1024 * 1024
"""Largest PDU we accept: bounds the memory of one association's receive buffer."""


@dataclass(frozen=True)
class DimseServer:
    """A running DIMSE server; ``shutdown()`` stops listening and ends its associations."""

    ae: AE
    address: tuple[str, int]

    def shutdown(self) -> None:
        """Stop the listener and abort any association still open."""
        self.ae.shutdown()
        log.info("DIMSE server on port %d stopped", self.address[1])


def start_dimse(settings: Settings, archive: Archive) -> DimseServer:
    """Start listening on ``settings.host:settings.dicom_port`` without blocking."""
    configure_pynetdicom(settings.log_level)
    ae = AE(ae_title=settings.ae_title)
    ae.maximum_associations = MAX_ASSOCIATIONS
    ae.maximum_pdu_size = MAX_PDU
    if settings.dimse_allowed_callers:
        ae.require_calling_aet = list(settings.dimse_allowed_callers)
    add_supported_contexts(ae)
    handlers: list[Any] = [
        *NO_SEND_DELAY,
        (evt.EVT_ACCEPTED, _log_association),
        (evt.EVT_REJECTED, _log_association),
        (evt.EVT_ABORTED, _drop_partial_dataset),
        (evt.EVT_CONN_CLOSE, _drop_partial_dataset),
        (evt.EVT_C_ECHO, _handle_echo),
        (evt.EVT_C_STORE, handle_store, [archive]),
        (evt.EVT_C_FIND, handle_find, [archive, settings]),
        (evt.EVT_C_MOVE, handle_move, [archive, settings]),
        (evt.EVT_C_GET, handle_get, [archive]),
    ]
    address = (settings.host, settings.dicom_port)
    try:
        ae.start_server(address, block=False, evt_handlers=handlers)
    except OSError as exc:
        raise Unavailable(f"cannot listen for DICOM on port {settings.dicom_port}: "
                          f"{exc.strerror}") from exc
    log.info("serving DIMSE as %s on %s:%d", settings.ae_title, *address)
    return DimseServer(ae, address)


def _handle_echo(event: Event) -> int:
    return SUCCESS


def _log_association(event: Event) -> None:
    requestor = event.assoc.requestor
    accepted = event.event is evt.EVT_ACCEPTED
    log.log(logging.INFO if accepted else logging.WARNING,
            "association %s: calling AE %s from %s:%s", "accepted" if accepted else "rejected",
            requestor.ae_title, requestor.address, requestor.port)


def _drop_partial_dataset(event: Event) -> None:
    # pynetdicom removes the temporary file of a data set only after its C-STORE handler
    # ran; a transfer cut short by an abort or a dropped connection would leave it behind.
    message = getattr(event.assoc.dimse, "message", None)
    partial = getattr(message, "_data_set_file", None)
    if partial is None:
        return
    partial.close()
    path = Path(partial.name)
    if not path.exists():
        return  # already dropped: an abort is followed by the connection closing
    path.unlink(missing_ok=True)
    log.warning("association with %s ended during a C-STORE; partial data set dropped",
                event.assoc.requestor.ae_title)
