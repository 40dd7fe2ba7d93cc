"""THE ingest: every path (STOW-RS, C-STORE, dicomizer, folder import) ends here.

Order of operations, so that a crash at any point leaves nothing or complete instances:
1. the caller streams bytes into a :class:`~archive.storage.StagedFile` and finishes it
   (fsync) — nothing is visible yet;
2. :meth:`Ingester.prepare`: the header is parsed from the staged file (pixel data is never
   loaded) and validated, and the frame table is computed by walking item headers
   (:mod:`archive.parsing`) — in a parser process where there is a second core, as this is
   most of an ingest's Python work;
3. :meth:`Ingester.commit`, for a group of prepared instances (a STOW-RS request; one instance
   for the other paths): duplicate check, atomic renames into ``instances/``, one fsync per
   touched folder, then, under the commit lock, one index transaction for the group. Only then
   is anything reported stored. If the transaction fails the renamed files are removed again.
A file renamed but not indexed (power loss within 3) is unreachable and harmless.

Each instance of a group fails alone: a duplicate or a parse error is reported for that
instance, and if the group's transaction fails it is retried one instance per transaction, so
that the instance at fault is the only one rejected.
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import threading
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import IntegrityError

from archive.index.writer import (
    delete_instances,
    existing_instances,
    insert_instances,
    instance_row,
    upsert_parents,
)
from archive.parsing import (
    NOTHING_EXPECTED,
    Expected,
    StoredInstance,
    logging_of_this_process,
    parse_staged,
    parser_ready,
    set_up_parser_process,
)
from archive.status import DuplicateInstance
from archive.storage import StagedFile, Storage
from wsi.errors import Conflict, WsiArchiveError
from wsi.settings import OnConflict

log = logging.getLogger(__name__)




@dataclass(frozen=True)
class PreparedInstance:
    """A finished staged file that parsed and validated: what the index will hold."""

    staged: StagedFile
    stored: StoredInstance
    """The answer once it is committed (``already_stored`` and ``replaced`` still False)."""
    row: dict[str, Any]
    """Index values: attributes of every level plus the storage columns but ``file_path``."""

    @property
    def sop_uid(self) -> str:
        """The SOP Instance UID."""
        return self.stored.sop_instance_uid


Outcome = StoredInstance | WsiArchiveError
"""The result of one instance of a committed group."""


@dataclass
class _Placed:
    """A prepared instance renamed into place and waiting for its index row."""

    item: PreparedInstance
    relative: str
    old: Any  # the stored row it replaces (on_conflict = overwrite), or None


_ALONE_ATTEMPTS = 3
"""Tries of one instance's index transaction when other processes insert the same rows."""


class Ingester:
    """Validates, stores and indexes staged instances. Thread-safe."""

    def __init__(
        self,
        storage: Storage,
        engine: Engine,
        on_conflict: OnConflict,
        bulkdata_threshold: int,
        parser_processes: int = 0,
    ) -> None:
        self._storage = storage
        self._engine = engine
        self._on_conflict = on_conflict
        self._threshold = bulkdata_threshold
        # One writer at a time for the check-and-index step only; parsing, renames and folder
        # flushes run in parallel.
        self._commit_lock = threading.Lock()
        # Series UID → (series pk, study UID) of committed rows: most instances join a series
        # that exists, and this spares the parent look-ups. Cleared whenever rows are deleted.
        self._series: dict[str, tuple[int, str]] = {}
        # Parsing is pure Python (pydicom, DICOM JSON) and holds the GIL: in a process of its
        # own it runs beside the event loop and the other ingest steps instead of after them.
        self._parser_processes = parser_processes
        self._pool: ProcessPoolExecutor | None = None
        self._pool_lock = threading.Lock()

    def forget_parents(self) -> None:
        """Drop cached parent rows (after a delete, rows may be gone)."""
        with self._commit_lock:
            self._series.clear()

    def prepare(
        self, staged: StagedFile, expected: Expected = NOTHING_EXPECTED
    ) -> PreparedInstance:
        """Parse and validate a finished staged file; on failure it is discarded and the
        error (with ``sop`` set when the UIDs could be read) raised."""
        args = (staged.path, staged.size, staged.sha256, expected, self._threshold)
        try:
            stored, row = self._parse(args)
        except BaseException:
            staged.discard()
            raise
        return PreparedInstance(staged, stored, row)

    def _parse(self, args: tuple[Any, ...]) -> tuple[StoredInstance, dict[str, Any]]:
        pool = self._parser_pool()
        if pool is None:
            return parse_staged(*args)
        try:
            return pool.submit(parse_staged, *args).result()
        except BrokenProcessPool:
            # The parser process died (killed, out of memory): start a new one next time,
            # and parse this instance here rather than fail it.
            log.warning("the parser process stopped; starting a new one")
            with self._pool_lock:
                if self._pool is pool:
                    self._pool = None
            pool.shutdown(wait=False)
            return parse_staged(*args)

    def start_parser(self) -> None:
        """Start the parser process now rather than at the first ingest, which would wait
        ~1 s for it to spawn and import pydicom; a no-op where there is none."""
        pool = self._parser_pool()
        if pool is not None:
            pool.submit(parser_ready)  # not awaited: the process starts in the background

    def close(self) -> None:
        """Stop the parser process, if one was started."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(cancel_futures=True)

    def _parser_pool(self) -> ProcessPoolExecutor | None:
        if self._parser_processes == 0:
            return None
        with self._pool_lock:
            if self._pool is None:
                # spawn, not fork: the serving process runs threads.
                self._pool = ProcessPoolExecutor(
                    self._parser_processes, mp_context=multiprocessing.get_context("spawn"),
                    initializer=set_up_parser_process, initargs=logging_of_this_process(),
                )
            return self._pool

    def commit(self, group: Sequence[PreparedInstance]) -> list[Outcome]:
        """Store and index prepared instances together; every staged file is consumed.

        Returns one outcome per instance, in order: a :class:`StoredInstance`, or the error
        that rejected that instance alone. Errors that are not an instance's fault (the
        database is gone) are raised; instances not indexed by then are not stored.
        """
        outcomes: dict[int, Outcome] = {}
        try:
            for indexes in _rounds(group):
                done = self._commit_round([group[i] for i in indexes])
                outcomes.update(zip(indexes, done, strict=True))
        finally:
            for item in group:
                item.staged.discard()
        return [outcomes[i] for i in range(len(group))]

    def _existing(self, sop_uids: Sequence[str]) -> dict[str, Any]:
        with self._engine.connect() as conn:
            return existing_instances(conn, sop_uids)

    def _check_existing(self, existing: Any, item: PreparedInstance) -> bool:
        """True if identical content is stored already; raises on a rejected conflict."""
        if existing is None:
            return False
        if existing.sha256 == item.staged.sha256:
            return True
        if self._on_conflict == "reject":
            raise DuplicateInstance(
                f"SOP Instance {item.sop_uid} is already stored with different content"
            )
        return False

    def _decide(self, existing: Any, item: PreparedInstance) -> Outcome | None:
        """The outcome if the index already decides it (identical copy, rejected conflict)."""
        try:
            if self._check_existing(existing, item):
                return dataclasses.replace(item.stored, already_stored=True)
        except WsiArchiveError as exc:
            exc.sop = (item.stored.sop_class_uid, item.sop_uid)
            return exc
        return None

    def _commit_round(self, items: list[PreparedInstance]) -> list[Outcome]:
        """Commit instances with distinct SOP Instance UIDs."""
        outcomes: dict[str, Outcome] = {}
        existing = self._existing([i.sop_uid for i in items])
        placed: list[_Placed] = []
        folders: set[Path] = set()
        try:
            for item in items:
                decided = self._decide(existing.get(item.sop_uid), item)
                if decided is not None:
                    outcomes[item.sop_uid] = decided
                    continue
                # The path carries the content hash: a concurrent ingest of the same bytes
                # renames identical content onto the same name, which is harmless.
                relative = self._storage.relative_path(
                    item.stored.study_uid, item.stored.series_uid, item.sop_uid,
                    item.staged.sha256,
                )
                try:
                    _, touched = self._storage.place(item.staged, relative)
                except WsiArchiveError as exc:
                    exc.sop = (item.stored.sop_class_uid, item.sop_uid)
                    outcomes[item.sop_uid] = exc
                    continue
                folders |= touched
                placed.append(_Placed(item, relative, None))
            # The renames are durable before any index row points at them.
            self._storage.sync_folders(folders)
            with self._commit_lock:
                self._index(placed, outcomes)
        except BaseException:
            for p in placed:
                if p.item.sop_uid not in outcomes:
                    self._storage.remove(p.relative)
            raise
        for p in placed:
            outcome = outcomes[p.item.sop_uid]
            if isinstance(outcome, StoredInstance) and outcome.replaced:
                self._storage.remove(p.old.file_path)
                log.info("overwrote instance %s", p.item.sop_uid)
        return [outcomes[i.sop_uid] for i in items]

    def _index(self, placed: list[_Placed], outcomes: dict[str, Outcome]) -> None:
        """Index placed instances (commit lock held); fills ``outcomes`` for each."""
        # Again, under the lock: another ingest may have stored the same UIDs meanwhile.
        existing = self._existing([p.item.sop_uid for p in placed])
        fresh: list[_Placed] = []
        for p in placed:
            p.old = existing.get(p.item.sop_uid)
            decided = self._decide(p.old, p.item)
            if decided is None:
                fresh.append(p)
                continue
            outcomes[p.item.sop_uid] = decided
            if p.old.file_path != p.relative:
                self._storage.remove(p.relative)
        new = [p for p in fresh if p.old is None]
        if new:
            try:
                self._write_group(new)
            except Exception as exc:  # noqa: BLE001 - retried one by one, which re-raises
                log.info("group of %d rolled back (%s); indexing one by one", len(new), exc)
                for p in new:
                    self._write_alone(p, outcomes)
            else:
                for p in new:
                    outcomes[p.item.sop_uid] = p.item.stored
        for p in fresh:
            if p.old is not None:
                self._write_alone(p, outcomes)

    def _write_group(self, group: list[_Placed]) -> None:
        """One transaction for a group of new instances."""
        series: dict[str, tuple[int, str]] = {}
        with self._engine.begin() as conn:
            rows = [
                instance_row(
                    self._series_pk(conn, p.item.row, series),
                    {**p.item.row, "file_path": p.relative},
                )
                for p in group
            ]
            insert_instances(conn, rows)
        self._series.update(series)

    def _write_alone(self, p: _Placed, outcomes: dict[str, Outcome]) -> None:
        """One transaction for one instance; its own errors become its outcome.

        Other processes (HTTP workers, the DIMSE process) ingest into the same index: one
        may create the same patient, study or series row, or store the same instance,
        between this look-up and this insert. Its transaction has committed by the time
        ours fails (our insert waited for its write lock), so looking again decides.
        """
        for attempt in range(_ALONE_ATTEMPTS):
            series: dict[str, tuple[int, str]] = {}
            try:
                with self._engine.begin() as conn:
                    if p.old is not None:
                        delete_instances(conn, [p.old.pk])
                        self._series.clear()
                    series_pk = self._series_pk(conn, p.item.row, series)
                    insert_instances(
                        conn, [instance_row(series_pk, {**p.item.row, "file_path": p.relative})]
                    )
            except IntegrityError as exc:
                self._series.clear()
                found = self._existing([p.item.sop_uid]).get(p.item.sop_uid)
                decided = self._decide(found, p.item) if p.old is None else None
                if decided is not None and found is not None:
                    outcomes[p.item.sop_uid] = decided
                    if found.file_path != p.relative:
                        self._storage.remove(p.relative)
                    return
                if attempt + 1 < _ALONE_ATTEMPTS:
                    log.info("instance %s met a concurrent ingest (%s); trying again",
                             p.item.sop_uid, exc.orig)
                    continue
                self._fail_alone(p, outcomes, Conflict(
                    f"SOP Instance {p.item.sop_uid} was being stored concurrently"))
                return
            except WsiArchiveError as exc:
                self._fail_alone(p, outcomes, exc)
                return
            break
        self._series.update(series)
        stored = p.item.stored
        outcomes[p.item.sop_uid] = (
            stored if p.old is None else dataclasses.replace(stored, replaced=True)
        )

    def _fail_alone(self, p: _Placed, outcomes: dict[str, Outcome],
                    error: WsiArchiveError) -> None:
        error.sop = (p.item.stored.sop_class_uid, p.item.sop_uid)
        outcomes[p.item.sop_uid] = error
        self._storage.remove(p.relative)

    def _series_pk(
        self, conn: Connection, row: dict[str, Any], added: dict[str, tuple[int, str]]
    ) -> int:
        """The series row of an instance, from the caches or found/created in ``conn``."""
        series_uid, study_uid = row["seriesinstanceuid"], row["studyinstanceuid"]
        cached = added.get(series_uid) or self._series.get(series_uid)
        if cached is not None and cached[1] == study_uid:
            return cached[0]
        series_pk = upsert_parents(conn, row)
        added[series_uid] = (series_pk, study_uid)
        return series_pk


def _rounds(group: Sequence[PreparedInstance]) -> list[list[int]]:
    """Indexes of ``group`` split so that no round holds a SOP Instance UID twice (a later
    copy then meets the earlier one as stored, as if it had come in a later request)."""
    rounds: list[list[int]] = []
    seen: list[set[str]] = []
    for index, item in enumerate(group):
        for uids, members in zip(seen, rounds, strict=True):
            if item.sop_uid not in uids:
                uids.add(item.sop_uid)
                members.append(index)
                break
        else:
            seen.append({item.sop_uid})
            rounds.append([index])
    return rounds


