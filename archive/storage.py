"""Instance files on disk: staging, atomic commit, paths from hashed UIDs, removal.

Layout under the data directory::

    staging/<random>.part            files being received (same filesystem as instances/)
    instances/ab/cd/<uid-hash>.<content-hash>.dcm

File names come only from hashes, never from client-supplied strings, so no UID or upload
name can escape the data directory. The content hash in the name lets an overwrite write the
new version beside the old one and swap them in the index transaction.
"""

from __future__ import annotations

import errno
import hashlib
import os
import uuid
from pathlib import Path
from types import TracebackType

from wsi.errors import InvalidInput, Unavailable

_CHUNK = 1024 * 1024


class StagedFile:
    """A file being received into staging: hashed and counted as written, fsynced on finish.

    Memory bound: nothing is buffered here beyond the OS file buffer.
    """

    def __init__(self, path: Path, max_bytes: int) -> None:
        self.path = path
        self._max_bytes = max_bytes
        self._file = open(path, "xb")  # noqa: SIM115 - closed in finish()/discard()
        self._hash = hashlib.sha256()
        self.size = 0
        self.sha256 = ""

    def take(self, source: Path) -> None:
        """Make ``source`` this staged file's content by renaming it, then hash it.

        Used for files this process received into its own temporary folder (C-STORE): a
        rename on the same filesystem instead of a copy. Across filesystems it copies.
        """
        self._file.close()
        try:
            os.replace(source, self.path)
        except OSError as exc:
            if exc.errno != errno.EXDEV:
                raise Unavailable(f"cannot move received file to staging: {exc.strerror}") from exc
            self._file = open(self.path, "wb")  # noqa: SIM115 - closed in finish()
            self.copy_from(source)
            return
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed in finish()
        with open(self.path, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                self.size += len(chunk)
                self._hash.update(chunk)
        if self.size > self._max_bytes:
            raise InvalidInput(f"instance larger than the limit of {self._max_bytes} bytes")

    def write(self, data: bytes | memoryview) -> None:
        """Append ``data``; refuses to grow past the configured limit."""
        self.size += len(data)
        if self.size > self._max_bytes:
            raise InvalidInput(f"instance larger than the limit of {self._max_bytes} bytes")
        self._hash.update(data)
        try:
            self._file.write(data)
        except OSError as exc:
            raise Unavailable(f"cannot write to staging: {exc.strerror}") from exc

    def copy_from(self, source: Path) -> None:
        """Stream the content of ``source`` into this file."""
        with open(source, "rb") as fh:
            while chunk := fh.read(_CHUNK):
                self.write(chunk)

    def finish(self) -> None:
        """Flush and fsync, so that a later rename publishes complete bytes."""
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        self.sha256 = self._hash.hexdigest()

    def discard(self) -> None:
        """Close and remove the staged file (idempotent)."""
        if not self._file.closed:
            self._file.close()
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> StagedFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # Whatever happened, the staging file never outlives the ingest: either it was
        # renamed into instances/ (then unlink finds nothing) or it is dropped here.
        self.discard()


class Storage:
    """The instance folder of one archive."""

    def __init__(self, root: Path, max_instance_bytes: int) -> None:
        self.root = root
        self.staging = root / "staging"
        self.instances = root / "instances"
        self._max_bytes = max_instance_bytes
        self.staging.mkdir(parents=True, exist_ok=True)
        self.instances.mkdir(parents=True, exist_ok=True)

    def clear_staging(self) -> int:
        """Remove leftovers of interrupted ingests (called at start-up); returns the count."""
        count = 0
        for leftover in self.staging.glob("*.part"):
            leftover.unlink(missing_ok=True)
            count += 1
        return count

    def stage(self) -> StagedFile:
        """A new, empty staging file."""
        return StagedFile(self.staging / f"{uuid.uuid4().hex}.part", self._max_bytes)

    @staticmethod
    def relative_path(sop_instance_uid: str, sha256: str) -> str:
        """Where an instance with this UID and content lives, relative to the root."""
        digest = hashlib.sha256(sop_instance_uid.encode("ascii")).hexdigest()
        return f"instances/{digest[:2]}/{digest[2:4]}/{digest}.{sha256[:16]}.dcm"

    def absolute(self, relative: str) -> Path:
        """The absolute path of a stored file."""
        return self.root / relative

    def commit(self, staged: StagedFile, relative: str) -> Path:
        """Atomically move a finished staged file to its place."""
        target = self.absolute(relative)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged.path, target)
        _fsync_dir(target.parent)
        return target

    def remove(self, relative: str) -> None:
        """Delete a stored file if present."""
        self.absolute(relative).unlink(missing_ok=True)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
