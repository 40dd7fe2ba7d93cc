"""HTTP worker processes: several processes accept connections on one listening socket.

One Python process tops out at about one core (the GIL), and a tile costs ~0.2 ms of CPU,
so one process serves ~5,000 tiles/s and queues beyond that. The supervisor binds the
socket once and starts ``count`` processes (from a fork server, see
:class:`WorkerProcesses`) that each run the whole app on it; the kernel hands each new
connection to one of them. What the processes share lives in the
data folder (index, files, job status files, :mod:`archive.changes`), never in memory.

The supervisor forwards SIGTERM/SIGINT to the workers, waits for them to finish their
requests, and restarts a worker that dies, unless workers keep dying (more than
:data:`MAX_RESTARTS` in :data:`RESTART_WINDOW_SECONDS`, e.g. a start-up error): then it
stops the service rather than loop. A worker whose supervisor dies stops itself.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import time
from collections import deque
from collections.abc import Callable, Sequence
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from typing import Any

from wsi.errors import Unavailable
from wsi.processes import when_parent_exits

log = logging.getLogger(__name__)

MAX_RESTARTS = 5
"""Workers restarted within :data:`RESTART_WINDOW_SECONDS`, at most; the next exit stops."""
RESTART_WINDOW_SECONDS = 60.0
_STOP_SECONDS = 20.0
"""How long stopping workers may take to finish their requests before they are killed."""


def bind_socket(host: str, port: int) -> socket.socket:
    """The listening TCP socket all workers accept on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise Unavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


class WorkerProcesses:
    """``count`` processes running ``target(*args, sock)``: :meth:`start`, then
    :meth:`supervise` until a signal, then :meth:`stop`."""

    def __init__(self, count: int, target: Callable[..., None], args: tuple[Any, ...],
                 sock: socket.socket, preload: Sequence[str] = ()) -> None:
        self._count = count
        self._target = target
        self._args = args
        self._sock = sock
        # A fork server, not fork and not spawn: the supervisor runs threads (the DIMSE
        # server), and a forked copy of a threaded process can deadlock; spawned workers
        # would each import the whole app again (seconds of CPU at start-up). The fork
        # server is a clean process that imports ``preload`` once and forks every worker.
        self._context = multiprocessing.get_context("forkserver")
        self._context.set_forkserver_preload(list(preload))
        self._workers: dict[int, BaseProcess] = {}
        self._restarts: deque[float] = deque(maxlen=MAX_RESTARTS)
        self._stopping = False

    def start(self) -> None:
        """Start the workers; SIGTERM/SIGINT make :meth:`supervise` return from now on."""
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        for number in range(self._count):
            self._start(number)

    def supervise(self) -> int:
        """Restart workers that die until a signal comes; the exit status."""
        while not self._stopping:
            wait([process.sentinel for process in self._workers.values()], timeout=0.5)
            for number, process in list(self._workers.items()):
                if process.is_alive() or self._stopping:
                    continue
                now = time.monotonic()
                if len(self._restarts) == MAX_RESTARTS and \
                        now - self._restarts[0] < RESTART_WINDOW_SECONDS:
                    log.error("HTTP worker %d exited with %s, %d exits in %.0f s: stopping "
                              "the service", number, process.exitcode, MAX_RESTARTS + 1,
                              now - self._restarts[0])
                    return 1
                log.error("HTTP worker %d exited with %s; starting it again", number,
                          process.exitcode)
                self._restarts.append(now)
                self._start(number)
        return 0

    def stop(self) -> None:
        """Stop every worker: SIGTERM (uvicorn finishes the requests in flight), then, past
        the grace period, SIGKILL."""
        processes = list(self._workers.values())
        for process in processes:
            if process.is_alive():
                process.terminate()
        deadline = time.monotonic() + _STOP_SECONDS
        for process in processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
        self._workers.clear()

    def _on_signal(self, signum: int, _frame: object) -> None:
        self._stopping = True

    def _start(self, number: int) -> None:
        process = self._context.Process(target=_worker_main,
                                        args=(self._target, *self._args, self._sock),
                                        name=f"http-worker-{number}", daemon=False)
        process.start()
        self._workers[number] = process


def _worker_main(target: Callable[..., None], *args: Any) -> None:
    """A worker's entry point: ``target(*args)``, stopped (SIGTERM to itself, which uvicorn
    answers by finishing its requests) should the supervisor die without stopping it."""
    when_parent_exits(lambda: os.kill(os.getpid(), signal.SIGTERM))
    target(*args)
