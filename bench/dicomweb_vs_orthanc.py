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
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the vs_orthanc package
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # samples/

from vs_orthanc.client import Client, stow  # noqa: E402
from vs_orthanc.common import DEBIAN_PACKAGES, MIB, ORTHANC_BIN, log  # noqa: E402
from vs_orthanc.data import make_ct_series, make_ct_studies, make_wsi_level, wsi_info  # noqa: E402
from vs_orthanc.frames import bench_frames, check_frames, orthanc_series_id, wait_idle  # noqa: E402
from vs_orthanc.report import print_report, report  # noqa: E402
from vs_orthanc.run import add_run_options, add_slide_options, benchmark_run, names  # noqa: E402
from vs_orthanc.servers import CpuAccount, RssWatch, ensure_debian_packages  # noqa: E402
from vs_orthanc.stow_qido import bench_qido, bench_stow, bulk_load, qido_queries  # noqa: E402


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stow-instances", type=int, default=500)
    parser.add_argument("--stow-batch", type=int, default=50)
    parser.add_argument("--qido-instances", type=int, default=10_000)
    parser.add_argument("--qido-requests", type=int, default=200)
    parser.add_argument("--qido-time-cap", type=float, default=20.0,
                        help="seconds at most per QIDO query kind and server")
    add_slide_options(parser)
    parser.add_argument("--slow-duration", type=float, default=40.0,
                        help="seconds per wrk run against Orthanc's DICOMweb frames "
                        "(seconds per request, so a longer window)")
    parser.add_argument("--skip", type=names, default="",
                        help="comma list of stow,qido,frames to skip")
    add_run_options(parser, max_wait=300)
    return parser.parse_args(argv)


def print_results(results: dict[str, Any], out: Path) -> None:
    """Print the table, the goal verdicts, the peak RSS and where the JSON is."""
    print_report("DICOMweb: WSI Archive vs Orthanc", results, out, *report(results),
                 peak_rss=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        print_results(json.loads(args.report.read_text()), args.report)
        return 0
    if not args.no_install:
        ensure_debian_packages()
    for tool in (ORTHANC_BIN, "wrk"):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} not found (Debian packages: {' '.join(DEBIAN_PACKAGES)})")
    width, height = args.wsi_size
    with benchmark_run("dicomweb_vs_orthanc", "wsi-bench-", args.keep, memory=True) as run:
        results, work = run.results, run.work
        # --- data (not measured)
        if "frames" not in args.skip:
            wsi_path = make_wsi_level(args.cache_dir, width, height, args.tile)
            info = wsi_info(wsi_path)
        log("writing CT instances")
        ct_files = make_ct_series(work / "ct", args.stow_instances) if "stow" not in args.skip \
            else []
        qido_files = make_ct_studies(work / "studies", args.qido_instances) \
            if "qido" not in args.skip else []

        run.wait_until_quiet(args.quiet_limit, args.max_wait)
        # --- servers
        ours, orthanc = run.start_servers()
        servers = run.servers
        run.record_versions(orthanc, DEBIAN_PACKAGES, plugins=True)
        log(f"ours on :{ours.port}, Orthanc on :{orthanc.port} ({results['versions']})")
        watch = run.watch = RssWatch(servers)
        cpu = CpuAccount(servers)
        for server in servers:  # both done starting (ours starts its worker processes)
            wait_idle(server)

        # --- 1. STOW
        if "stow" not in args.skip:
            results["stow"] = bench_stow(servers, ct_files, args.stow_batch, cpu)

        # --- 2. QIDO
        if "qido" not in args.skip:
            results["qido_setup"] = {s.name: bulk_load(s, qido_files) for s in servers}
            queries = qido_queries(qido_files, args.qido_requests)
            results["qido_indexed_instances"] = len(qido_files) + len(ct_files)
            results["qido"] = bench_qido(servers, queries, args.qido_time_cap, cpu)

        # --- 3. frames
        if "frames" not in args.skip:
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
            results["frames"] = bench_frames(servers, info, args.concurrency, args.duration,
                                             args.slow_duration, work, watch, series_id, cpu)
        results["peak_rss_mib"] = {s.name: s.peak_rss / MIB for s in servers}
    print_results(run.results, run.saved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
