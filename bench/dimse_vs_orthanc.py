#!/usr/bin/env python3
"""Benchmark: this archive's DIMSE service against Orthanc's, with DCMTK clients.

One run starts both servers (``wsi serve`` and Orthanc 1.10, via ``vs_orthanc.servers``) on
free loopback ports with fresh storage in a temporary folder and measures, for both:

1. C-STORE ingest: ``storescu`` sends 500 CT-like instances (512 x 512 x 16 bit, ~0.5 MB,
   ``samples/ct_series.py`` ``write_ct_series``) over ONE association -> instances/s
   (wall time of the storescu process, which includes its start and file reading).
2. C-FIND latency at STUDY level with 10,000 small instances indexed (``write_ct_studies``,
   loaded by STOW-RS into both servers at the same time, setup): ``findscu`` per query
   (one process + one association + one C-FIND, as a modality would do it), exact
   PatientName and PatientName=prefix*, p50/p99 over ~100 queries of each kind. ``echoscu``
   latency (process + association + C-ECHO) is reported as the floor of that figure.

``TCP_NODELAY=1`` is set in the environment of every DCMTK client. Prints a table of both
figures and the ratio ours/Orthanc, writes JSON to ``bench/results/``. A benchmark, not a
test: exits 0 whether or not the goal (C-STORE >= 1.5x Orthanc) is met.

Run from the repository root:  ``.venv/bin/python bench/dimse_vs_orthanc.py``
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the vs_orthanc package
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # samples/

from vs_orthanc.client import Client, Server  # noqa: E402
from vs_orthanc.common import DEBIAN_PACKAGES, log  # noqa: E402
from vs_orthanc.data import make_ct_series, make_ct_studies  # noqa: E402
from vs_orthanc.report import TABLE_HEAD, print_report, row  # noqa: E402
from vs_orthanc.run import add_run_options, benchmark_run  # noqa: E402
from vs_orthanc.servers import CpuAccount, ensure_debian_packages  # noqa: E402
from vs_orthanc.stow_qido import _ascii, _patient_names, _percentile, bulk_load  # noqa: E402

CALLING_AE = "BENCHSCU"
DCMTK_ENV = dict(os.environ, TCP_NODELAY="1")
LAST_OUTPUT: dict[str, str] = {}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store-instances", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=2,
                        help="C-STORE rounds (fresh series each), order alternating")
    parser.add_argument("--find-instances", type=int, default=10_000)
    parser.add_argument("--find-queries", type=int, default=100, help="per query kind")
    parser.add_argument("--echo-count", type=int, default=30)
    add_run_options(parser, max_wait=60)
    return parser.parse_args(argv)


def storescu(server: Server, folder: Path) -> tuple[float, subprocess.CompletedProcess[str]]:
    """All files of ``folder`` over one association; (seconds, process)."""
    command = ["storescu", "-aet", CALLING_AE, "-aec", server.ae_title, "+sd", "+r", "-nh",
               "127.0.0.1", str(server.dicom_port), str(folder)]
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, env=DCMTK_ENV)
    return time.perf_counter() - t0, done


def _findscu(server: Server, arguments: Sequence[str]) -> tuple[float, int, int, str]:
    """Run findscu against ``server`` (verbose, study root): (s, matches, rc, output)."""
    command = ["findscu", "-v", "-S", "-aet", CALLING_AE, "-aec", server.ae_title, *arguments]
    t0 = time.perf_counter()
    done = subprocess.run(command, capture_output=True, env=DCMTK_ENV)
    elapsed = time.perf_counter() - t0
    text = (done.stdout + done.stderr).decode(errors="replace")
    return elapsed, len(re.findall(r"Find Response: \d+ \(Pending", text)), done.returncode, text


def findscu(server: Server, keys: Sequence[str]) -> tuple[float, int, int]:
    """One findscu process (one association, one STUDY-level C-FIND): (s, matches, rc)."""
    elapsed, matches, returncode, text = _findscu(server, [
        "-k", "QueryRetrieveLevel=STUDY", "-k", "StudyInstanceUID", "-k", "StudyDate",
        "-k", "PatientID", *[a for k in keys for a in ("-k", k)],
        "127.0.0.1", str(server.dicom_port)])
    LAST_OUTPUT[server.name] = text[-3000:]
    return elapsed, matches, returncode


def write_query_files(folder: Path, queries: Sequence[str]) -> list[Path]:
    """One STUDY-level C-FIND identifier file per query (for findscu with many queries)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ImplicitVRLittleEndian

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, q in enumerate(queries):
        key, value = q.split("=", 1)
        ds = Dataset()
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.2.2.1"  # study root FIND
        ds.file_meta.MediaStorageSOPInstanceUID = f"2.25.{1000 + i}"
        ds.QueryRetrieveLevel = "STUDY"
        ds.StudyInstanceUID = ds.StudyDate = ds.PatientID = ""
        setattr(ds, key, value)
        path = folder / f"q{i:04d}.dcm"
        ds.save_as(path, implicit_vr=True, little_endian=True, enforce_file_format=True)
        paths.append(path)
    return paths


def findscu_batch(server: Server, files: Sequence[Path]) -> tuple[float, int, int]:
    """One findscu process sending every query file as a C-FIND over ONE association."""
    elapsed, matches, returncode, _ = _findscu(
        server, ["127.0.0.1", str(server.dicom_port), *map(str, files)])
    return elapsed, matches, returncode


def echoscu(server: Server) -> float:
    t0 = time.perf_counter()
    subprocess.run(["echoscu", "-aet", CALLING_AE, "-aec", server.ae_title, "127.0.0.1",
                    str(server.dicom_port)], capture_output=True, env=DCMTK_ENV, check=True)
    return time.perf_counter() - t0


def count_instances(server: Server) -> int:
    """Instances the server holds (Orthanc: /statistics; ours: QIDO paged count)."""
    client = Client(server.port, timeout=120)
    if server.name == "orthanc":
        _, data, _ = client.request("GET", "/statistics")
        return int(json.loads(data)["CountInstances"])
    total, offset = 0, 0
    while True:
        status, data, _ = client.request(
            "GET", f"/dicom-web/instances?limit=1000&offset={offset}&includefield=00080018",
            headers={"Accept": "application/dicom+json"})
        got = len(json.loads(data)) if status == 200 and data.strip() else 0
        total += got
        offset += 1000
        if got < 1000:
            return total


def find_queries(files: Sequence[Path], count: int) -> dict[str, list[str]]:
    rng = random.Random(7)
    names = [n for n in _patient_names(files) if _ascii(n) and "'" not in n] or ["Smith^Anna"]
    families = sorted({n.split("^")[0] for n in names})
    return {
        "exact PatientName": [f"PatientName={rng.choice(names)}" for _ in range(count)],
        "PatientName=prefix*": [f"PatientName={rng.choice(families)[:3]}*"
                                for _ in range(count)],
    }


def report(results: dict[str, Any]) -> tuple[str, list[str]]:
    """The Markdown table of figures and the goal verdicts."""
    rows = list(TABLE_HEAD)

    def load(kind: dict[str, Any]) -> str:
        return " / ".join(f"{kind[n].get('foreign_cpu_cores', float('nan')):.2f}"
                          for n in ("ours", "orthanc"))

    st = results.get("store")
    if st:
        name = (f"C-STORE {st['instances']} CT instances ({st['mb_per_instance']:.2f} MB), "
                f"storescu, one association, x{st.get('rounds', 1)} rounds")
        for metric, key in (("instances/s", "instances_per_s"), ("MB/s", "mb_per_s")):
            rows.append(row(name, metric, st["ours"][key], st["orthanc"][key], load(st)))
    setup = results.get("find_setup")
    if setup:
        o, t = (setup[n]["instances_per_s"] for n in ("ours", "orthanc"))
        rows.append(row(f"(setup, not a goal) STOW-RS of the {results['find_indexed']:,} "
                        "small instances, 250/request, both servers at once", "instances/s",
                        o, t, "-"))
    echo = results.get("echo")
    if echo:
        for metric, key in (("p50 ms", "p50_ms"), ("p99 ms", "p99_ms")):
            rows.append(row("(floor) echoscu: process + association + C-ECHO",
                            f"{metric} (n={echo['ours']['n']})", echo["ours"][key],
                            echo["orthanc"][key], load(echo)))
    for kind, r in (results.get("find") or {}).items():
        for metric, key in (("p50 ms", "p50_ms"), ("p99 ms", "p99_ms")):
            rows.append(row(f"C-FIND STUDY {kind} (findscu)",
                            f"{metric} (n={r['ours']['n']}/{r['orthanc']['n']})",
                            r["ours"][key], r["orthanc"][key], load(r)))
        if "ours one association" in r:
            a, b = r["ours one association"], r["orthanc one association"]
            rows.append(row(f"C-FIND STUDY {kind} (findscu, {a['n']} queries on one "
                            "association)", "mean ms/query", a["mean_ms"], b["mean_ms"],
                            f"{a['foreign_cpu_cores']:.2f} / {b['foreign_cpu_cores']:.2f}"))
    goals = []
    if st:
        ratio = st["ours"]["instances_per_s"] / st["orthanc"]["instances_per_s"]
        goals.append(f"C-STORE >= 1.5x Orthanc instances/s: {ratio:.2f}x -> "
                     f"{'MET' if ratio >= 1.5 else 'NOT MET'} (per round, instances/s: ours "
                     f"{st['ours'].get('per_round_instances_per_s')}, Orthanc "
                     f"{st['orthanc'].get('per_round_instances_per_s')})")
    for kind, r in (results.get("find") or {}).items():
        goals.append(f"(no goal) C-FIND {kind} p50: {r['ours']['p50_ms']:.1f} vs "
                     f"{r['orthanc']['p50_ms']:.1f} ms; match counts "
                     f"{'identical' if not r.get('warning') else r['warning']}")
    return "\n".join(rows), goals


def print_results(results: dict[str, Any], out: Path) -> None:
    """Print the table, the goal verdicts and the notes of a run, and where its JSON is."""
    print_report("DIMSE: WSI Archive vs Orthanc", results, out, *report(results))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        print_results(json.loads(args.report.read_text()), args.report)
        return 0
    if not args.no_install:
        ensure_debian_packages((*DEBIAN_PACKAGES, "dcmtk"))
    with benchmark_run("dimse_vs_orthanc", "wsi-bench-dimse-", args.keep) as run:
        results, work = run.results, run.work
        log("writing CT instances")
        ct_files = make_ct_series(work / "ct", args.store_instances)
        study_files = make_ct_studies(work / "studies", args.find_instances)
        # storescu +sd sends every file of the folder: keep exactly the instances wanted.
        for extra in sorted(set((work / "studies").rglob("*.dcm")) - set(study_files)):
            extra.unlink()
        run.wait_until_quiet(args.quiet_limit, args.max_wait)
        # Both servers inherit TCP_NODELAY=1 (DCMTK, in Orthanc, reads it; pynetdicom ignores it).
        os.environ["TCP_NODELAY"] = "1"
        # Orthanc 1.10 refuses C-FIND from unknown AEs (DicomAlwaysAllowFind false): declare
        # the client as a modality. C-STORE is allowed from anyone by default.
        ours, orthanc = run.start_servers({"DicomAet": "ORTHANC", "DicomAlwaysAllowFind": True,
                                           "DicomModalities": {
                                               "bench": [CALLING_AE, "127.0.0.1", 104]}})
        servers = run.servers
        run.record_versions(orthanc, (*DEBIAN_PACKAGES[:1], "dcmtk"))
        log(f"ours http :{ours.port} dicom :{ours.dicom_port}, Orthanc http :{orthanc.port} "
            f"dicom :{orthanc.dicom_port}")
        cpu = CpuAccount(servers)
        for server in servers:  # warm-up association (not measured)
            echoscu(server)

        # --- 1. C-STORE: ``--rounds`` fresh series (new UIDs), order alternating
        # (ours, Orthanc, Orthanc, ours, ...) so a change of the machine's other load hits
        # both; the figure is all instances over the summed storescu wall time.
        total_bytes = sum(p.stat().st_size for p in ct_files)
        store: dict[str, Any] = {"instances": len(ct_files), "rounds": args.rounds,
                                 "mb_per_instance": total_bytes / len(ct_files) / 1e6}
        runs: dict[str, list[dict[str, Any]]] = {s.name: [] for s in servers}
        for rnd in range(args.rounds):
            folder = work / "ct" if rnd == 0 else work / f"ct-round{rnd}"
            if rnd:
                make_ct_series(folder, args.store_instances)
            for server in (servers if rnd % 2 == 0 else servers[::-1]):
                cpu.foreign_cores()
                seconds, done = storescu(server, folder)
                held = count_instances(server)
                measured = {"round": rnd, "seconds": seconds,
                            "instances_per_s": len(ct_files) / seconds,
                            "returncode": done.returncode, "held_after": held,
                            "foreign_cpu_cores": cpu.foreign_cores(),
                            "stderr_tail": done.stderr[-1500:]}
                runs[server.name].append(measured)
                log(f"C-STORE round {rnd} {server.name}: {len(ct_files)} in {seconds:.2f} s "
                    f"({len(ct_files) / seconds:.1f}/s), rc {done.returncode}, holds {held}, "
                    f"other processes {measured['foreign_cpu_cores']:.2f} cores")
                if done.returncode or held != len(ct_files) * (rnd + 1):
                    results["notes"].append(
                        f"{server.name} C-STORE round {rnd}: rc {done.returncode}, holds "
                        f"{held} of {len(ct_files) * (rnd + 1)}: {done.stderr[-300:]}")
        for server in servers:
            seconds = sum(r["seconds"] for r in runs[server.name])
            count = len(ct_files) * len(runs[server.name])
            store[server.name] = {
                "seconds": seconds, "instances_per_s": count / seconds,
                "mb_per_s": total_bytes * len(runs[server.name]) / 1e6 / seconds,
                "per_round_instances_per_s": [round(r["instances_per_s"], 1)
                                              for r in runs[server.name]],
                "foreign_cpu_cores": statistics.fmean(r["foreign_cpu_cores"]
                                                      for r in runs[server.name]),
                "runs": runs[server.name]}
        results["store"] = store

        # --- 2. C-FIND. Setup: STOW-RS as dicomweb_vs_orthanc.py does (250 per request, 2 in
        # parallel), both servers at the same time (C-STORE of 64x64 instances by storescu
        # ran at ~25-40/s per server on this machine: too slow for 10,000 within the budget).
        log(f"loading {len(study_files)} small instances into both (STOW-RS)")
        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            loaded = list(pool.map(lambda s: bulk_load(s, study_files), servers))
            loads = {s.name: r for s, r in zip(servers, loaded, strict=True)}
        setup: dict[str, Any] = {}
        for server in servers:
            r = loads[server.name]
            setup[server.name] = {**r, "instances_per_s": r["stored"] / r["seconds"],
                                  "held_after": count_instances(server)}
            log(f"setup {server.name}: holds {setup[server.name]['held_after']}")
        results["find_setup"] = setup
        results["find_indexed"] = len(study_files)

        echo: dict[str, Any] = {}
        for server in servers:
            cpu.foreign_cores()
            times = [echoscu(server) for _ in range(args.echo_count)]
            echo[server.name] = {"n": len(times), "p50_ms": _percentile(times, 50) * 1000,
                                 "p99_ms": _percentile(times, 99) * 1000,
                                 "foreign_cpu_cores": cpu.foreign_cores()}
        results["echo"] = echo
        log(f"echoscu p50: {echo['ours']['p50_ms']:.1f} / {echo['orthanc']['p50_ms']:.1f} ms")

        results["find"] = {}
        for kind, queries in find_queries(study_files, args.find_queries).items():
            entry: dict[str, Any] = {"example": queries[0]}
            for server in servers:
                findscu(server, queries[:1])  # warm-up
                cpu.foreign_cores()
                lat, matches, rcs = [], [], set()
                for q in queries:
                    seconds, n, rc = findscu(server, [q])
                    lat.append(seconds)
                    matches.append(n)
                    rcs.add(rc)
                entry[server.name] = {
                    "n": len(lat), "p50_ms": _percentile(lat, 50) * 1000,
                    "p99_ms": _percentile(lat, 99) * 1000,
                    "mean_matches": sum(matches) / len(matches), "matches": matches,
                    "returncodes": sorted(rcs), "foreign_cpu_cores": cpu.foreign_cores()}
                r = entry[server.name]
                r["last_findscu_output"] = LAST_OUTPUT.get(server.name, "")
                # Query time without process start / association set-up: one findscu with
                # all queries on one association, minus one with a single query, per query.
                files = write_query_files(work / "queries" / kind.replace("*", "x")
                                          .replace(" ", "_") / server.name, queries)
                cpu.foreign_cores()
                t_one, _, _ = findscu_batch(server, files[:1])
                t_all, n_all, rc_all = findscu_batch(server, files)
                entry[server.name + " one association"] = {
                    "n": len(files), "seconds_all": t_all, "seconds_one": t_one,
                    "mean_ms": (t_all - t_one) / (len(files) - 1) * 1000,
                    "matches": n_all, "returncode": rc_all,
                    "foreign_cpu_cores": cpu.foreign_cores()}
                r1 = entry[server.name + " one association"]
                log(f"C-FIND {kind} {server.name} ({len(files)} on one association): mean "
                    f"{r1['mean_ms']:.1f} ms per query, {n_all} matches in all, rc {rc_all}")
                log(f"C-FIND {kind} {server.name}: p50 {r['p50_ms']:.1f} ms p99 "
                    f"{r['p99_ms']:.1f} ms, mean matches {r['mean_matches']:.1f}, rc {rcs}, "
                    f"other processes {r['foreign_cpu_cores']:.2f} cores")
            differ = sum(1 for a, b in zip(entry["ours"]["matches"],
                                           entry["orthanc"]["matches"], strict=True) if a != b)
            if differ:
                entry["warning"] = f"match counts differ for {differ} of {len(queries)} queries"
                log(f"WARNING C-FIND {kind}: {entry['warning']}")
            results["find"][kind] = entry
    print_results(run.results, run.saved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
