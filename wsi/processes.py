"""Child processes that do not outlive the process that started them."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from multiprocessing.connection import wait


def when_parent_exits(action: Callable[[], None]) -> None:
    """Run ``action`` in a daemon thread once the process that started this one exits.

    For ``multiprocessing`` children (spawned or fork-server): a pool worker blocks on its
    task queue, whose write end it holds itself, so it would wait forever once its parent is
    killed; a server process would go on serving. The parent's sentinel becomes readable
    when the parent is gone, however it ended. Does nothing in a process that has no
    ``multiprocessing`` parent.
    """
    parent = multiprocessing.parent_process()
    if parent is None:
        return

    def watch() -> None:
        wait([parent.sentinel])
        action()

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
