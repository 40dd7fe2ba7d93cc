"""Change counters shared by every process that serves one archive.

``wsi serve`` runs several HTTP worker processes (and a DIMSE process) on one archive, and
each keeps caches of index rows, slides and open files. A process that changes the index
bumps a counter here; every process compares the counters with the values it last saw
before it trusts a cache, and drops what may be stale when they moved.

The counters live in a 16-byte file in the data folder, memory-mapped, so that a check is
a memory read (the tile fast path makes one per request), not a query or a system call.
Bumps take an exclusive ``flock`` so that none is lost. A reader may see a torn value while
a bump is being written: that only makes it drop its caches once more than needed.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_LAYOUT = struct.Struct("<QQ")


@dataclass(frozen=True)
class Changes:
    """How many commits stored new instances, and how many deleted or replaced files."""

    stored: int = 0
    removed: int = 0


class ChangeCounters:
    """The shared counters of one data folder. Thread-safe; one file descriptor and one
    16-byte mapping per process."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        with self._locked():
            if os.fstat(self._fd).st_size < _LAYOUT.size:
                os.ftruncate(self._fd, _LAYOUT.size)
        self._map = mmap.mmap(self._fd, _LAYOUT.size)
        self._thread_lock = threading.Lock()

    def read(self) -> Changes:
        """The counters as they are now (a memory read)."""
        return Changes(*_LAYOUT.unpack_from(self._map))

    def bump(self, stored: int = 0, removed: int = 0) -> tuple[Changes, Changes]:
        """Add to the counters; returns the values just before and just after this bump."""
        with self._thread_lock, self._locked():
            before = self.read()
            after = Changes(before.stored + stored, before.removed + removed)
            _LAYOUT.pack_into(self._map, 0, after.stored, after.removed)
        return before, after

    def close(self) -> None:
        """Unmap and close the file."""
        self._map.close()
        os.close(self._fd)

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """An exclusive ``flock`` on the counters' file (other processes wait for it)."""
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
