"""What ingest learns from a staged file: its header parsed (pixel data never loaded) and
validated, its index values and its frame table. Pure functions of the file, so that they run
in a parser process of their own beside the serving process (see :mod:`archive.ingest`);
this module imports only what parsing needs, which is the parser process's start-up.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from archive.attributes import ATTRIBUTES, extract
from archive.metadata import metadata_model, to_text
from archive.status import SopClassMismatch, StudyMismatch
from wsi.codecs import DEFLATED_LE
from wsi.dicom.encapsulation import build_frame_table, native_frame_length
from wsi.dicom.part10 import Part10Header, read_header
from wsi.dicom.uids import validate_uid
from wsi.errors import InvalidInput, Unsupported, WsiArchiveError
from wsi.processes import when_parent_exits

log = logging.getLogger(__name__)

_REQUIRED_UIDS = ("SOPClassUID", "SOPInstanceUID", "StudyInstanceUID", "SeriesInstanceUID")


@dataclass(frozen=True)
class StoredInstance:
    """What an ingest stored (or found already stored)."""

    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    already_stored: bool
    replaced: bool = False
    """An earlier version with the same SOP Instance UID was overwritten."""


@dataclass(frozen=True)
class Expected:
    """What the request that delivered an instance says it is; ``None``: not stated."""

    study_uid: str | None = None
    """The study a STOW-RS request addressed (``/studies/{uid}``)."""
    sop_class_uid: str | None = None
    """A C-STORE request's Affected SOP Class UID."""
    sop_instance_uid: str | None = None
    """A C-STORE request's Affected SOP Instance UID."""


NOTHING_EXPECTED = Expected()
"""For files whose delivery states nothing about them (folder import, conversions)."""


def parse_staged(
    path: Path, size: int, sha256: str, expected: Expected, threshold: int
) -> tuple[StoredInstance, dict[str, Any]]:
    """Parse and validate a finished staged file: what it will be stored as, and its index
    values. Pure (runs in a parser process); raises :class:`WsiArchiveError` on bad input,
    with ``sop`` set when the UIDs could be read."""
    header = read_header(path)
    try:
        row = _row(path, header, size, sha256, threshold)
        # From the index values rather than the data set: pydicom's keyword access converts
        # each element again, a visible share of the parse.
        uids = {k: validate_uid(str(row[k.lower()] or ""), k) for k in _REQUIRED_UIDS}
        # Before the file meta: a C-STORE's meta is built from its request, so a data set
        # that is not the requested instance must fail as that (0xA900), not as bad meta.
        _check_request(uids, expected)
        _check_file_meta(header, uids["SOPInstanceUID"])
        if expected.study_uid is not None and uids["StudyInstanceUID"] != expected.study_uid:
            raise StudyMismatch(
                f"Study Instance UID {uids['StudyInstanceUID']} differs from the "
                f"requested study {expected.study_uid}"
            )
    except WsiArchiveError as exc:
        exc.sop = _sop(header.dataset)
        raise
    stored = StoredInstance(
        uids["StudyInstanceUID"], uids["SeriesInstanceUID"], uids["SOPInstanceUID"],
        uids["SOPClassUID"], header.transfer_syntax_uid, already_stored=False,
    )
    return stored, row


def _check_request(uids: dict[str, str], expected: Expected) -> None:
    """The data set must be the SOP class and instance its C-STORE request names."""
    for key, wanted in (("SOPClassUID", expected.sop_class_uid),
                        ("SOPInstanceUID", expected.sop_instance_uid)):
        if wanted is not None and uids[key] != wanted:
            name = "SOP Class UID" if key == "SOPClassUID" else "SOP Instance UID"
            raise SopClassMismatch(f"{name} {uids[key]} differs from the request's {wanted}")


def _row(
    header_path: Path, header: Part10Header, size: int, sha256: str, threshold: int
) -> dict[str, Any]:
    ds = header.dataset
    frame_table = None
    pixel_vr = None
    if header.pixel_data is not None:
        frames = _number_of_frames(ds)
        try:
            encapsulated = header.pixel_data.encapsulated
            frame_length = None if encapsulated else native_frame_length(ds)
            with open(header_path, "rb") as fh:
                table = build_frame_table(
                    fh, header, frames, frame_length, _extended_offsets(ds)
                )
            frame_table = table.to_bytes()
        except Unsupported as exc:
            # Stored and retrievable whole; frame-level access is what is unsupported.
            log.info("no frame access for %s: %s", ds.get("SOPInstanceUID"), exc.reason)
        pixel_vr = "OB" if header.pixel_data.encapsulated else _native_vr(ds)
    elif "Rows" in ds and header.transfer_syntax_uid != DEFLATED_LE:
        raise InvalidInput("image has no pixel data (is the file truncated?)")
    # The index values are read from the JSON model: every value is converted once.
    model = metadata_model(ds, header.transfer_syntax_uid, pixel_vr, threshold)
    values = {a.column: extract(a, model) for a in ATTRIBUTES}
    values.update(
        transfer_syntax_uid=header.transfer_syntax_uid,
        file_size=size,
        sha256=sha256,
        frame_table=frame_table,
        metadata_json=to_text(model),
    )
    return values


def _sop(ds: Dataset) -> tuple[str, str] | None:
    """(SOP Class UID, SOP Instance UID) for a failure report, if both are valid."""
    try:
        return (validate_uid(str(ds.get("SOPClassUID") or "")),
                validate_uid(str(ds.get("SOPInstanceUID") or "")))
    except InvalidInput:
        return None


def _check_file_meta(header: Part10Header, sop_uid: str) -> None:
    meta_uid = str(header.dataset.file_meta.get("MediaStorageSOPInstanceUID", "")).strip("\0 ")
    if meta_uid and meta_uid != sop_uid:
        raise InvalidInput(
            f"MediaStorageSOPInstanceUID {meta_uid} differs from SOPInstanceUID {sop_uid}"
        )


def _number_of_frames(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"invalid NumberOfFrames {ds.get('NumberOfFrames')!r}") from exc


def _extended_offsets(ds: Dataset) -> bytes | None:
    elem = ds.get("ExtendedOffsetTable")
    return bytes(elem) if elem else None


def _native_vr(ds: Dataset) -> str:
    return "OW" if int(ds.get("BitsAllocated", 8)) > 8 else "OB"


def logging_of_this_process() -> tuple[int, str | None]:
    """The root logger's level and format, for :func:`set_up_parser_process`."""
    root = logging.getLogger()
    formatter = root.handlers[0].formatter if root.handlers else None
    return root.getEffectiveLevel(), getattr(formatter, "_fmt", None)


def set_up_parser_process(level: int, fmt: str | None) -> None:
    """Set up the parser process: logging as in the process that started it (a spawned
    process starts unconfigured, and its messages would be lost; it writes to the inherited
    standard error), and an exit when that process is gone (killed, it cannot stop us)."""
    logging.basicConfig(level=level, format=fmt or logging.BASIC_FORMAT)
    when_parent_exits(lambda: os._exit(0))


def parser_ready() -> bool:
    """Run in the parser process to make it start; importing this module is the warm-up."""
    return True
