"""Workloads 1 and 2: STOW-RS ingest and QIDO-RS latency."""

from __future__ import annotations

import concurrent.futures
import json
import math
import random
import statistics
import threading
import time
import urllib.parse
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from vs_orthanc.client import Client, Server, stow
from vs_orthanc.common import log
from vs_orthanc.servers import CpuAccount


def bench_stow(servers: Sequence[Server], files: Sequence[Path], batch: int,
               cpu: CpuAccount) -> dict[str, Any]:
    """Workload 1: sequential STOW-RS requests of ``batch`` instances each."""
    datas = [p.read_bytes() for p in files]
    total_bytes = sum(len(d) for d in datas)
    batches = [datas[i:i + batch] for i in range(0, len(datas), batch)]
    results: dict[str, Any] = {"instances": len(datas), "bytes": total_bytes,
                               "per_request": batch}
    for server in servers:
        client = Client(server.port)
        stored = failed = 0
        statuses: list[int] = []
        cpu.foreign_cores()
        started = time.perf_counter()
        for parts in batches:
            status, ok, bad = stow(client, server, parts)
            statuses.append(status)
            stored += ok
            failed += bad
        elapsed = time.perf_counter() - started
        client.close()
        results[server.name] = {
            "seconds": elapsed,
            "instances_per_s": len(datas) / elapsed,
            "mb_per_s": total_bytes / 1e6 / elapsed,
            "stored": stored,
            "failed": failed,
            "statuses": sorted(set(statuses)),
            "foreign_cpu_cores": cpu.foreign_cores(),
        }
        log(f"STOW {server.name}: {len(datas)} instances in {elapsed:.2f} s "
            f"({len(datas) / elapsed:.0f}/s, {total_bytes / 1e6 / elapsed:.1f} MB/s), "
            f"stored {stored}, failed {failed}, HTTP {sorted(set(statuses))}, other processes "
            f"{results[server.name]['foreign_cpu_cores']:.2f} cores")
    return results


def bulk_load(server: Server, files: Sequence[Path], batch: int = 250, threads: int = 2
              ) -> dict[str, Any]:
    """Setup (not measured as a workload): STOW many files in concurrent batches."""
    batches = [files[i:i + batch] for i in range(0, len(files), batch)]
    local = threading.local()

    def send(paths: Sequence[Path]) -> tuple[int, int, int]:
        if not hasattr(local, "client"):
            local.client = Client(server.port)
        return stow(local.client, server, [p.read_bytes() for p in paths])

    started = time.perf_counter()
    stored = failed = 0
    statuses: set[int] = set()
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        for status, ok, bad in pool.map(send, batches):
            statuses.add(status)
            stored += ok
            failed += bad
    elapsed = time.perf_counter() - started
    log(f"setup load {server.name}: {stored} stored, {failed} failed in {elapsed:.1f} s "
        f"({len(files) / elapsed:.0f}/s), HTTP {sorted(statuses)}")
    return {"seconds": elapsed, "stored": stored, "failed": failed,
            "statuses": sorted(statuses)}


def _ascii(text: str) -> bool:
    return all(ord(c) < 128 for c in text)


def _patient_names(files: Sequence[Path]) -> list[str]:
    import pydicom

    names: list[str] = []
    seen: set[str] = set()
    for path in files[::20]:
        name = str(pydicom.dcmread(path, stop_before_pixels=True).PatientName)
        if name not in seen:
            seen.add(name)
            names.append(name)
    return names


def qido_queries(files: Sequence[Path], count: int) -> dict[str, list[str]]:
    """The QIDO request paths (relative to the DICOMweb root), ``count`` of each kind."""
    rng = random.Random(7)
    names = [n for n in _patient_names(files) if _ascii(n)] or ["Smith^Anna"]
    families = sorted({n.split("^")[0] for n in names})
    # '^', '*' and "'" are sent literally: Orthanc 1.10 (DICOMweb plugin 1.7) does not
    # percent-decode QIDO query values (PatientName=Smith%5EAnna or O%27Brien* match nothing
    # there). Names needing any other escape are left out of the queries.
    def quote(text: str) -> str:
        return urllib.parse.quote(text, safe="^*'")

    names = [n for n in names if quote(n) == n] or names

    exact = [f"/studies?PatientName={quote(rng.choice(names))}" for _ in range(count)]
    prefix = [f"/studies?PatientName={quote(rng.choice(families)[:3])}*" for _ in range(count)]
    ranges = []
    for _ in range(count):
        start = datetime(2015, 1, 1).toordinal() + rng.randrange(0, 365 * 9)
        first = datetime.fromordinal(start)
        last = datetime.fromordinal(start + 90)
        ranges.append(f"/studies?StudyDate={first:%Y%m%d}-{last:%Y%m%d}")
    return {
        "exact PatientName (studies)": exact,
        "PatientName=prefix* (studies)": prefix,
        "studies?limit=100": ["/studies?limit=100"] * count,
        "instances?limit=100": ["/instances?limit=100"] * count,
        "StudyDate 90-day range (studies)": ranges,
    }


def _percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[index]


def bench_qido(servers: Sequence[Server], queries: dict[str, list[str]], time_cap: float,
               cpu: CpuAccount) -> dict[str, Any]:
    """Workload 2: sequential QIDO-RS requests over one keep-alive connection."""
    results: dict[str, Any] = {}
    for kind, paths in queries.items():
        results[kind] = {"example": paths[0]}
        for server in servers:
            client = Client(server.port, timeout=60)
            headers = {"Accept": "application/dicom+json"}
            for path in paths[:3]:  # warm-up, not counted
                client.request("GET", server.dicomweb + path, headers=headers)
            latencies: list[float] = []
            statuses: set[int] = set()
            matches: list[int] = []
            cpu.foreign_cores()
            started = time.perf_counter()
            for path in paths:
                t0 = time.perf_counter()
                status, data, _ = client.request("GET", server.dicomweb + path, headers=headers)
                latencies.append(time.perf_counter() - t0)
                statuses.add(status)
                if status == 200:
                    matches.append(len(json.loads(data)) if data.strip() else 0)
                elif status == 204:
                    matches.append(0)
                if time.perf_counter() - started > time_cap:
                    break
            client.close()
            results[kind][server.name] = {
                "requests": len(latencies),
                "p50_ms": _percentile(latencies, 50) * 1000,
                "p99_ms": _percentile(latencies, 99) * 1000,
                "mean_ms": statistics.fmean(latencies) * 1000,
                "statuses": sorted(statuses),
                "mean_matches": statistics.fmean(matches) if matches else 0,
                "capped": len(latencies) < len(paths),
                "matches": matches,
                "foreign_cpu_cores": cpu.foreign_cores(),
            }
            r = results[kind][server.name]
            if r["capped"]:
                r["note"] = f"stopped after {time_cap:.0f} s"
            log(f"QIDO {kind} {server.name}: n={r['requests']} p50 {r['p50_ms']:.1f} ms "
                f"p99 {r['p99_ms']:.1f} ms, mean matches {r['mean_matches']:.1f}, "
                f"HTTP {r['statuses']}, other processes {r['foreign_cpu_cores']:.2f} cores")
        lists = [results[kind][s.name]["matches"] for s in servers]
        common = min(len(m) for m in lists)
        differ = sum(1 for i in range(common) if len({m[i] for m in lists}) > 1)
        if differ:
            results[kind]["warning"] = (f"servers returned different numbers of matches for "
                                        f"{differ} of {common} queries")
            log(f"WARNING QIDO {kind}: {results[kind]['warning']}")
    return results
