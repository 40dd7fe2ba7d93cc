"""Convert-then-store, once: vendor slide → DICOM WSI series → the archive.

``convert_and_store`` is the one place a conversion's output enters the archive; the CLI
(``wsi dicomize --store``) calls it in-process and :class:`ConversionJobs` calls it with the
conversion itself running in a worker process, so the server's event loop and its memory are
never burdened by a slide.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import shutil
import threading
import time
import uuid
import zipfile
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Literal

from archive.archive import Archive
from archive.parsing import StoredInstance
from dicomizer.convert import ConversionResult, ProgressCallback, convert
from dicomizer.options import ConversionOptions
from wsi.errors import InvalidInput, NotFound, WsiArchiveError
from wsi.processes import when_parent_exits

log = logging.getLogger(__name__)

Converter = Callable[[Path, Path, ConversionOptions, ProgressCallback | None], ConversionResult]
JobState = Literal["queued", "running", "storing", "done", "failed"]


def store_series(archive: Archive, files: tuple[Path, ...]) -> list[StoredInstance]:
    """Ingest a conversion's files as one series, all or nothing."""
    stored: list[StoredInstance] = []
    try:
        for path in files:
            stored.append(archive.ingest_path(path, move=True))
    except BaseException:
        for instance in stored:
            if not instance.already_stored:
                archive.delete(instance.study_uid, instance.series_uid,
                               instance.sop_instance_uid)
        raise
    return stored


def convert_and_store(
    archive: Archive,
    source: Path,
    work_dir: Path,
    options: ConversionOptions,
    progress: ProgressCallback | None = None,
    converter: Converter = convert,
) -> tuple[ConversionResult, list[StoredInstance]]:
    """Convert ``source`` into ``work_dir`` (removed afterwards) and store the series."""
    try:
        result = converter(source, work_dir, options, progress)
        return result, store_series(archive, result.files)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)


def _exit_now() -> None:
    """A conversion process's end when the server process is gone (see wsi.processes)."""
    os._exit(0)


def _convert_in_worker(
    source: Path, output: Path, options: ConversionOptions, progress_file: Path
) -> ConversionResult:
    """Runs in a worker process; reports progress through a small file the server polls."""

    def progress(done: int, total: int) -> None:
        progress_file.write_text(f"{done} {total}")

    return convert(source, output, options, progress)


@dataclass(frozen=True)
class JobStatus:
    """What GET /api/jobs/{id} answers."""

    id: str
    state: JobState
    filename: str
    progress: float = 0.0
    study_uid: str | None = None
    series_uid: str | None = None
    instances: int = 0
    error: str | None = None
    seconds: float = 0.0


def unpack_mrxs_zip(archive_path: Path, folder: Path) -> Path:
    """Extract a zip holding a .mrxs and its data folder; return the .mrxs path.

    Member names are checked so that nothing is written outside ``folder``.
    """
    try:
        with zipfile.ZipFile(archive_path) as bundle:
            for member in bundle.infolist():
                target = (folder / member.filename).resolve()
                if not target.is_relative_to(folder.resolve()):
                    raise InvalidInput(f"zip member {member.filename!r} escapes the upload")
            bundle.extractall(folder)
    except zipfile.BadZipFile as exc:
        raise InvalidInput(f"not a readable zip file: {exc}") from exc
    slides = sorted(folder.rglob("*.mrxs"))
    if len(slides) != 1:
        raise InvalidInput(f"the zip must hold exactly one .mrxs file, not {len(slides)}")
    data_folder = slides[0].with_suffix("")
    if not data_folder.is_dir():
        raise InvalidInput(f"the zip lacks the slide's data folder {data_folder.name}/")
    return slides[0]


_JOB_ID = re.compile(r"[0-9a-f]{32}")
_OWNER = "owner"
"""File in a job's folder: the process id of the worker process that runs it."""
KEEP_FINISHED_SECONDS = 7 * 24 * 3600
"""Statuses of ended jobs are dropped at a start-up this long after they ended."""
_UNFINISHED = ("queued", "running", "storing")


class ConversionJobs:
    """Queued conversions of uploaded slides, run by a process pool. Thread-safe.

    A job works in ``ROOT/ID/`` (removed when it ends) and its status is a small JSON file
    ``ROOT/../jobs/ID.json``, written by the process that runs the job and read by any:
    every HTTP worker process answers for every job, and finished jobs are still known after
    a restart (for :data:`KEEP_FINISHED_SECONDS`).
    """

    def __init__(self, archive: Archive, root: Path, workers: int = 1,
                 keep_failed_uploads: bool = False) -> None:
        self._archive = archive
        self._root = root
        self._statuses = _status_dir(root)
        self._keep_failed = keep_failed_uploads
        # spawn, not fork: the server process runs threads (uvicorn, pynetdicom, the pool's
        # own), and forking a threaded process can deadlock the child.
        self._pool = ProcessPoolExecutor(
            max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
            initializer=when_parent_exits, initargs=(_exit_now,),
        )
        self._lock = threading.Lock()
        root.mkdir(parents=True, exist_ok=True)
        self._statuses.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def mark_interrupted(root: Path) -> int:
        """Fail the jobs a stopped server left unfinished and remove uploads it never
        finished receiving (called once at start-up, before any worker runs jobs); returns
        how many jobs were failed. Statuses of jobs that ended long ago are dropped."""
        statuses = _status_dir(root)
        for folder in root.iterdir() if root.is_dir() else ():
            if folder.is_dir() and not (statuses / f"{folder.name}.json").exists():
                shutil.rmtree(folder, ignore_errors=True)
        count = 0
        for path in statuses.glob("*.json") if statuses.is_dir() else ():
            status = _read_status(path)
            if status is not None and status.state in _UNFINISHED:
                _write_status(statuses, replace(status, state="failed",
                                                error="interrupted: the server stopped"))
                shutil.rmtree(root / status.id, ignore_errors=True)
                count += 1
            elif time.time() - _modified(path) > KEEP_FINISHED_SECONDS:
                path.unlink(missing_ok=True)
        return count

    def new_upload(self, filename: str) -> tuple[str, Path]:
        """A job id and the path its upload is to be written to."""
        job_id = uuid.uuid4().hex
        safe = "".join(c for c in Path(filename).name if c.isalnum() or c in "._- ()")
        safe = safe.strip(". ") or "upload"
        folder = self._root / job_id
        folder.mkdir()
        return job_id, folder / "upload" / safe

    def discard_upload(self, job_id: str) -> None:
        """Forget an upload that never became a job (the client went away, it was invalid)."""
        shutil.rmtree(self._root / job_id, ignore_errors=True)

    def submit(self, job_id: str, upload: Path, options: ConversionOptions) -> JobStatus:
        """Queue the conversion of a finished upload."""
        status = JobStatus(job_id, "queued", upload.name)
        # Which process runs the job: another worker process that is asked for its status
        # can then tell a job whose process died (see status()).
        (self._root / job_id / _OWNER).write_text(str(os.getpid()))
        with self._lock:
            _write_status(self._statuses, status)
        threading.Thread(target=self._run, args=(job_id, upload, options),
                         name=f"job-{job_id[:8]}", daemon=True).start()
        return status

    def status(self, job_id: str) -> JobStatus:
        """The current state of a job; NotFound for unknown ids."""
        status = _read_status(self._statuses / f"{job_id}.json") \
            if _JOB_ID.fullmatch(job_id) else None
        if status is None:
            raise NotFound(f"no job {job_id}")
        if status.state in _UNFINISHED and not self._owner_alive(job_id):
            return self._orphaned(status)
        if status.state == "running":
            status = replace(status, progress=self._progress(job_id))
        return status

    def _owner_alive(self, job_id: str) -> bool:
        """False only if the process that ran the job is known to be gone."""
        try:
            pid = int((self._root / job_id / _OWNER).read_text())
        except (OSError, ValueError):
            return True  # not written yet, or the job is just finishing and cleaning up
        if pid == os.getpid():
            return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True

    def _orphaned(self, status: JobStatus) -> JobStatus:
        """A job whose worker process died (the supervisor started another one)."""
        failed = replace(status, state="failed",
                         error="interrupted: the worker process running it stopped")
        with self._lock:
            _write_status(self._statuses, failed)
        if not self._keep_failed:
            shutil.rmtree(self._root / status.id, ignore_errors=True)
        log.warning("job %s failed: its worker process is gone", status.id)
        return failed

    def all(self) -> list[JobStatus]:
        """Every job, newest last."""
        paths = sorted(self._statuses.glob("*.json"), key=_modified)
        return [self.status(path.stem) for path in paths if _JOB_ID.fullmatch(path.stem)]

    def shutdown(self) -> None:
        """Stop the worker processes (running conversions are abandoned)."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _progress(self, job_id: str) -> float:
        try:
            done, total = (self._root / job_id / "progress").read_text().split()
            return min(1.0, int(done) / max(int(total), 1))
        except (OSError, ValueError):
            return 0.0

    def _update(self, job_id: str, **changes: object) -> None:
        with self._lock:
            status = _read_status(self._statuses / f"{job_id}.json")
            if status is not None:
                _write_status(self._statuses, replace(status, **changes))  # type: ignore[arg-type]

    def _run(self, job_id: str, upload: Path, options: ConversionOptions) -> None:
        started = time.monotonic()
        folder = self._root / job_id
        progress_file = folder / "progress"

        def in_worker(source: Path, output: Path, opts: ConversionOptions,
                      _progress: ProgressCallback | None) -> ConversionResult:
            self._update(job_id, state="running")
            result = self._pool.submit(
                _convert_in_worker, source, output, opts, progress_file
            ).result()
            self._update(job_id, state="storing", progress=1.0)
            return result

        try:
            source = upload
            if upload.suffix.lower() == ".zip":
                source = unpack_mrxs_zip(upload, folder / "unpacked")
            result, stored = convert_and_store(
                self._archive, source, folder / "output", options, converter=in_worker
            )
        except WsiArchiveError as exc:
            self._finish_failed(job_id, exc.reason, started)
        except Exception as exc:  # a worker crash or a bug: logged, reported generically
            log.exception("conversion job %s failed", job_id)
            self._finish_failed(job_id, f"conversion failed: {type(exc).__name__}", started)
        else:
            # Clean up first: a client that sees the final state sees the final disk too.
            shutil.rmtree(folder, ignore_errors=True)
            self._update(job_id, state="done", progress=1.0, study_uid=result.study_uid,
                         series_uid=result.series_uid, instances=len(stored),
                         seconds=time.monotonic() - started)
            log.info("job %s stored series %s (%d instances)", job_id, result.series_uid,
                     len(stored))

    def _finish_failed(self, job_id: str, reason: str, started: float) -> None:
        if not self._keep_failed:
            shutil.rmtree(self._root / job_id, ignore_errors=True)
        self._update(job_id, state="failed", error=reason, seconds=time.monotonic() - started)
        log.info("job %s failed: %s", job_id, reason)


def _status_dir(work_root: Path) -> Path:
    return work_root.parent / "jobs"


def _modified(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def _read_status(path: Path) -> JobStatus | None:
    """A job's status file, or None if it is missing or unreadable."""
    try:
        return JobStatus(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def _write_status(statuses: Path, status: JobStatus) -> None:
    """Replace a job's status file atomically (readers in other processes never see half)."""
    path = statuses / f"{status.id}.json"
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    partial.write_text(json.dumps(asdict(status)))
    os.replace(partial, path)
