"""What every benchmark run against Orthanc does around its workloads.

The command line options they share, the results' header (machine, versions), waiting for
a quiet machine, starting both servers and, at the end, stopping them and saving the JSON.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from vs_orthanc.client import Client, Server
from vs_orthanc.common import REPO, RESULTS_DIR, save_run
from vs_orthanc.servers import RssWatch, start_orthanc, start_ours, stop, wait_until_quiet


def add_run_options(parser: argparse.ArgumentParser, *, max_wait: float) -> None:
    """Add the options of every run: quiet machine, keep, report only, no install."""
    parser.add_argument("--quiet-limit", type=float, default=0.3,
                        help="cores that other processes may use before the run starts")
    parser.add_argument("--max-wait", type=float, default=max_wait,
                        help="seconds to wait for the machine to become quiet")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--report", type=Path, metavar="JSON",
                        help="only print the table of a saved results file")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get install missing Debian packages")


def size(text: str) -> tuple[int, int]:
    """(width, height) from ``WIDTHxHEIGHT`` (an argparse ``type``)."""
    width, height = (int(v) for v in text.lower().split("x"))
    return width, height


def numbers(text: str) -> list[int]:
    """The numbers in a comma-separated list (an argparse ``type``)."""
    return [int(c) for c in text.split(",")]


def names(text: str) -> set[str]:
    """The names in a comma-separated list (an argparse ``type``)."""
    return {s.strip() for s in text.split(",") if s.strip()}


def add_slide_options(parser: argparse.ArgumentParser) -> None:
    """Add the options of the runs on the large WSI level: its size and tiles, the wrk runs."""
    parser.add_argument("--wsi-size", type=size, default="40000x30000",
                        help="WIDTHxHEIGHT of the level")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--concurrency", type=numbers, default="1,8,64")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per wrk run")
    parser.add_argument("--cache-dir", type=Path, default=RESULTS_DIR / "cache")


def _machine(memory: bool) -> dict[str, Any]:
    machine: dict[str, Any] = {"cpus": os.cpu_count(), "platform": platform.platform(),
                               "python": platform.python_version()}
    if memory:
        machine["memory_gib"] = round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
                                      / 1024**3, 1)
    return machine


def _command_output(command: Sequence[str]) -> str:
    return subprocess.run(command, capture_output=True, text=True).stdout


@dataclass
class Run:
    """One benchmark run: its temporary work folder, its results and the servers it started."""

    work: Path
    results: dict[str, Any]
    servers: list[Server] = field(default_factory=list)
    watch: RssWatch | None = None
    saved: Path = field(init=False)
    """The JSON results file, once the run has ended."""

    def wait_until_quiet(self, limit: float, max_wait: float) -> None:
        """Wait for other processes to use less than ``limit`` cores; note it if they did not."""
        busy = wait_until_quiet(limit, max_wait)
        self.results["machine"]["busy_cores_before_start"] = busy
        if busy > limit:
            self.results["notes"].append(f"machine was not quiet at start: {busy:.2f} cores busy")

    def start_servers(self, orthanc_config: dict[str, object] | None = None
                      ) -> tuple[Server, Server]:
        """Start ``wsi serve`` and Orthanc (stopped when the run ends); (ours, Orthanc)."""
        ours = start_ours(self.work)
        self.servers.append(ours)
        orthanc = start_orthanc(self.work, orthanc_config)
        self.servers.append(orthanc)
        return ours, orthanc

    def record_versions(self, orthanc: Server, packages: Sequence[str], *,
                        plugins: bool = False) -> None:
        """Record the versions of Orthanc (and its loaded plugins), ``packages`` and ours."""
        versions = self.results["versions"]
        _, system, _ = Client(orthanc.port).request("GET", "/system")
        versions["orthanc"] = json.loads(system).get("Version")
        if plugins:
            _, loaded, _ = Client(orthanc.port).request("GET", "/plugins")
            versions["orthanc plugins loaded"] = json.loads(loaded)
        for package in packages:
            versions[package] = _command_output(["dpkg-query", "-W", "-f=${Version}", package])
        versions["ours (git HEAD)"] = _command_output(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"]).strip()


@contextlib.contextmanager
def benchmark_run(name: str, work_prefix: str, keep: bool, *, memory: bool = False
                  ) -> Iterator[Run]:
    """A run in a fresh temporary folder; at the end its servers stop and its JSON is saved.

    The results start with the time, the machine (with its ``memory`` if asked), empty
    versions and notes; they are saved as ``bench/results/<name>-<time>.json`` (even when
    the run fails), and the folder is removed unless ``keep``.
    """
    started = time.monotonic()
    run = Run(Path(tempfile.mkdtemp(prefix=work_prefix)), {
        "started": datetime.now().isoformat(timespec="seconds"),
        "machine": _machine(memory),
        "versions": {}, "notes": [],
    })
    try:
        yield run
    finally:
        if run.watch is not None:
            run.watch.close()
        for server in run.servers:
            stop(server)
        run.saved = save_run(name, run.results, run.work, keep, started)
