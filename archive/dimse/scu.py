"""The archive as a DIMSE SCU: echo, send (C-STORE), query (C-FIND) and C-MOVE a peer.

Files are sent as stored: with ``STORE_SEND_CHUNKED_DATASET`` (see
:func:`archive.dimse.switches.configure_pynetdicom`) pynetdicom reads and sends each file in
PDU-sized chunks, so memory stays bounded by one PDU whatever the instance size.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydicom.dataset import Dataset
from pydicom.filereader import read_file_meta_info
from pynetdicom import AE, build_context
from pynetdicom.association import Association
from pynetdicom.presentation import PresentationContext

from archive.attributes import UID_KEYS, keyword_of
from archive.dimse.contexts import (
    FIND_MODELS,
    MOVE_MODELS,
    UNCOMPRESSED,
    storage_contexts,
    verification_context,
)
from archive.dimse.identifiers import LEVELS
from archive.dimse.switches import NO_SEND_DELAY
from wsi.errors import InvalidInput, Unavailable
from wsi.settings import RemoteModality

DEFAULT_AE = "WSIARCHIVE"
_WARNINGS = frozenset({0x0001, 0xB000, 0xB006, 0xB007})


@dataclass(frozen=True)
class Counts:
    """Outcome of a batch of C-STORE (sub-)operations."""

    completed: int = 0
    failed: int = 0
    warning: int = 0


@contextmanager
def _association(
    modality: RemoteModality, calling_ae: str, contexts: list[PresentationContext]
) -> Iterator[Association]:
    ae = AE(ae_title=calling_ae)
    assoc = ae.associate(modality.host, modality.port, contexts=contexts,
                         ae_title=modality.ae_title, evt_handlers=NO_SEND_DELAY)
    if not assoc.is_established:
        how = "rejected" if assoc.is_rejected else "not established"
        raise Unavailable(f"association with {_name(modality)} was {how}")
    try:
        yield assoc
    finally:
        if assoc.is_established:
            assoc.release()


def _name(modality: RemoteModality) -> str:
    return f"{modality.ae_title}@{modality.host}:{modality.port}"


def _status(response: Dataset, modality: RemoteModality, what: str) -> int:
    if "Status" not in response:
        raise Unavailable(f"{what}: no valid response from {_name(modality)}")
    return int(response.Status)


def echo(modality: RemoteModality, calling_ae: str = DEFAULT_AE) -> int:
    """C-ECHO the peer; returns the status (0x0000 when it answers)."""
    with _association(modality, calling_ae, [verification_context()]) as assoc:
        return _status(assoc.send_c_echo(), modality, "C-ECHO")


def send(
    modality: RemoteModality, paths: Sequence[Path], calling_ae: str = DEFAULT_AE
) -> Counts:
    """C-STORE files as they are (in their own transfer syntax) to the peer."""
    pairs: dict[Path, tuple[str, str]] = {}
    unreadable = 0
    for path in paths:
        try:
            meta = read_file_meta_info(path)
            pairs[path] = (str(meta.MediaStorageSOPClassUID), str(meta.TransferSyntaxUID))
        except Exception:  # pydicom raises many types on garbage input
            unreadable += 1
    completed = warning = 0
    failed = unreadable
    for group in storage_contexts(pairs.values()):
        offered = {(str(cx.abstract_syntax), cx.transfer_syntax[0]) for cx in group}
        with _association(modality, calling_ae, group) as assoc:
            for path, pair in pairs.items():
                if pair not in offered:
                    continue
                try:
                    status = _status(assoc.send_c_store(path), modality, "C-STORE")
                except (Unavailable, ValueError, RuntimeError):
                    # RuntimeError: the peer ended the association during the batch.
                    failed += 1
                    continue
                if status == 0x0000:
                    completed += 1
                elif status in _WARNINGS:
                    warning += 1
                else:
                    failed += 1
    return Counts(completed, failed, warning)


def _model(models: tuple[str, str], root: str) -> str:
    if root not in ("PATIENT", "STUDY"):
        raise InvalidInput(f"information model must be PATIENT or STUDY, not {root!r}")
    return models[0] if root == "PATIENT" else models[1]


def _level(level: str) -> str:
    name = level.upper()
    if name not in LEVELS:
        raise InvalidInput(f"level must be one of {', '.join(LEVELS)}, not {level!r}")
    return name


def _keyword(key: str) -> str:
    keyword = keyword_of(key)
    if keyword is None:
        raise InvalidInput(f"unknown attribute {key!r}")
    return keyword


def query(
    modality: RemoteModality,
    level: str,
    filters: Mapping[str, str],
    return_keys: Sequence[str] = (),
    model: str = "STUDY",
    calling_ae: str = DEFAULT_AE,
) -> list[dict]:
    """C-FIND the peer; returns the matches in the DICOM JSON model.

    ``filters`` map keywords (or tags) to matching values, ``return_keys`` are asked for
    empty; the unique key of the level is always returned.
    """
    name = _level(level)
    identifier = Dataset()
    identifier.QueryRetrieveLevel = name
    setattr(identifier, UID_KEYS[LEVELS[name]], "")
    for key in return_keys:
        setattr(identifier, _keyword(key), "")
    for key, value in filters.items():
        setattr(identifier, _keyword(key), value)
    sop_class = _model(FIND_MODELS, model.upper())
    contexts = [_query_context(sop_class)]
    matches: list[dict] = []
    with _association(modality, calling_ae, contexts) as assoc:
        for status, found in assoc.send_c_find(identifier, sop_class):
            code = _status(status, modality, "C-FIND")
            if code in (0xFF00, 0xFF01) and found is not None:
                matches.append(found.to_json_dict())
            elif code not in (0x0000, 0xFF00, 0xFF01):
                raise Unavailable(f"C-FIND failed at {_name(modality)}: status 0x{code:04X}")
    return matches


def retrieve_move(
    modality: RemoteModality,
    level: str,
    uids: Sequence[str],
    dest_ae: str,
    model: str = "STUDY",
    parents: Mapping[str, str] | None = None,
    calling_ae: str = DEFAULT_AE,
) -> Counts:
    """C-MOVE the instances with the level's ``uids`` from the peer to ``dest_ae``.

    ``parents`` holds the keys of the levels above (e.g. ``StudyInstanceUID`` for SERIES)
    that a hierarchical peer needs.
    """
    name = _level(level)
    if not uids:
        raise InvalidInput("nothing to retrieve")
    identifier = Dataset()
    identifier.QueryRetrieveLevel = name
    for key, value in (parents or {}).items():
        setattr(identifier, _keyword(key), value)
    setattr(identifier, UID_KEYS[LEVELS[name]], list(uids) if len(uids) > 1 else uids[0])
    sop_class = _model(MOVE_MODELS, model.upper())
    final = Dataset()
    with _association(modality, calling_ae, [_query_context(sop_class)]) as assoc:
        for status, _ in assoc.send_c_move(identifier, dest_ae, sop_class):
            final = status
    code = _status(final, modality, "C-MOVE")
    counts = Counts(
        int(final.get("NumberOfCompletedSuboperations", 0) or 0),
        int(final.get("NumberOfFailedSuboperations", 0) or 0),
        int(final.get("NumberOfWarningSuboperations", 0) or 0),
    )
    if code not in (0x0000, 0xB000) and not counts.failed:
        raise Unavailable(f"C-MOVE failed at {_name(modality)}: status 0x{code:04X}")
    return counts


def _query_context(sop_class: str) -> PresentationContext:
    return build_context(sop_class, list(UNCOMPRESSED[:2]))
