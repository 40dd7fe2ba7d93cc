"""Group commit: a group of instances is stored together, and each one still fails alone."""

from __future__ import annotations

import copy
import logging
import multiprocessing
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest

from archive.archive import Archive
from archive.ingest import Ingester, PreparedInstance
from archive.parsing import StoredInstance
from archive.status import DuplicateInstance, StudyMismatch
from archive.storage import StagedFile
from tests.support import fresh_copy, to_bytes
from wsi.errors import InvalidInput, WsiArchiveError
from wsi.settings import Settings


@pytest.fixture
def archive(tmp_path: Path) -> Iterator[Archive]:
    archive = Archive(Settings(data_dir=tmp_path / "data"))
    try:
        yield archive
    finally:
        archive.close()


def _prepared(archive: Archive, data: bytes) -> PreparedInstance:
    staged = archive.stage()
    staged.write(data)
    staged.finish()
    return archive.prepare(staged)


def _stored_files(archive: Archive) -> list[Path]:
    return sorted(archive.storage.instances.rglob("*.dcm"))


def test_group_stores_all_in_one_series_folder(archive: Archive) -> None:
    first = fresh_copy("CT_small.dcm")
    group = [first] + [
        fresh_copy("CT_small.dcm", study_uid=first.StudyInstanceUID) for _ in range(4)
    ]
    for ds in group[1:]:
        ds.SeriesInstanceUID = first.SeriesInstanceUID

    outcomes = archive.commit([_prepared(archive, to_bytes(ds)) for ds in group])

    assert all(isinstance(o, StoredInstance) and not o.already_stored for o in outcomes)
    files = _stored_files(archive)
    assert len(files) == 5 and len({f.parent for f in files}) == 1
    assert len(archive.instances(first.StudyInstanceUID)) == 5
    assert not list(archive.storage.staging.iterdir())


def test_each_instance_of_a_group_fails_alone(archive: Archive) -> None:
    stored = fresh_copy("CT_small.dcm")
    archive.commit([_prepared(archive, to_bytes(stored))])
    changed = copy.deepcopy(stored)
    changed.PatientName = "Other^Content"
    foreign_series = fresh_copy("CT_small.dcm")
    foreign_series.SeriesInstanceUID = stored.SeriesInstanceUID  # of another study
    good = fresh_copy("CT_small.dcm")
    repeated = to_bytes(good)

    outcomes = archive.commit([
        _prepared(archive, to_bytes(changed)),
        _prepared(archive, to_bytes(foreign_series)),
        _prepared(archive, repeated),
        _prepared(archive, repeated),
    ])

    conflict, mismatch, first, again = outcomes
    assert isinstance(conflict, DuplicateInstance)
    assert conflict.sop == (str(stored.SOPClassUID), str(stored.SOPInstanceUID))
    assert isinstance(mismatch, StudyMismatch)
    assert isinstance(first, StoredInstance) and not first.already_stored
    assert isinstance(again, StoredInstance) and again.already_stored
    assert len(_stored_files(archive)) == 2  # the first instance and the good one
    with pytest.raises(WsiArchiveError):
        archive.instances(foreign_series.StudyInstanceUID)
    assert not list(archive.storage.staging.iterdir())


def test_prepare_discards_what_does_not_parse(archive: Archive) -> None:
    staged = archive.stage()
    staged.write(b"not DICOM at all" * 20)
    staged.finish()

    with pytest.raises(InvalidInput):
        archive.prepare(staged)

    assert not staged.path.exists()


def test_new_folders_are_flushed_with_their_parents(archive: Archive) -> None:
    staged = archive.stage()
    staged.write(b"x")
    staged.finish()
    relative = archive.storage.relative_path("1.2.3", "1.2.3.4", "1.2.3.4.5", "ab" * 32)

    target, folders = archive.storage.place(staged, relative)
    archive.storage.sync_folders(folders)

    assert target.read_bytes() == b"x"
    assert archive.storage.instances in folders
    assert set(target.parents) & folders == folders  # the leaf folder and each new parent
    again = archive.storage.stage()
    again.write(b"y")
    again.finish()
    other = archive.storage.relative_path("1.2.3", "1.2.3.4", "1.2.3.4.6", "cd" * 32)
    assert archive.storage.place(again, other)[1] == {target.parent}


def test_a_killed_parser_process_is_replaced(tmp_path: Path) -> None:
    archive = Archive(Settings(data_dir=tmp_path / "data"))
    ingester = Ingester(archive.storage, archive.engine, "reject", 1024, parser_processes=1)
    try:
        first = ingester.prepare(_staged(archive, fresh_copy("CT_small.dcm")))
        pool = ingester._parser_pool()
        assert pool is not None
        for pid in list(pool._processes):  # the process pool's own bookkeeping
            os.kill(pid, signal.SIGKILL)

        second = ingester.prepare(_staged(archive, fresh_copy("CT_small.dcm")))
        outcomes = ingester.commit([first, second])
    finally:
        ingester.close()
        archive.close()

    assert all(isinstance(o, StoredInstance) for o in outcomes)


def _staged(archive: Archive, ds: pydicom.Dataset) -> StagedFile:
    staged = archive.stage()
    staged.write(to_bytes(ds))
    staged.finish()
    return staged


def test_the_parser_process_can_start_before_the_first_ingest(tmp_path: Path) -> None:
    archive = Archive(Settings(data_dir=tmp_path / "data"))
    ingester = Ingester(archive.storage, archive.engine, "reject", 1024, parser_processes=1)
    try:
        before = set(multiprocessing.active_children())
        ingester.start_parser()
        started = set(multiprocessing.active_children()) - before
        prepared = ingester.prepare(_staged(archive, fresh_copy("CT_small.dcm")))
        (outcome,) = ingester.commit([prepared])
        after = set(multiprocessing.active_children()) - before
    finally:
        ingester.close()
        archive.close()

    assert len(started) == 1  # spawned by start_parser, not by the ingest
    assert after == started  # the ingest used it
    assert isinstance(outcome, StoredInstance)


def test_the_parser_process_logs_like_the_server(tmp_path: Path,
                                                 capfd: pytest.CaptureFixture[str]) -> None:
    ds = fresh_copy("CT_small.dcm")
    del ds.PixelData
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated = ds.BitsStored = 1
    ds.HighBit = 0
    ds.PixelData = bytes(8)  # 1-bit pixels: stored whole, no frame-level access (logged)
    ds["PixelData"].VR = "OW"
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.INFO)
    archive = Archive(Settings(data_dir=tmp_path / "data"))
    ingester = Ingester(archive.storage, archive.engine, "reject", 1024, parser_processes=1)
    try:
        (outcome,) = ingester.commit([ingester.prepare(_staged(archive, ds))])
    finally:
        ingester.close()
        archive.close()
        root.setLevel(level)

    assert isinstance(outcome, StoredInstance)
    assert f"no frame access for {ds.SOPInstanceUID}" in capfd.readouterr().err
