"""C-STORE SCP (PS3.4 B.2): the received temp file → staging → the one ingest path.

pynetdicom writes an incoming data set, with a file meta header built from the request, to a
temporary file as the P-DATA fragments arrive (``STORE_RECV_CHUNKED_DATASET``), and deletes it
once the handler returns. The serving process keeps its temporary folder on the data
filesystem (``wsi.cli``), so the handler renames that file into staging instead of copying
it; memory stays bounded by one PDU whatever the size of the instance.
"""

from __future__ import annotations

import logging
from typing import cast

from pydicom.dataset import Dataset
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event

from archive.archive import Archive, Expected
from archive.dimse.statuses import SUCCESS, status_dataset
from archive.status import PROCESSING_FAILURE, SopClassMismatch, failure_status
from wsi.errors import WsiArchiveError

log = logging.getLogger(__name__)


def handle_store(event: Event, archive: Archive) -> int | Dataset:
    """Store one instance; answer a C-STORE status (0x0000, 0xA700, 0xA900, 0xC000...)."""
    request = cast(C_STORE, event.request)
    sop_class = str(request.AffectedSOPClassUID or "")
    sop_instance = str(request.AffectedSOPInstanceUID or "")
    try:
        negotiated = str(event.context.abstract_syntax)
        if sop_class != negotiated:
            raise SopClassMismatch(
                f"Affected SOP Class {sop_class} differs from the negotiated {negotiated}"
            )
        # The parse checks that the data set is the requested SOP class and instance, before
        # anything is stored (0xA900 otherwise).
        stored = archive.ingest_path(event.dataset_path, move=True, expected=Expected(
            sop_class_uid=sop_class, sop_instance_uid=sop_instance))
    except WsiArchiveError as exc:
        status = failure_status(exc)
        log.warning("C-STORE of %s from %s failed (0x%04X): %s",
                    sop_instance, event.assoc.requestor.ae_title, status, exc.reason)
        return status_dataset(status, exc.reason)
    except Exception:
        log.exception("C-STORE of %s failed unexpectedly", sop_instance)
        return status_dataset(PROCESSING_FAILURE, "internal error")
    log.debug("C-STORE stored %s%s", sop_instance,
              " (identical copy already stored)" if stored.already_stored else "")
    return SUCCESS
