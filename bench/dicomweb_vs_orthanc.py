#!/usr/bin/env python3
"""Benchmark: this archive's DICOMweb service against Orthanc (+ DICOMweb and WSI plugins).

One run starts both servers on free loopback ports with fresh storage in a temporary folder,
loads the same data into both and runs the same workloads against both:

1. STOW-RS ingest of 500 CT-like instances (512 x 512 x 16 bit, ~0.5 MB), 50 per request,
   sequential requests: instances/s and MB/s.
2. QIDO-RS latency (p50/p99, ~200 sequential requests per query, keep-alive) with 10,000 small
   instances indexed (plus the 500 of step 1): exact PatientName, PatientName=prefix*,
   studies?limit=100, instances?limit=100, StudyDate range.
3. WADO-RS single-frame retrieval of random frames of one large JPEG VL WSI level, at
   concurrency 1, 8 and 64 with ``wrk`` (keep-alive), Accept
   ``multipart/related; type="application/octet-stream"; transfer-syntax=*``; and the same
   frames through Orthanc's WSI plugin tile API ``/wsi/tiles/{series}/0/{x}/{y}``.

It prints a table with both figures and the ratio ours/Orthanc, checks the issue's goals and
writes everything as JSON to ``bench/results/``. This is a benchmark, not a test: it exits 0
whether or not the goals are met (non-zero only when it could not run).

Run from the repository root:  ``.venv/bin/python bench/dicomweb_vs_orthanc.py``
(``--help`` for options; the large WSI level is cached in ``bench/results/cache/``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the vs_orthanc package
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # samples/

from vs_orthanc.client import Client, Server, stow  # noqa: E402
from vs_orthanc.common import (  # noqa: E402
    DEBIAN_PACKAGES,
    MIB,
    ORTHANC_BIN,
    REPO,
    RESULTS_DIR,
    log,
    save_run,
)
from vs_orthanc.data import make_ct_series, make_ct_studies, make_wsi_level, wsi_info  # noqa: E402
from vs_orthanc.frames import (  # noqa: E402
    bench_frames,
    check_frames,
    orthanc_series_id,
    wait_idle,
)
from vs_orthanc.report import report  # noqa: E402
from vs_orthanc.servers import (  # noqa: E402
    CpuAccount,
    RssWatch,
    ensure_debian_packages,
    start_orthanc,
    start_ours,
    stop,
    wait_until_quiet,
)
from vs_orthanc.stow_qido import bench_qido, bench_stow, bulk_load, qido_queries  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stow-instances", type=int, default=500)
    parser.add_argument("--stow-batch", type=int, default=50)
    parser.add_argument("--qido-instances", type=int, default=10_000)
    parser.add_argument("--qido-requests", type=int, default=200)
    parser.add_argument("--qido-time-cap", type=float, default=20.0,
                        help="seconds at most per QIDO query kind and server")
    parser.add_argument("--wsi-size", default="40000x30000", help="WIDTHxHEIGHT of the level")
    parser.add_argument("--tile", type=int, default=256)
    parser.add_argument("--concurrency", default="1,8,64")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds per wrk run")
    parser.add_argument("--slow-duration", type=float, default=40.0,
                        help="seconds per wrk run against Orthanc's DICOMweb frames "
                        "(seconds per request, so a longer window)")
    parser.add_argument("--cache-dir", type=Path, default=RESULTS_DIR / "cache")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    parser.add_argument("--skip", default="", help="comma list of stow,qido,frames to skip")
    parser.add_argument("--quiet-limit", type=float, default=0.3,
                        help="cores that other processes may use before the run starts")
    parser.add_argument("--max-wait", type=float, default=300,
                        help="seconds to wait for the machine to become quiet")
    parser.add_argument("--report", type=Path, metavar="JSON",
                        help="only print the table of a saved results file")
    parser.add_argument("--no-install", action="store_true",
                        help="do not apt-get install missing Debian packages")
    return parser.parse_args(argv)


def print_report(results: dict[str, Any], out: Path) -> None:
    """Print the table, the goal verdicts and where the JSON is."""
    table, goals = report(results)
    print(f"\nDICOMweb: WSI Archive vs Orthanc ({results['started']}, "
          f"{results['machine']['cpus']} cores, {results['machine']['memory_gib']} GiB)")
    print(f"versions: {results['versions']}\n")
    print(table)
    print("\nGoals:")
    for goal in goals:
        print(f"- {goal}")
    peaks = {k: round(v) for k, v in results.get("peak_rss_mib", {}).items()}
    print(f"\npeak RSS (MiB): {peaks}")
    print(f"results: {out}  (total {results.get('seconds', 0):.0f} s)")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        print_report(json.loads(args.report.read_text()), args.report)
        return 0
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    if not args.no_install:
        ensure_debian_packages()
    for tool in (ORTHANC_BIN, "wrk"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (Debian packages: {' '.join(DEBIAN_PACKAGES)})")
    width, height = (int(v) for v in args.wsi_size.lower().split("x"))
    concurrencies = [int(c) for c in args.concurrency.split(",")]
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="wsi-bench-"))
    results: dict[str, Any] = {
        "started": datetime.now().isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "python": platform.python_version(),
                    "memory_gib": round(os.sysconf("SC_PAGE_SIZE")
                                        * os.sysconf("SC_PHYS_PAGES") / 1024**3, 1)},
        "versions": {},
        "notes": [],
    }
    servers: list[Server] = []
    watch: RssWatch | None = None
    try:
        # --- data (not measured)
        if "frames" not in skip:
            wsi_path = make_wsi_level(args.cache_dir, width, height, args.tile)
            info = wsi_info(wsi_path)
        log("writing CT instances")
        ct_files = make_ct_series(work / "ct", args.stow_instances) if "stow" not in skip \
            else []
        qido_files = make_ct_studies(work / "studies", args.qido_instances) \
            if "qido" not in skip else []

        busy = wait_until_quiet(args.quiet_limit, args.max_wait)
        results["machine"]["busy_cores_before_start"] = busy
        if busy > args.quiet_limit:
            results["notes"].append(f"machine was not quiet at start: {busy:.2f} cores busy")
        # --- servers
        ours = start_ours(work)
        orthanc = start_orthanc(work)
        servers = [ours, orthanc]
        _, system, _ = Client(orthanc.port).request("GET", "/system")
        _, plugins, _ = Client(orthanc.port).request("GET", "/plugins")
        results["versions"]["orthanc"] = json.loads(system).get("Version")
        results["versions"]["orthanc plugins loaded"] = json.loads(plugins)
        for package in DEBIAN_PACKAGES:
            results["versions"][package] = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", package], capture_output=True, text=True
            ).stdout
        git = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True)
        results["versions"]["ours (git HEAD)"] = git.stdout.strip()
        log(f"ours on :{ours.port}, Orthanc on :{orthanc.port} ({results['versions']})")
        watch = RssWatch(servers)
        cpu = CpuAccount(servers)
        for server in servers:  # both done starting (ours starts its worker processes)
            wait_idle(server)

        # --- 1. STOW
        if "stow" not in skip:
            results["stow"] = bench_stow(servers, ct_files, args.stow_batch, cpu)

        # --- 2. QIDO
        if "qido" not in skip:
            results["qido_setup"] = {s.name: bulk_load(s, qido_files) for s in servers}
            queries = qido_queries(qido_files, args.qido_requests)
            results["qido_indexed_instances"] = len(qido_files) + len(ct_files)
            results["qido"] = bench_qido(servers, queries, args.qido_time_cap, cpu)

        # --- 3. frames
        if "frames" not in skip:
            data = info.path.read_bytes()
            results["wsi"] = {"path": str(info.path), "bytes": info.size_bytes,
                              "frames": info.frames, "size": f"{width}x{height}",
                              "tile": args.tile}
            results["wsi_store"] = {}
            for server in servers:
                t0 = time.perf_counter()
                status, stored, failed = stow(Client(server.port, timeout=600), server, [data])
                elapsed = time.perf_counter() - t0
                results["wsi_store"][server.name] = {"status": status, "stored": stored,
                                                     "failed": failed, "seconds": elapsed}
                log(f"stored WSI level in {server.name}: HTTP {status}, stored {stored}, "
                    f"failed {failed}, {elapsed:.1f} s")
            del data
            series_id = orthanc_series_id(orthanc, info.series_uid)
            if series_id:
                status, pyramid, _ = Client(orthanc.port, timeout=300).request(
                    "GET", f"/wsi/pyramids/{series_id}")
                results["orthanc_wsi_pyramid"] = {"status": status,
                                                  "body": pyramid[:500].decode(errors="replace")}
                if status != 200:
                    results["notes"].append(f"Orthanc WSI plugin /wsi/pyramids: HTTP {status}")
                    series_id = None
            results["frame_checks"] = check_frames(servers, info, series_id)
            results["frames"] = bench_frames(servers, info, concurrencies, args.duration,
                                             args.slow_duration, work, watch, series_id, cpu)
        results["peak_rss_mib"] = {s.name: s.peak_rss / MIB for s in servers}
    finally:
        if watch is not None:
            watch.close()
        for server in servers:
            stop(server)
        out = save_run("dicomweb_vs_orthanc", results, work, args.keep, started)
    print_report(results, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
