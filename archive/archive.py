"""The archive facade: the one object the protocols (DICOMweb, DIMSE, CLI) talk to."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, func, select

from archive.attributes import Level
from archive.changes import ChangeCounters
from archive.index import finder
from archive.index.database import open_engine
from archive.index.schema import instances, series, studies
from archive.index.writer import delete_instances
from archive.ingest import Ingester, Outcome, PreparedInstance
from archive.lru import Lru
from archive.parsing import NOTHING_EXPECTED, Expected, StoredInstance
from archive.pixels import header_value, pixel_description
from archive.query import FindResult, Query
from archive.slide_images import FrameSpan, SlideImages, StoredTile
from archive.slides import Slide, SlideCache, build_slide
from archive.storage import StagedFile, Storage
from archive.transcoding import explicit_vr_little_endian
from wsi.codecs import PixelDescription, decode_frame
from wsi.dicom.encapsulation import FrameTable
from wsi.dicom.part10 import read_header
from wsi.errors import InvalidInput, NotFound, WsiArchiveError
from wsi.pyramid import InstanceFacts
from wsi.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InstanceRecord:
    """Where an instance is and what a retrieval needs to know about it."""

    pk: int
    study_uid: str
    series_uid: str
    sop_instance_uid: str
    sop_class_uid: str
    transfer_syntax_uid: str
    path: Path
    file_size: int
    number_of_frames: int
    sha256: str

    @property
    def etag(self) -> str:
        """A strong entity tag: instances never change under one content hash."""
        return self.sha256[:32]


_RECORD_CACHE_SIZE = 4096
_UNKNOWN: Any = object()

_RECORD_COLUMNS = (
    instances.c.pk,
    studies.c.studyinstanceuid,
    series.c.seriesinstanceuid,
    instances.c.sopinstanceuid,
    instances.c.sopclassuid,
    instances.c.transfer_syntax_uid,
    instances.c.file_path,
    instances.c.file_size,
    instances.c.numberofframes,
    instances.c.sha256,
)


class Archive:
    """Storage plus index; synchronous and thread-safe (call it from worker threads)."""

    def __init__(self, settings: Settings, engine: Engine | None = None, *,
                 parse_in_process: bool = False) -> None:
        """``parse_in_process``: parse incoming instances in this process rather than in a
        parser process (for a process with no event loop to keep responsive)."""
        self.settings = settings
        self.storage = Storage(settings.data_dir, settings.max_upload_bytes)
        self.engine = engine or open_engine(settings.resolved_database_url)
        self._ingester = Ingester(
            self.storage, self.engine, settings.on_conflict, settings.bulkdata_threshold,
            parser_processes=0 if parse_in_process else _parser_processes(),
        )
        self._frame_tables: Lru[tuple[int, str], FrameTable | None] = Lru(256)
        # Retrieval of one instance (a tile request) must not cost an index query each time.
        self._records: Lru[tuple[str, str, str], InstanceRecord] = Lru(_RECORD_CACHE_SIZE)
        # Slides (pyramid models) are built from stored metadata on first use; see slides.py.
        self._slides = SlideCache()
        # Other processes serving this data folder change the index too (HTTP workers, the
        # DIMSE process): their commits show in these counters; see _notice_changes.
        self._changes = ChangeCounters(settings.data_dir / "changes")
        self._seen = self._changes.read()
        self.images = SlideImages(self.read_frames)
        """Tiles, IIIF regions and associated images of slides (bounded transcode cache)."""

    def recover(self) -> None:
        """Remove what interrupted ingests left in staging; only the serving process calls it
        (at start-up, before it accepts anything), so no other process's ingest is harmed."""
        leftovers = self.storage.clear_staging()
        if leftovers:
            log.warning("removed %d staging files left by an interrupted ingest", leftovers)

    def start_parser(self) -> None:
        """Start the ingest parser process in the background (a server calls this at start-up
        so that its first ingest does not wait ~1 s for the process)."""
        self._ingester.start_parser()

    def close(self) -> None:
        """Release the database connections and stop the parser process."""
        self._ingester.close()
        self.engine.dispose()
        self._changes.close()

    @property
    def removals(self) -> int:
        """Grows whenever stored files are deleted or replaced, by any process: whoever keeps
        instance files open (the HTTP fast path) closes them when it changes, so that the
        space is freed."""
        self._notice_changes()
        return self._seen.removed

    def _notice_changes(self) -> None:
        """Drop what another process's commits may have made stale: after new instances,
        cached slides are revalidated on next use; after deletions or replacements, cached
        instance records and parent rows are dropped too. A memory read when nothing moved."""
        now = self._changes.read()
        seen = self._seen
        if now == seen:
            return
        if now.removed != seen.removed:
            self._forget_records()
            self._ingester.forget_parents()
        self._slides.expire_all()
        self._seen = now

    def _announce(self, stored: int = 0, removed: int = 0) -> None:
        """Tell the other processes about this process's commit (see :mod:`archive.changes`)."""
        before, after = self._changes.bump(stored, removed)
        if before == self._seen:
            # Nothing else moved in between: this process's own caches are already right.
            self._seen = after

    # ---- ingest -------------------------------------------------------------------------
    def stage(self) -> StagedFile:
        """A new staging file to stream an incoming instance into."""
        return self.storage.stage()

    def ingest(self, staged: StagedFile, expected: Expected = NOTHING_EXPECTED) -> StoredInstance:
        """Validate, store and index a finished staged file (the one ingest path, as a group
        of one: :meth:`prepare` then :meth:`commit`)."""
        (outcome,) = self.commit([self.prepare(staged, expected)])
        if isinstance(outcome, WsiArchiveError):
            raise outcome
        return outcome

    def prepare(
        self, staged: StagedFile, expected: Expected = NOTHING_EXPECTED
    ) -> PreparedInstance:
        """Parse and validate a finished staged file (discarded if it fails), for :meth:`commit`;
        ``expected`` is what the request that delivered it says it is."""
        return self._ingester.prepare(staged, expected)

    def commit(self, prepared: Sequence[PreparedInstance]) -> list[Outcome]:
        """Store and index prepared instances as one group, each failing alone (see
        :mod:`archive.ingest`); one outcome per instance, in order."""
        self._notice_changes()
        outcomes = self._ingester.commit(prepared)
        stored = [o for o in outcomes if isinstance(o, StoredInstance)]
        replaced = any(s.replaced for s in stored)
        if replaced:
            self._forget_records()
        new_series = {s.series_uid for s in stored if not s.already_stored}
        for series_uid in new_series:
            self._slides.forget(series_uid)
        if new_series or replaced:
            self._announce(stored=int(bool(new_series)), removed=int(replaced))
        return outcomes

    def ingest_path(self, path: Path, move: bool = False,
                    expected: Expected = NOTHING_EXPECTED) -> StoredInstance:
        """Ingest a file from anywhere: copied (folder import), or moved when ``move`` is set
        (files this process received itself, e.g. C-STORE temporary files)."""
        staged = self.stage()
        try:
            if move:
                staged.take(path)
            else:
                staged.copy_from(path)
            staged.finish()
        except BaseException:
            staged.discard()
            raise
        return self.ingest(staged, expected)

    # ---- query ----------------------------------------------------------------------------
    def find(self, query: Query) -> FindResult:
        """QIDO-RS / C-FIND."""
        with self.engine.connect() as conn:
            return finder.find(conn, query)

    def instances(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> list[InstanceRecord]:
        """The instances of a study, series or one instance; NotFound when there are none."""
        self._notice_changes()
        stmt = (
            select(*_RECORD_COLUMNS)
            .select_from(
                studies.join(series, series.c.study_pk == studies.c.pk).join(
                    instances, instances.c.series_pk == series.c.pk
                )
            )
            .where(studies.c.studyinstanceuid == study_uid)
            .order_by(series.c.pk, instances.c.instancenumber, instances.c.pk)
        )
        if series_uid is not None:
            stmt = stmt.where(series.c.seriesinstanceuid == series_uid)
        if sop_uid is not None:
            stmt = stmt.where(instances.c.sopinstanceuid == sop_uid)
        with self.engine.connect() as conn:
            rows = conn.execute(stmt).all()
        if not rows:
            what = sop_uid or series_uid or study_uid
            raise NotFound(f"no instances for {what}")
        return [
            InstanceRecord(
                pk=r.pk,
                study_uid=r.studyinstanceuid,
                series_uid=r.seriesinstanceuid,
                sop_instance_uid=r.sopinstanceuid,
                sop_class_uid=r.sopclassuid,
                transfer_syntax_uid=r.transfer_syntax_uid,
                path=self.storage.absolute(r.file_path),
                file_size=r.file_size,
                number_of_frames=r.numberofframes or 1,
                sha256=r.sha256,
            )
            for r in rows
        ]

    def instance(self, study_uid: str, series_uid: str, sop_uid: str) -> InstanceRecord:
        """One instance by its full address, from a small cache of recent lookups."""
        key = (study_uid, series_uid, sop_uid)
        self._notice_changes()
        record = self._records.get(key, None)
        if record is None:
            (record,) = self.instances(study_uid, series_uid, sop_uid)
            self._records.put(key, record)
        return record

    def _forget_records(self) -> None:
        self._records.clear()

    def metadata(self, records: list[InstanceRecord]) -> Iterator[str]:
        """The stored DICOM JSON text of each record (bulk data URIs still placeholders)."""
        pks = [r.pk for r in records]
        with self.engine.connect() as conn:
            texts = dict(
                conn.execute(
                    select(instances.c.pk, instances.c.metadata_json).where(
                        instances.c.pk.in_(pks)
                    )
                ).all()
            )
        return (texts[pk] for pk in pks)

    # ---- frames -----------------------------------------------------------------------------
    def _load_frame_table(self, pk: int, sha256: str) -> FrameTable | None:
        with self.engine.connect() as conn:
            blob = conn.scalar(select(instances.c.frame_table).where(instances.c.pk == pk))
        return FrameTable.from_bytes(blob) if blob else None

    def frame_table(self, record: InstanceRecord) -> FrameTable:
        """The frame positions of an instance; InvalidInput if it has no pixel data."""
        key = (record.pk, record.sha256)
        table = self._frame_tables.get(key, _UNKNOWN)
        if table is _UNKNOWN:
            table = self._load_frame_table(*key)
            self._frame_tables.put(key, table)
        if table is None:
            raise InvalidInput(f"instance {record.sop_instance_uid} has no frames")
        return table

    def read_frames(self, record: InstanceRecord, numbers: list[int]) -> Iterator[bytes]:
        """Frames by 1-based number, each one positioned read; NotFound outside the range."""
        table = self.frame_table(record)
        for n in numbers:
            if not 1 <= n <= len(table):
                raise NotFound(
                    f"frame {n} is outside 1..{len(table)} of {record.sop_instance_uid}"
                )
        fd = os.open(record.path, os.O_RDONLY)
        try:
            for n in numbers:
                yield table.read_frame(fd, n - 1)
        finally:
            os.close(fd)

    def decompressed(self, record: InstanceRecord) -> Iterator[bytes]:
        """The instance as an Explicit VR Little Endian Part 10 file, in pieces of about one
        frame (see :mod:`archive.transcoding`); Unsupported if it cannot be decoded."""
        header = read_header(record.path)
        frames: Iterator[bytes] = iter(())
        if header.pixel_data is not None:
            frames = self.read_frames(record, list(range(1, len(self.frame_table(record)) + 1)))
        return explicit_vr_little_endian(header, frames)

    def pixel_description(self, record: InstanceRecord) -> PixelDescription:
        """How to interpret the instance's decoded frames."""
        return pixel_description(next(self.metadata([record])))

    def decoded_frames(self, record: InstanceRecord, numbers: list[int]) -> Iterator[np.ndarray]:
        """Frames decoded to pixel arrays (for octet-stream without transfer-syntax=*)."""
        pixels = self.pixel_description(record)
        for data in self.read_frames(record, numbers):
            yield decode_frame(data, record.transfer_syntax_uid, pixels)

    def bulk_value(self, record: InstanceRecord, bulk_path: str) -> bytes:
        """A header element's value by its BulkDataURI path (pixel data excluded)."""
        return header_value(str(record.path), bulk_path)

    # ---- delete ----------------------------------------------------------------------------
    def delete(
        self, study_uid: str, series_uid: str | None = None, sop_uid: str | None = None
    ) -> int:
        """Delete a study, series or instance: index rows first, then the files."""
        records = self.instances(study_uid, series_uid, sop_uid)
        with self.engine.begin() as conn:
            delete_instances(conn, [r.pk for r in records])
        self._ingester.forget_parents()
        self._forget_records()
        for series_uid in {r.series_uid for r in records}:
            self._slides.forget(series_uid)
        for r in records:
            r.path.unlink(missing_ok=True)
        self._announce(removed=1)
        return len(records)

    # ---- slides ----------------------------------------------------------------------------
    def find_series(self, series_uid: str) -> str:
        """The Study Instance UID of a series found by its UID alone; NotFound if unknown."""
        stmt = (
            select(studies.c.studyinstanceuid)
            .select_from(studies.join(series, series.c.study_pk == studies.c.pk))
            .where(series.c.seriesinstanceuid == series_uid)
        )
        with self.engine.connect() as conn:
            study_uid = conn.scalar(stmt)
        if study_uid is None:
            raise NotFound(f"no series {series_uid}")
        return str(study_uid)

    def _series_signature(self, series_uid: str) -> tuple[int, int, int]:
        stmt = (
            select(func.count(instances.c.pk), func.coalesce(func.sum(instances.c.pk), 0),
                   func.coalesce(func.max(instances.c.pk), 0))
            .select_from(series.join(instances, instances.c.series_pk == series.c.pk))
            .where(series.c.seriesinstanceuid == series_uid)
        )
        with self.engine.connect() as conn:
            row = conn.execute(stmt).one()
        return int(row[0]), int(row[1]), int(row[2])

    def _build_slide(self, series_uid: str) -> Slide:
        records = self.instances(self.find_series(series_uid), series_uid)
        return build_slide(records, list(self.metadata(records)))

    def slide(self, series_uid: str) -> Slide:
        """A series as a whole-slide image (pyramids, associated images), cached by series."""
        self._notice_changes()
        return self._slides.get(
            series_uid,
            lambda: self._series_signature(series_uid),
            lambda: self._build_slide(series_uid),
        )

    def stored_tile(self, series_uid: str, level: int, col: int, row: int) -> StoredTile | None:
        """Where a passthrough tile's bytes are, answered from memory only (no index query,
        no file access): None unless the slide and the frame table are cached and fresh, so
        an event loop may call it; everything else goes through :attr:`images`."""
        self._notice_changes()
        slide = self._slides.peek(series_uid)
        if slide is None:
            return None
        return self.images.stored_tile(slide, level, col, row, self.cached_frame_span)

    def cached_instance(self, study_uid: str, series_uid: str, sop_uid: str
                        ) -> InstanceRecord | None:
        """:meth:`instance` if it is cached, else None; never queries the index."""
        self._notice_changes()
        return self._records.get((study_uid, series_uid, sop_uid), None)

    def cached_frame_span(self, record: InstanceRecord, number: int) -> FrameSpan | None:
        """Where frame ``number`` (1-based) lies, if the frame table is cached and the frame
        is one contiguous span; else None. Never touches the index or the file."""
        table = self._frame_tables.get((record.pk, record.sha256), None)
        if not isinstance(table, FrameTable) or table.fragmented or not 1 <= number <= len(table):
            return None
        offset, length = table.span(number - 1)
        return FrameSpan(record.path, record.sha256, record.file_size, offset, length)

    def series_facts(self, series_uid: str) -> list[InstanceFacts]:
        """The pyramid facts of each image instance of a series (from stored metadata)."""
        return list(self.slide(series_uid).facts.values())


def _parser_processes() -> int:
    """Processes that parse incoming instances: one where a second core can run it."""
    return 1 if (os.cpu_count() or 1) > 1 else 0


__all__ = ["Archive", "Expected", "InstanceRecord", "Level", "Query", "StoredInstance"]
