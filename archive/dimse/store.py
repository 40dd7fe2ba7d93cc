"""C-STORE SCP (PS3.4 B.2): the received temp file → staging → the one ingest path.

pynetdicom writes an incoming data set, with a file meta header built from the request, to a
temporary file as the P-DATA fragments arrive (``STORE_RECV_CHUNKED_DATASET``), and deletes it
once the handler returns. The serving process keeps its temporary folder on the data
filesystem (``wsi.cli``), so the handler renames that file into staging instead of copying
it; memory stays bounded by one PDU whatever the size of the instance.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.events import Event

from archive.archive import Archive
from archive.dimse.statuses import SUCCESS, status_dataset
from archive.status import PROCESSING_FAILURE, SopClassMismatch, failure_status
from wsi.errors import InvalidInput, WsiArchiveError

log = logging.getLogger(__name__)

_DEFER = 64 * 1024  # large header values (ICC profiles, offset tables) stay on disk


def handle_store(event: Event, archive: Archive) -> int | Dataset:
    """Store one instance; answer a C-STORE status (0x0000, 0xA700, 0xA900, 0xC000...)."""
    request = cast(C_STORE, event.request)
    sop_class = str(request.AffectedSOPClassUID or "")
    sop_instance = str(request.AffectedSOPInstanceUID or "")
    try:
        path = event.dataset_path
        check_identity(path, str(event.context.abstract_syntax), sop_class, sop_instance)
        stored = archive.ingest_path(path, move=True)
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


def check_identity(path: Path, negotiated: str, sop_class: str, sop_instance: str) -> None:
    """The data set must be the instance and SOP class the request and context name.

    Raises :class:`SopClassMismatch` (0xA900) on any disagreement and :class:`InvalidInput`
    (0xC000) if the header cannot be read.
    """
    try:
        ds = dcmread(path, stop_before_pixels=True, defer_size=_DEFER,
                     specific_tags=["SOPClassUID", "SOPInstanceUID"])
        found_class = str(ds.get("SOPClassUID", "")).strip("\0 ")
        found_instance = str(ds.get("SOPInstanceUID", "")).strip("\0 ")
    except Exception as exc:  # pydicom raises many types on garbage input
        raise InvalidInput(f"cannot parse the data set: {exc}") from exc
    if not found_class or not found_instance:
        raise InvalidInput("the data set has no SOP Class and Instance UID")
    if sop_class != negotiated:
        raise SopClassMismatch(
            f"Affected SOP Class {sop_class} differs from the negotiated {negotiated}"
        )
    if found_class != sop_class:
        raise SopClassMismatch(
            f"SOP Class UID {found_class} differs from the request's {sop_class}"
        )
    if found_instance != sop_instance:
        raise SopClassMismatch(
            f"SOP Instance UID {found_instance} differs from the request's "
            f"{sop_instance}"
        )
