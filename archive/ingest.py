"""THE ingest function: every path (STOW-RS, C-STORE, dicomizer, folder import) ends here.

Order of operations, so that a crash at any point leaves nothing or a complete instance:
1. the caller streams bytes into a :class:`~archive.storage.StagedFile` and finishes it
   (fsync) — nothing is visible yet;
2. the header is parsed from the staged file (pixel data is never loaded) and validated, and
   the frame table is computed by walking item headers;
3. under the commit lock: duplicate check, atomic rename into ``instances/``, then one index
   transaction. If the transaction fails the renamed file is removed again.
A file renamed but not indexed (power loss between 3's steps) is unreachable and harmless.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass
from typing import Any

from pydicom.dataset import Dataset
from sqlalchemy import Engine, select

from archive.attributes import ATTRIBUTES, extract
from archive.index.schema import instances
from archive.index.writer import delete_instances, insert_instance, upsert_parents
from archive.metadata import metadata_model, to_text
from archive.status import DuplicateInstance, StudyMismatch
from archive.storage import StagedFile, Storage
from wsi.codecs import DEFLATED_LE
from wsi.dicom.encapsulation import build_frame_table, native_frame_length
from wsi.dicom.part10 import Part10Header, read_header
from wsi.dicom.uids import validate_uid
from wsi.errors import InvalidInput, Unsupported, WsiArchiveError
from wsi.settings import OnConflict

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


class Ingester:
    """Validates, stores and indexes staged instances. Thread-safe."""

    def __init__(
        self, storage: Storage, engine: Engine, on_conflict: OnConflict, bulkdata_threshold: int
    ) -> None:
        self._storage = storage
        self._engine = engine
        self._on_conflict = on_conflict
        self._threshold = bulkdata_threshold
        # One writer at a time for the check-index step only; parsing runs in parallel.
        self._commit_lock = threading.Lock()
        # Series UID → (series pk, study UID) of committed rows: most instances join a series
        # that exists, and this spares the parent look-ups. Cleared whenever rows are deleted.
        self._series: dict[str, tuple[int, str]] = {}

    def forget_parents(self) -> None:
        """Drop cached parent rows (after a delete, rows may be gone)."""
        with self._commit_lock:
            self._series.clear()

    def ingest(self, staged: StagedFile, expected_study_uid: str | None = None) -> StoredInstance:
        """Store and index a finished staged file; the staged file is consumed either way."""
        with staged:
            header = read_header(staged.path)
            ds = header.dataset
            uids = {k: validate_uid(str(ds.get(k) or ""), k) for k in _REQUIRED_UIDS}
            try:
                _check_file_meta(header, uids["SOPInstanceUID"])
                if (
                    expected_study_uid is not None
                    and uids["StudyInstanceUID"] != expected_study_uid
                ):
                    raise StudyMismatch(
                        f"Study Instance UID {uids['StudyInstanceUID']} differs from the "
                        f"requested study {expected_study_uid}"
                    )
                row = self._row(staged, header)
                return self._commit(staged, row, uids, header.transfer_syntax_uid)
            except WsiArchiveError as exc:
                exc.sop = (uids["SOPClassUID"], uids["SOPInstanceUID"])
                raise

    def _row(self, staged: StagedFile, header: Part10Header) -> dict:
        ds = header.dataset
        frame_table = None
        pixel_vr = None
        if header.pixel_data is not None:
            frames = _number_of_frames(ds)
            try:
                encapsulated = header.pixel_data.encapsulated
                frame_length = None if encapsulated else native_frame_length(ds)
                with open(staged.path, "rb") as fh:
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
        model = metadata_model(ds, header.transfer_syntax_uid, pixel_vr, self._threshold)
        values = {a.column: extract(a, model) for a in ATTRIBUTES}
        values.update(
            transfer_syntax_uid=header.transfer_syntax_uid,
            file_size=staged.size,
            sha256=staged.sha256,
            frame_table=frame_table,
            metadata_json=to_text(model),
        )
        return values

    def _existing(self, sop_uid: str) -> Any:
        with self._engine.connect() as conn:
            return conn.execute(
                select(instances.c.pk, instances.c.sha256, instances.c.file_path).where(
                    instances.c.sopinstanceuid == sop_uid
                )
            ).first()

    def _check_existing(self, existing: Any, staged: StagedFile, sop_uid: str) -> bool:
        """True if identical content is stored already; raises on a rejected conflict."""
        if existing is None:
            return False
        if existing.sha256 == staged.sha256:
            return True
        if self._on_conflict == "reject":
            raise DuplicateInstance(
                f"SOP Instance {sop_uid} is already stored with different content"
            )
        return False

    def _commit(
        self, staged: StagedFile, row: dict, uids: dict[str, str], tsuid: str
    ) -> StoredInstance:
        sop_uid = uids["SOPInstanceUID"]
        result = StoredInstance(
            uids["StudyInstanceUID"], uids["SeriesInstanceUID"], sop_uid,
            uids["SOPClassUID"], tsuid, already_stored=False,
        )
        if self._check_existing(self._existing(sop_uid), staged, sop_uid):
            return dataclasses.replace(result, already_stored=True)
        # The rename and its directory fsync happen outside the lock, so parallel ingests
        # overlap their disk flushes. The path carries the content hash: a concurrent ingest
        # of the same bytes renames identical content onto the same name, which is harmless.
        relative = self._storage.relative_path(sop_uid, staged.sha256)
        self._storage.commit(staged, relative)
        try:
            with self._commit_lock:
                existing = self._existing(sop_uid)  # again: another ingest may have won
                if self._check_existing(existing, staged, sop_uid):
                    return dataclasses.replace(result, already_stored=True)
                series_uid, study_uid = uids["SeriesInstanceUID"], uids["StudyInstanceUID"]
                cached = self._series.get(series_uid) if existing is None else None
                with self._engine.begin() as conn:
                    if existing is not None:
                        delete_instances(conn, [existing.pk])
                        self._series.clear()
                    if cached is not None and cached[1] == study_uid:
                        series_pk = cached[0]
                    else:
                        series_pk = upsert_parents(conn, row)
                    insert_instance(conn, series_pk, {**row, "file_path": relative})
                self._series[series_uid] = (series_pk, study_uid)
        except BaseException:
            self._storage.remove(relative)
            raise
        if existing is not None:
            self._storage.remove(existing.file_path)
            log.info("overwrote instance %s", sop_uid)
            result = dataclasses.replace(result, replaced=True)
        log.debug("stored instance %s (%d bytes)", sop_uid, staged.size)
        return result


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
