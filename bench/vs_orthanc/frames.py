"""Workload 3: WADO-RS frame retrieval (and Orthanc's WSI tile API) under wrk."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vs_orthanc.client import Client, Server, multipart_payloads
from vs_orthanc.common import FRAME_ACCEPT, MIB, log
from vs_orthanc.data import WsiInfo, frame_bytes
from vs_orthanc.servers import CpuAccount, RssWatch, tree_jiffies

WRK_SCRIPT = r"""
-- Random single-frame requests; the same sequence of frames for every target.
local frames = __FRAMES__
local across = __ACROSS__
local kind = "__KIND__"
local prefix = "__PREFIX__"
local counter = 1
local threads = {}

function setup(thread)
  thread:set("id", counter)
  table.insert(threads, thread)
  counter = counter + 1
end

function init(args)
  math.randomseed(1000 + id)
  wrk.headers["Accept"] = "__ACCEPT__"
end

function request()
  local n = math.random(1, frames)
  local path
  if kind == "tiles" then
    local i = n - 1
    path = prefix .. (i % across) .. "/" .. math.floor(i / across)
  else
    path = prefix .. n
  end
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "WRKJSON {\"requests\": %d, \"duration_us\": %d, \"bytes\": %d, " ..
    "\"connect\": %d, \"read\": %d, \"write\": %d, \"status\": %d, \"timeout\": %d, " ..
    "\"p50_us\": %d, \"p90_us\": %d, \"p99_us\": %d, \"max_us\": %d, \"mean_us\": %.1f}\n",
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
"""


def run_wrk(url_base: str, kind: str, prefix: str, info: WsiInfo, concurrency: int,
            duration: float, timeout: float, work: Path, watch: RssWatch) -> dict[str, Any]:
    """One wrk run of random frame (or tile) requests."""
    script = (WRK_SCRIPT.replace("__FRAMES__", str(info.frames))
              .replace("__ACROSS__", str(info.columns_of_tiles))
              .replace("__KIND__", kind).replace("__PREFIX__", prefix)
              .replace("__ACCEPT__", FRAME_ACCEPT.replace('"', '\\"') if kind == "frames"
                       else "image/jpeg"))
    script_path = work / f"wrk-{kind}.lua"
    script_path.write_text(script)
    threads = min(2, concurrency)
    command = ["wrk", "-t", str(threads), "-c", str(concurrency), "-d", f"{duration:.0f}s",
               "--timeout", f"{timeout:.0f}s", "-s", str(script_path), url_base]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    watch.load = process
    try:
        out, _ = process.communicate(timeout=duration + timeout + 30)
    except subprocess.TimeoutExpired:
        process.kill()
        out, _ = process.communicate()
    watch.load = None
    text = out.decode(errors="replace")
    result: dict[str, Any] = {"concurrency": concurrency, "threads": threads}
    for line in text.splitlines():
        if line.startswith("WRKJSON "):
            raw = json.loads(line[len("WRKJSON "):])
            seconds = raw["duration_us"] / 1e6
            ok = raw["requests"] - raw["status"]
            errors = raw["status"] + raw["timeout"] + raw["read"] + raw["connect"]
            result.update(raw)
            result["ok_requests"] = ok
            result["rps"] = ok / seconds if seconds else 0.0
            result["p50_ms"] = raw["p50_us"] / 1000 if ok else None
            result["p99_ms"] = raw["p99_us"] / 1000 if ok else None
            result["errors"] = errors
            result["mb_per_s"] = raw["bytes"] / 1e6 / seconds if seconds else 0.0
    if "rps" not in result:
        result.update({"rps": 0.0, "p50_ms": None, "p99_ms": None, "errors": None,
                       "wrk_output": text[-2000:]})
    return result


def check_frames(servers: Sequence[Server], info: WsiInfo, orthanc_series: str | None
                 ) -> dict[str, Any]:
    """Fetch a few frames from each server and compare them with the stored bytes."""
    numbers = [1, info.frames // 2, info.frames]
    expected = frame_bytes(info.path, numbers)
    checks: dict[str, Any] = {}
    for server in servers:
        client = Client(server.port, timeout=120)
        ok = True
        notes = []
        for n in numbers:
            path = (f"{server.dicomweb}/studies/{info.study_uid}/series/{info.series_uid}"
                    f"/instances/{info.sop_uid}/frames/{n}")
            t0 = time.perf_counter()
            status, data, headers = client.request("GET", path, headers={"Accept": FRAME_ACCEPT})
            elapsed = time.perf_counter() - t0
            payloads = (multipart_payloads(data, headers.get("content-type", ""))
                        if status == 200 else [])
            same = len(payloads) == 1 and payloads[0].rstrip(b"\0") == expected[n].rstrip(b"\0")
            ok &= same
            notes.append(f"frame {n}: HTTP {status}, {len(data)} B, {elapsed * 1000:.0f} ms, "
                         f"{'identical' if same else 'DIFFERENT'}")
        checks[f"{server.name} frames"] = {"ok": ok, "notes": notes}
        if server.name == "orthanc" and orthanc_series:
            ok = True
            notes = []
            for n in numbers:
                x, y = (n - 1) % info.columns_of_tiles, (n - 1) // info.columns_of_tiles
                status, data, headers = client.request(
                    "GET", f"/wsi/tiles/{orthanc_series}/0/{x}/{y}")
                same = status == 200 and data.rstrip(b"\0") == expected[n].rstrip(b"\0")
                ok &= status == 200
                notes.append(f"tile {x},{y}: HTTP {status}, {headers.get('content-type')}, "
                             f"{len(data)} B, {'identical to frame' if same else 'not identical'}")
            checks["orthanc wsi tiles"] = {"ok": ok, "notes": notes}
        client.close()
    for name, check in checks.items():
        log(f"check {name}: {'; '.join(check['notes'])}")
    return checks


def orthanc_series_id(server: Server, series_uid: str) -> str | None:
    """Orthanc's own identifier of a series (for the WSI plugin's URLs)."""
    status, data, _ = Client(server.port).request("POST", "/tools/lookup",
                                                  body=series_uid.encode())
    if status != 200:
        return None
    for item in json.loads(data):
        if item.get("Type") == "Series":
            return str(item["ID"])
    return None


def wait_idle(server: Server, max_wait: float = 180.0) -> float:
    """Wait until the server's processes use < 5 % of a core together (requests in flight
    have drained; after a start, every worker process has finished starting)."""
    started = time.monotonic()
    ticks = os.sysconf("SC_CLK_TCK")
    while time.monotonic() - started < max_wait and server.process.poll() is None:
        before = tree_jiffies(server.process.pid)
        time.sleep(1.0)
        if (tree_jiffies(server.process.pid) - before) / ticks < 0.05:
            break
    return time.monotonic() - started


def bench_frames(servers: Sequence[Server], info: WsiInfo, concurrencies: Sequence[int],
                 duration: float, slow_duration: float, work: Path, watch: RssWatch,
                 orthanc_series: str | None, cpu: CpuAccount) -> dict[str, Any]:
    """Workload 3: wrk against our frames, Orthanc's WSI tiles, then Orthanc's frames.

    Orthanc's DICOMweb frames come last: each request parses the whole instance (seconds,
    ~500 MB), so they get a longer run (``slow_duration``) and may trip the RSS guard, which
    kills Orthanc.
    """
    targets: list[tuple[str, Server, str, str, float]] = []
    for server in servers:
        prefix = (f"{server.dicomweb}/studies/{info.study_uid}/series/{info.series_uid}"
                  f"/instances/{info.sop_uid}/frames/")
        if server.name == "orthanc":
            if orthanc_series:
                targets.append(("orthanc wsi tiles", server, "tiles",
                                f"/wsi/tiles/{orthanc_series}/0/", duration))
            targets.append(("orthanc frames", server, "frames", prefix, slow_duration))
        else:
            targets.append((f"{server.name} frames", server, "frames", prefix, duration))
    results: dict[str, Any] = {}
    for label, server, kind, prefix, seconds in targets:
        results[label] = {}
        if server.process.poll() is not None:
            results[label]["skipped"] = f"{server.name} is not running"
            continue
        if seconds == duration:
            # Warm-up (not measured): a few seconds at c=8 so caches and connections settle.
            run_wrk(server.base_url, kind, prefix, info, 8, 3, 10, work, watch)
            wait_idle(server)
        for c in concurrencies:
            watch.tripped = None
            rss_before = server.rss()
            cpu.foreign_cores()
            r = run_wrk(server.base_url, kind, prefix, info, c, seconds,
                        max(60.0, seconds), work, watch)
            r["foreign_cpu_cores"] = cpu.foreign_cores()
            r["rss_after_mib"] = server.rss() / MIB
            r["rss_before_mib"] = rss_before / MIB
            if watch.tripped:
                r["aborted"] = f"load stopped: {watch.tripped}"
            results[label][str(c)] = r
            p50 = f"{r['p50_ms']:.1f}" if r["p50_ms"] is not None else "-"
            p99 = f"{r['p99_ms']:.1f}" if r["p99_ms"] is not None else "-"
            log(f"WADO {label} c={c}: {r['rps']:.1f} req/s, p50 {p50} ms, p99 {p99} ms, "
                f"errors {r.get('errors')}, RSS {r['rss_after_mib']:.0f} MiB, "
                f"other processes {r['foreign_cpu_cores']:.2f} cores"
                + (f" [{r['aborted']}]" if "aborted" in r else ""))
            if server.process.poll() is not None:
                log(f"{server.name} died during the frame workload; see {server.log_path}")
                break
            # Let the server drain requests still in flight before the next run.
            r["drain_seconds"] = wait_idle(server)
    return results
