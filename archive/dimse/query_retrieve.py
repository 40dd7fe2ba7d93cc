"""C-FIND, C-MOVE and C-GET SCP handlers (PS3.4 Annex C): event → archive call → statuses.

Retrieved instances are sent as stored: each sub-operation yields a stand-in naming the
stored file, which ``send_c_store`` streams in PDU-sized chunks without decoding it (see
``switches.py``), so memory stays flat even for multi-GB WSI levels.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from pydicom.dataset import Dataset
from pynetdicom.events import Event

from archive.archive import Archive, InstanceRecord
from archive.attributes import Level
from archive.dimse.contexts import PATIENT_ROOT, storage_contexts, verification_context
from archive.dimse.identifiers import (
    RetrieveRequest,
    matches,
    parse_find,
    parse_retrieve,
    response_identifier,
)
from archive.dimse.statuses import (
    CANCEL,
    IDENTIFIER_DOES_NOT_MATCH,
    PENDING,
    PENDING_WARNING,
    UNABLE_TO_PROCESS,
    status_dataset,
)
from archive.dimse.switches import NO_SEND_DELAY, stored_file
from archive.query import Query
from wsi.errors import InvalidInput, NotFound, WsiArchiveError
from wsi.settings import RemoteModality, Settings

log = logging.getLogger(__name__)

MAX_SUBOPERATIONS = 65535
"""Number of Remaining/Completed Sub-operations are US (PS3.7 Table 9.3-4)."""

_STUDY_UID, _SOP_UID = "0020000D", "00080018"


def _is_patient_root(event: Event) -> bool:
    return str(event.request.AffectedSOPClassUID) in PATIENT_ROOT


def _identifier(event: Event) -> Dataset:
    """The request identifier, decoded and checked to be readable element by element."""
    try:
        identifier = event.identifier
        for _ in identifier:  # pydicom decodes lazily: fail here, not mid-answer
            pass
    except Exception as exc:  # pydicom raises many types on garbage input
        raise InvalidInput(f"cannot decode the identifier: {exc}") from exc
    return identifier


def handle_find(event: Event, archive: Archive, settings: Settings) -> Iterator[Any]:
    """Yield a pending response per match, each with exactly the requested keys."""
    try:
        request = parse_find(_identifier(event), _is_patient_root(event))
    except InvalidInput as exc:
        yield status_dataset(IDENTIFIER_DOES_NOT_MATCH, exc.reason), None
        return
    known = {
        "00080054": {"vr": "AE", "Value": [settings.ae_title]},
        "00080056": {"vr": "CS", "Value": ["ONLINE"]},
    }
    count = 0
    try:
        for match, partly in matches(archive, request.query):
            if event.is_cancelled:
                yield CANCEL, None
                return
            count += 1
            yield (PENDING_WARNING if partly else PENDING), response_identifier(
                match, request, known
            )
    except WsiArchiveError as exc:
        yield status_dataset(UNABLE_TO_PROCESS, exc.reason), None
        return
    log.info("C-FIND %s from %s: %d match(es)",
             request.level_name, event.assoc.requestor.ae_title, count)


def handle_move(event: Event, archive: Archive, settings: Settings) -> Iterator[Any]:
    """Send the selected instances to a configured destination (unknown → 0xA801)."""
    destination = _destination(settings, str(event.move_destination or "").strip())
    try:
        records = _selection(archive, event)
        failure = None
    except WsiArchiveError as exc:
        records, failure = [], exc
    if destination is None:
        log.warning("C-MOVE to unknown destination %r", event.move_destination)
        yield None, None
        return
    pairs = {(r.sop_class_uid, r.transfer_syntax_uid) for r in records}
    groups = storage_contexts(pairs, little_endian_fallback=True)
    yield destination.host, destination.port, {
        "ae_title": destination.ae_title,
        "contexts": groups[0] if groups else [verification_context()],
        "evt_handlers": NO_SEND_DELAY,
    }
    if failure is not None:
        # The destination must be yielded before any status, so a bad identifier costs
        # one association with the destination (pynetdicom's C-MOVE service order).
        yield 1
        yield status_dataset(IDENTIFIER_DOES_NOT_MATCH, failure.reason), None
        return
    if len(groups) > 1:
        log.warning("C-MOVE: %d SOP class/transfer syntax pairs exceed one association; "
                    "instances outside the first 128 will fail", len(pairs))
    yield from _suboperations(event, records)


def handle_get(event: Event, archive: Archive) -> Iterator[Any]:
    """Send the selected instances back on the requestor's own association."""
    try:
        records = _selection(archive, event)
    except WsiArchiveError as exc:
        yield 1
        yield status_dataset(IDENTIFIER_DOES_NOT_MATCH, exc.reason), None
        return
    yield from _suboperations(event, records)


def _selection(archive: Archive, event: Event) -> list[InstanceRecord]:
    return select_records(archive, parse_retrieve(_identifier(event), _is_patient_root(event)))


def _suboperations(event: Event, records: list[InstanceRecord]) -> Iterator[Any]:
    if len(records) > MAX_SUBOPERATIONS:
        yield 1
        yield status_dataset(
            UNABLE_TO_PROCESS, f"{len(records)} instances exceed {MAX_SUBOPERATIONS}"
        ), None
        return
    yield len(records)
    for record in records:
        if event.is_cancelled:
            yield CANCEL, None
            return
        yield PENDING, stored_file(record.path, record.sop_instance_uid)


def _destination(settings: Settings, ae_title: str) -> RemoteModality | None:
    for modality in settings.modalities:
        if modality.ae_title == ae_title:
            return modality
    return None


def select_records(archive: Archive, request: RetrieveRequest) -> list[InstanceRecord]:
    """The stored instances a retrieve selects, via the shared matcher."""
    result = archive.find(Query(Level.INSTANCE, request.filters))
    wanted: dict[str, set[str]] = defaultdict(set)
    for match in result.matches:
        wanted[match[_STUDY_UID]["Value"][0]].add(match[_SOP_UID]["Value"][0])
    records: list[InstanceRecord] = []
    for study_uid, sop_uids in wanted.items():
        try:
            found = archive.instances(study_uid)
        except NotFound:
            continue  # deleted between the two reads
        records.extend(r for r in found if r.sop_instance_uid in sop_uids)
    return records
