"""Prerequisites, starting and stopping the two servers, CPU and memory watching."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from vs_orthanc.client import Server, wait_http
from vs_orthanc.common import DEBIAN_PACKAGES, ORTHANC_BIN, RSS_LIMIT_BYTES, VENV_BIN, log


def _package_installed(name: str) -> bool:
    result = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True
    )
    return result.returncode == 0 and "install ok installed" in result.stdout


def ensure_debian_packages(packages: Sequence[str] = DEBIAN_PACKAGES) -> None:
    """Install the Debian packages the benchmark needs when they are missing."""
    missing = [p for p in packages if not _package_installed(p)]
    if not missing:
        return
    log(f"installing Debian packages: {' '.join(missing)}")
    sudo = [] if os.geteuid() == 0 else ["sudo"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run([*sudo, "apt-get", "update", "-qq"], check=True, env=env)
    # policy-rc.d on container images keeps the packaged Orthanc service from starting; on a
    # normal host it may start on port 8042, which does not collide with the ports used here.
    subprocess.run([*sudo, "apt-get", "install", "-y", "-qq", *missing], check=True, env=env)


def plugin_path(package: str, stem: str) -> Path:
    """Path of an Orthanc plugin shared object shipped by a Debian package."""
    listing = subprocess.run(["dpkg", "-L", package], capture_output=True, text=True, check=True)
    candidates = [Path(line) for line in listing.stdout.splitlines()
                  if Path(line).name.startswith(stem) and ".so" in Path(line).name]
    if not candidates:
        raise SystemExit(f"no {stem}*.so in Debian package {package}")
    # Prefer /usr/share/orthanc/plugins/<stem>.so (the symlink Orthanc's own config uses).
    candidates.sort(key=lambda p: (p.name != f"{stem}.so", len(str(p))))
    return candidates[0]


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])




def start_ours(work: Path, attempts: int = 3) -> Server:
    """``wsi serve`` on free ports with a fresh data folder (retried on a start-up failure)."""
    data_dir = work / "ours-data"
    wsi = VENV_BIN / "wsi"
    for attempt in range(1, attempts + 1):
        # A port found free can be taken by another process before the server binds it.
        port, dicom_port = free_port(), free_port()
        log_path = work / f"ours-{attempt}.log"
        command = [str(wsi) if wsi.exists() else "wsi", "serve", "--host", "127.0.0.1",
                   "--port", str(port), "--dicom-port", str(dicom_port),
                   "--data-dir", str(data_dir), "--log-level", "WARNING"]
        process = subprocess.Popen(command, stdout=log_path.open("wb"),
                                   stderr=subprocess.STDOUT, cwd=work, start_new_session=True)
        server = Server("ours", port, "/dicom-web", process, log_path,
                        dicom_port=dicom_port, ae_title="WSIARCHIVE")
        try:
            wait_http(server, "/healthz")
            return server
        except SystemExit:
            stop(server)
            if attempt == attempts:
                raise
            log(f"ours did not start (attempt {attempt}); retrying on other ports")
    raise AssertionError("unreachable")


def start_orthanc(work: Path, extra_config: dict[str, object] | None = None) -> Server:
    """Orthanc with the DICOMweb and WSI plugins, SQLite + filesystem storage in ``work``.

    ``extra_config`` entries are added to (or replace) the generated configuration.
    """
    port, dicom_port = free_port(), free_port()
    root = work / "orthanc"
    (root / "storage").mkdir(parents=True)
    config = {
        "Name": "BENCH",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "index"),
        "StorageCompression": False,
        "HttpPort": port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANCBENCH",
        # Loopback only: Orthanc 1.10 cannot bind to one address, but with remote access off
        # it answers only 127.0.0.1; authentication off as for a local deployment.
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "KeepAlive": True,
        "TcpNoDelay": True,
        "Plugins": [str(plugin_path("orthanc-dicomweb", "libOrthancDicomWeb")),
                    str(plugin_path("orthanc-wsi", "libOrthancWSI"))],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": True,
                     "WadoRoot": "/wado"},
    }
    config.update(extra_config or {})
    config_path = root / "orthanc.json"
    config_path.write_text(json.dumps(config, indent=2))
    log_path = work / "orthanc.log"
    process = subprocess.Popen([ORTHANC_BIN, str(config_path)], stdout=log_path.open("wb"),
                               stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    server = Server("orthanc", port, "/dicom-web", process, log_path,
                    dicom_port=dicom_port, ae_title=str(config["DicomAet"]))
    wait_http(server, "/system")
    return server


def stop(server: Server) -> None:
    """Terminate a server we started (its own process group only)."""
    if server.process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


def _busy_jiffies() -> int:
    with open("/proc/stat") as fp:
        values = [int(v) for v in fp.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values[:8]) - idle


def process_jiffies(pid: int, children: bool = False) -> int:
    try:
        with open(f"/proc/{pid}/stat") as fp:
            fields = fp.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    # fields[11..14] are utime, stime, cutime, cstime (stat fields 14-17)
    return sum(int(v) for v in fields[11:15 if children else 13])


def tree_jiffies(pid: int) -> int:
    """CPU time of a process and its live descendants (our server's parser process)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        kids = [child for child, ppid in parents.items() if ppid == parent and child not in tree]
        tree.update(kids)
        frontier += kids
    return sum(process_jiffies(p) for p in tree)


class CpuAccount:
    """How much CPU other processes on the machine used while a workload ran.

    Total busy time from /proc/stat minus the time of the two servers with their child
    processes (our parser process) and of this process with its reaped children (wrk).
    The machine is shared with other sessions; a large 'foreign' share means the figures
    of that workload are disturbed.
    """

    def __init__(self, servers: Sequence[Server]) -> None:
        self.servers = servers
        self._start = self._sample()

    def _sample(self) -> tuple[float, int, int]:
        ours = sum(tree_jiffies(s.process.pid) for s in self.servers)
        ours += process_jiffies(os.getpid(), children=True)
        return time.monotonic(), _busy_jiffies(), ours

    def foreign_cores(self) -> float:
        """Average number of cores used by other processes since the last call."""
        end = self._sample()
        t0, busy0, ours0 = self._start
        self._start = end
        ticks = os.sysconf("SC_CLK_TCK")
        elapsed = max(end[0] - t0, 1e-6)
        return max(0.0, ((end[1] - busy0) - (end[2] - ours0)) / ticks / elapsed)


def machine_busy_cores(seconds: float = 2.0) -> float:
    """Cores in use on the whole machine, averaged over ``seconds``."""
    before = _busy_jiffies()
    time.sleep(seconds)
    return (_busy_jiffies() - before) / os.sysconf("SC_CLK_TCK") / seconds


def wait_until_quiet(limit: float, max_wait: float) -> float:
    """Wait (up to ``max_wait`` s) until other processes use less than ``limit`` cores."""
    deadline = time.monotonic() + max_wait
    busy = machine_busy_cores()
    while busy > limit and time.monotonic() < deadline:
        log(f"machine busy ({busy:.2f} cores used by other processes); waiting for quiet")
        time.sleep(10)
        busy = machine_busy_cores()
    return busy


class RssWatch:
    """Samples the servers' RSS; past RSS_LIMIT_BYTES kills the load generator and server."""

    def __init__(self, servers: Sequence[Server]) -> None:
        self.servers = servers
        self.load: subprocess.Popen[bytes] | None = None
        self.tripped: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.25):
            for server in self.servers:
                rss = server.rss()
                server.peak_rss = max(server.peak_rss, rss)
                load = self.load
                if rss > RSS_LIMIT_BYTES and server.process.poll() is None:
                    self.tripped = (f"{server.name} killed by the benchmark at RSS "
                                    f"{rss / 1024**3:.1f} GiB (limit "
                                    f"{RSS_LIMIT_BYTES / 1024**3:.0f} GiB)")
                    log(self.tripped)
                    if load is not None and load.poll() is None:
                        load.kill()
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(server.process.pid, signal.SIGKILL)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
