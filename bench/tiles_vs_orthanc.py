#!/usr/bin/env python3
"""Benchmark: this archive's slide tile endpoint and viewer against Orthanc's WSI plugin.

One run starts both servers (``wsi serve`` and Orthanc 1.10 + DICOMweb + WSI plugins, via
``vs_orthanc.servers``) on free loopback ports with fresh storage, stores the same slide in
both by STOW-RS and measures:

1. Level-0 tiles with ``wrk`` (keep-alive, Lua script, 2,000 seeded random level-0 tiles,
   the same sequence for both) at concurrency 1, 8 and 64: ours
   ``GET /wsi/series/{series}/tiles/0/{col}/{row}`` against Orthanc WSI
   ``GET /wsi/tiles/{orthanc-series-id}/0/{x}/{y}``: tiles/s, p50/p99.
2. Time to a fully loaded 1920x1080 viewport in headless Chromium (Playwright, Debian
   ``/usr/bin/chromium``), a fresh browser context (empty cache) per load: ours
   ``/viewer/slide.html?series=UID`` (until OpenSeadragon's ``getFullyLoaded()``) and
   Orthanc's ``/wsi/app/viewer.html?series=ID`` (OpenLayers: until no tile request is in
   flight and none started for 1 s; the figure is the end of the last tile response).

The slide is the 40000x30000 level that ``dicomweb_vs_orthanc.py`` caches in
``bench/results/cache/``; for the viewer the lower-resolution levels of the same pyramid
(``samples.wsi_level.write_wsi_level`` with the level-0 UIDs, downsample 2, 4, ...) are
written once into the same cache and stored in the same series (a viewer on a single
40000x30000 level would have to load thousands of tiles for the first view).

Prints a table with both figures and the ratio ours/Orthanc, writes JSON to
``bench/results/``. A benchmark, not a test: exits 0 whether or not the goals are met.

Run from the repository root:  ``.venv/bin/python bench/tiles_vs_orthanc.py``
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the vs_orthanc package
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # samples/

import vs_orthanc.frames as frames_mod  # noqa: E402
from vs_orthanc.client import Client, Server, stow  # noqa: E402
from vs_orthanc.common import MIB, log  # noqa: E402
from vs_orthanc.data import make_wsi_level, parallel_tile_rendering, wsi_info  # noqa: E402
from vs_orthanc.frames import orthanc_series_id, run_wrk, wait_idle  # noqa: E402
from vs_orthanc.report import TABLE_HEAD, _fmt, _ratio, print_report  # noqa: E402
from vs_orthanc.run import add_run_options, add_slide_options, benchmark_run, names  # noqa: E402
from vs_orthanc.servers import CpuAccount, RssWatch, ensure_debian_packages  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_slide_options(parser)
    parser.add_argument("--tiles", type=int, default=2000, help="random level-0 tile pool")
    parser.add_argument("--viewer-loads", type=int, default=5, help="page loads per viewer")
    parser.add_argument("--viewer-timeout", type=float, default=60.0)
    parser.add_argument("--skip", type=names, default="",
                        help="comma list of tiles,viewer to skip")
    add_run_options(parser, max_wait=60)
    return parser.parse_args(argv)


def make_upper_levels(level0: Path, cache_dir: Path) -> list[Path]:
    """Levels 1.. (downsample 2, 4, ...) of the cached level's pyramid, cached too."""
    import pydicom

    import samples.wsi_level as wsi_level

    ds = pydicom.dcmread(level0, stop_before_pixels=True)
    width, height = int(ds.TotalPixelMatrixColumns), int(ds.TotalPixelMatrixRows)
    tile = int(ds.Columns)
    sizes = wsi_level.pyramid_sizes(width, height, tile)[1:]
    paths = [cache_dir / f"{level0.stem}-level-{i}.dcm" for i in range(1, len(sizes) + 1)]
    if all(p.exists() for p in paths):
        return paths
    log(f"writing {len(sizes)} lower-resolution levels of the pyramid (once, cached)")
    started = time.monotonic()
    spacing = float(ds.SharedFunctionalGroupsSequence[0].PixelMeasuresSequence[0]
                    .PixelSpacing[0])
    kwargs: dict[str, Any] = {
        "study_uid": str(ds.StudyInstanceUID), "series_uid": str(ds.SeriesInstanceUID),
        "frame_of_reference_uid": str(ds.FrameOfReferenceUID),
        "patient_id": str(ds.PatientID), "patient_name": str(ds.PatientName),
        "container_id": str(ds.ContainerIdentifier),
    }
    for keyword, value in (
        ("pyramid_uid", getattr(ds, "PyramidUID", None)),
        ("specimen_uid", ds.SpecimenDescriptionSequence[0].SpecimenUID
         if "SpecimenDescriptionSequence" in ds else None),
        ("dimension_organization_uid", ds.DimensionOrganizationSequence[0]
         .DimensionOrganizationUID if "DimensionOrganizationSequence" in ds else None),
    ):
        if value:
            kwargs[keyword] = str(value)
    with parallel_tile_rendering():
        for index, ((w, h), path) in enumerate(zip(sizes, paths, strict=True), 1):
            if path.exists():
                continue
            partial = path.with_suffix(".partial")
            wsi_level.write_wsi_level(
                partial, width=w, height=h, tile=tile, downsample=2.0**index,
                pixel_spacing_mm=spacing * 2.0**index,
                image_type=wsi_level.RESAMPLED_IMAGE_TYPE, instance_number=index + 1,
                **kwargs)
            partial.rename(path)
    log(f"pyramid levels written in {time.monotonic() - started:.0f} s")
    return paths


def tile_script(pool: Sequence[int]) -> str:
    """frames.WRK_SCRIPT, drawing from a fixed pool of tile numbers instead of all frames."""
    lua_pool = "{" + ",".join(map(str, pool)) + "}"
    script = frames_mod.WRK_SCRIPT.replace(
        "local counter = 1", f"local pool = {lua_pool}\nlocal counter = 1")
    return script.replace("local n = math.random(1, frames)",
                          "local n = pool[math.random(1, #pool)]")


def bench_tiles(targets: Sequence[tuple[str, Server, str]], info: Any,
                concurrencies: Sequence[int], duration: float, work: Path, watch: RssWatch,
                cpu: CpuAccount) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for label, server, prefix in targets:
        results[label] = {}
        run_wrk(server.base_url, "tiles", prefix, info, 8, 3, 10, work, watch)  # warm-up
        wait_idle(server)
        for c in concurrencies:
            cpu.foreign_cores()
            r = run_wrk(server.base_url, "tiles", prefix, info, c, duration, 30, work, watch)
            r["foreign_cpu_cores"] = cpu.foreign_cores()
            results[label][str(c)] = r
            log(f"tiles {label} c={c}: {r['rps']:.1f} tiles/s, p50 {_fmt(r['p50_ms'])} ms, "
                f"p99 {_fmt(r['p99_ms'])} ms, errors {r.get('errors')}, other processes "
                f"{r['foreign_cpu_cores']:.2f} cores")
            wait_idle(server)
    return results


OURS_LOADED = """() => {
  const v = window.wsi && window.wsi.viewer;
  const item = v && v.world && v.world.getItemCount() > 0 && v.world.getItemAt(0);
  return item && item.getFullyLoaded() ? performance.now() : false;
}"""
TIMELINE = """(marker) => {
  const nav = performance.getEntriesByType("navigation")[0];
  const res = performance.getEntriesByType("resource");
  const tiles = res.filter(e => e.name.includes(marker));
  const durations = tiles.map(e => e.responseEnd - e.startTime).sort((a, b) => a - b);
  const byLevel = {};
  for (const e of tiles) {
    const level = e.name.split(marker)[1].split("/")[0];
    byLevel[level] = (byLevel[level] || 0) + 1;
  }
  return {
    dom_content_loaded_ms: nav ? nav.domContentLoadedEventEnd : null,
    first_tile_start_ms: tiles.length ? Math.min(...tiles.map(e => e.startTime)) : null,
    tile_median_ms: durations.length ? durations[durations.length >> 1] : null,
    tile_max_ms: durations.length ? durations[durations.length - 1] : null,
    tiles_by_level: byLevel,
    other: res.filter(e => !e.name.includes(marker)).map(
      e => [e.name.replace(/^https?:\\/\\/[^/]+/, "").slice(0, 80),
            Math.round(e.startTime), Math.round(e.responseEnd)]),
  };
}"""
LAST_TILE_END = """(marker) => {
  const ends = performance.getEntriesByType("resource")
    .filter(e => e.name.includes(marker)).map(e => e.responseEnd);
  return [ends.length, ends.length ? Math.max(...ends) : null];
}"""


def load_viewer(browser: Any, url: str, marker: str, ours: bool, timeout: float
                ) -> dict[str, Any]:
    """One cold page load (fresh context); ms from navigation start."""
    context = browser.new_context(viewport={"width": 1920, "height": 1080})
    page = context.new_page()
    page.set_default_timeout(timeout * 1000)
    state = {"pending": 0, "started": 0, "failed": 0, "last": time.monotonic()}

    def on_request(request: Any) -> None:
        if marker in request.url:
            state["pending"] += 1
            state["started"] += 1
            state["last"] = time.monotonic()

    def on_done(request: Any, failed: bool = False) -> None:
        if marker in request.url:
            state["pending"] -= 1
            state["failed"] += failed
            state["last"] = time.monotonic()

    page.on("request", on_request)
    page.on("requestfinished", on_done)
    page.on("requestfailed", lambda r: on_done(r, True))
    result: dict[str, Any] = {"url": url}
    try:
        page.goto(url, wait_until="commit")
        if ours:
            handle = page.wait_for_function(OURS_LOADED, polling=10)
            result["fully_loaded_ms"] = handle.json_value()
        # Network quiet: no tile in flight and none started for 1 s.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            page.wait_for_timeout(100)
            if state["started"] and state["pending"] <= 0 \
                    and time.monotonic() - state["last"] > 1.0:
                break
        else:
            result["error"] = "timeout waiting for the tiles"
        count, last_end = page.evaluate(LAST_TILE_END, marker)
        result.update({"tiles": count, "requests": state["started"],
                       "failed": state["failed"], "last_tile_end_ms": last_end,
                       "timeline": page.evaluate(TIMELINE, marker)})
    except Exception as exc:  # noqa: BLE001 - report, do not abort the benchmark
        result["error"] = f"{type(exc).__name__}: {exc}"[:500]
    finally:
        context.close()
    return result


def bench_viewers(ours: Server, orthanc: Server, series_uid: str, orthanc_id: str | None,
                  loads: int, timeout: float, cpu: CpuAccount) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    targets = [("ours", ours, f"{ours.base_url}/viewer/slide.html?series={series_uid}",
                f"/wsi/series/{series_uid}/tiles/", True)]
    if orthanc_id:
        targets.append(("orthanc", orthanc,
                        f"{orthanc.base_url}/wsi/app/viewer.html?series={orthanc_id}",
                        f"/wsi/tiles/{orthanc_id}/", False))
    results: dict[str, Any] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for name, _server, url, marker, is_ours in targets:
                load_viewer(browser, url, marker, is_ours, timeout)  # warm-up, not counted
                cpu.foreign_cores()
                runs = [load_viewer(browser, url, marker, is_ours, timeout)
                        for _ in range(loads)]
                ok = [r for r in runs if "error" not in r]
                key = "fully_loaded_ms" if is_ours else "last_tile_end_ms"
                values = [r[key] for r in ok if r.get(key) is not None]
                quiet = [r["last_tile_end_ms"] for r in ok if r.get("last_tile_end_ms")]
                results[name] = {
                    "runs": runs, "metric": key,
                    "median_ms": statistics.median(values) if values else None,
                    "max_ms": max(values) if values else None,
                    "median_last_tile_end_ms": statistics.median(quiet) if quiet else None,
                    "median_tiles": statistics.median([r["tiles"] for r in ok]) if ok else None,
                    "foreign_cpu_cores": cpu.foreign_cores()}
                r = results[name]
                log(f"viewer {name}: median {_fmt(r['median_ms'])} ms ({key}), last tile end "
                    f"{_fmt(r['median_last_tile_end_ms'])} ms, tiles {r['median_tiles']}, "
                    f"errors {[x['error'] for x in runs if 'error' in x]}")
        finally:
            browser.close()
    return results


def report(results: dict[str, Any]) -> tuple[str, list[str]]:
    """The Markdown table of figures and the goal verdicts."""
    rows = list(TABLE_HEAD)
    tiles = results.get("tiles") or {}
    o_all, t_all = tiles.get("ours", {}), tiles.get("orthanc", {})
    for c, o in o_all.items():
        t = t_all.get(c, {})
        for metric, key in (("tiles/s", "rps"), ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms")):
            note = f" ({t['errors']} errors)" if key == "rps" and t.get("errors") else ""
            note_o = f" ({o['errors']} errors)" if key == "rps" and o.get("errors") else ""
            rows.append(f"| level-0 tiles c={c} | {metric} | {_fmt(o.get(key))}{note_o} | "
                        f"{_fmt(t.get(key))}{note} | {_ratio(o.get(key), t.get(key))} | "
                        f"{o.get('foreign_cpu_cores', 0):.2f} / "
                        f"{t.get('foreign_cpu_cores', 0):.2f} |")
    viewer = results.get("viewer") or {}
    if viewer:
        o, t = viewer.get("ours", {}), viewer.get("orthanc", {})
        n = len(o.get("runs", []))
        rows.append(f"| 1920x1080 viewer, cold context: ours getFullyLoaded / Orthanc last "
                    f"tile (network quiet) | median ms (n={n}) | {_fmt(o.get('median_ms'))} | "
                    f"{_fmt(t.get('median_ms'))} | "
                    f"{_ratio(o.get('median_ms'), t.get('median_ms'))} | "
                    f"{o.get('foreign_cpu_cores', 0):.2f} / "
                    f"{t.get('foreign_cpu_cores', 0):.2f} |")
        rows.append(f"| 1920x1080 viewer, cold context: end of last tile response (both) | "
                    f"median ms | {_fmt(o.get('median_last_tile_end_ms'))} | "
                    f"{_fmt(t.get('median_last_tile_end_ms'))} | "
                    f"{_ratio(o.get('median_last_tile_end_ms'), t.get('median_last_tile_end_ms'))}"
                    f" | - |")
        rows.append(f"| 1920x1080 viewer: tiles loaded | median | {_fmt(o.get('median_tiles'), 0)}"
                    f" | {_fmt(t.get('median_tiles'), 0)} | - | - |")
    goals = []
    o8, t8 = o_all.get("8"), t_all.get("8")
    if o8 and t8 and t8.get("rps"):
        ratio = o8["rps"] / t8["rps"]
        goals.append(f"tiles/s >= 3x Orthanc at c=8: {ratio:.2f}x -> "
                     f"{'MET' if ratio >= 3 else 'NOT MET'}")
    o64 = o_all.get("64")
    if o64 and o64.get("p99_ms") is not None:
        goals.append(f"ours p99 <= 50 ms at c=64: {o64['p99_ms']:.1f} ms -> "
                     f"{'MET' if o64['p99_ms'] <= 50 else 'NOT MET'}")
    if viewer.get("ours", {}).get("median_ms") is not None:
        v = viewer["ours"]["median_ms"]
        goals.append(f"full 1920x1080 viewport < 1 s: median {v:.0f} ms (max "
                     f"{viewer['ours']['max_ms']:.0f}) -> {'MET' if v < 1000 else 'NOT MET'}")
    return "\n".join(rows), goals


def print_results(results: dict[str, Any], out: Path) -> None:
    """Print the table, the goal verdicts and the notes of a run, and where its JSON is."""
    print_report("Tiles and viewer: WSI Archive vs Orthanc WSI", results, out, *report(results))


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.report:
        print_results(json.loads(args.report.read_text()), args.report)
        return 0
    if not args.no_install:
        ensure_debian_packages()
    width, height = args.wsi_size
    with benchmark_run("tiles_vs_orthanc", "wsi-bench-tiles-", args.keep) as run:
        results, work = run.results, run.work
        level0 = make_wsi_level(args.cache_dir, width, height, args.tile)
        info = wsi_info(level0)
        upper = make_upper_levels(level0, args.cache_dir) if "viewer" not in args.skip else []
        run.wait_until_quiet(args.quiet_limit, args.max_wait)
        ours, orthanc = run.start_servers()
        servers = run.servers
        run.record_versions(orthanc, ("orthanc-wsi", "wrk", "chromium"))
        results["slide"] = {"level0": str(level0), "frames": info.frames,
                            "size": f"{width}x{height}", "levels": 1 + len(upper),
                            "bytes": sum(p.stat().st_size for p in [level0, *upper])}
        results["store"] = {}
        for server in servers:
            t0 = time.perf_counter()
            outcome = []
            for path in [level0, *upper]:
                outcome.append(stow(Client(server.port, timeout=600), server,
                                    [path.read_bytes()]))
            results["store"][server.name] = {"seconds": time.perf_counter() - t0,
                                             "outcome": outcome}
            log(f"stored {1 + len(upper)} level(s) in {server.name}: {outcome}")
        orthanc_id = orthanc_series_id(orthanc, info.series_uid)
        if orthanc_id:
            status, pyramid, _ = Client(orthanc.port, timeout=300).request(
                "GET", f"/wsi/pyramids/{orthanc_id}")
            results["orthanc_pyramid"] = pyramid[:800].decode(errors="replace")
            if status != 200:
                results["notes"].append(f"Orthanc /wsi/pyramids: HTTP {status}")
        # Same bytes from both for a few tiles (sanity check, not timed).
        checks = []
        for n in (1, info.frames // 2, info.frames):
            col, row = (n - 1) % info.columns_of_tiles, (n - 1) // info.columns_of_tiles
            a = Client(ours.port).request(
                "GET", f"/wsi/series/{info.series_uid}/tiles/0/{col}/{row}",
                headers={"Accept": "image/jpeg"})
            b = Client(orthanc.port).request("GET", f"/wsi/tiles/{orthanc_id}/0/{col}/{row}")
            same = a[1].rstrip(b"\0") == b[1].rstrip(b"\0")
            checks.append(f"tile {col},{row}: HTTP {a[0]}/{b[0]}, {len(a[1])}/{len(b[1])} B, "
                          f"{'identical' if same else 'differ'}")
        results["tile_checks"] = checks
        log("checks: " + "; ".join(checks))

        watch = run.watch = RssWatch(servers)
        cpu = CpuAccount(servers)
        if "tiles" not in args.skip:
            rng = random.Random(2026)
            pool = [rng.randint(1, info.frames) for _ in range(args.tiles)]
            frames_mod.WRK_SCRIPT = tile_script(pool)
            targets = [("ours", ours, f"/wsi/series/{info.series_uid}/tiles/0/")]
            if orthanc_id:
                targets.append(("orthanc", orthanc, f"/wsi/tiles/{orthanc_id}/0/"))
            results["tiles"] = bench_tiles(targets, info, args.concurrency, args.duration,
                                           work, watch, cpu)
        if "viewer" not in args.skip:
            results["viewer"] = bench_viewers(ours, orthanc, info.series_uid, orthanc_id,
                                              args.viewer_loads, args.viewer_timeout, cpu)
        results["peak_rss_mib"] = {s.name: s.peak_rss / MIB for s in servers}
    print_results(run.results, run.saved)
    return 0


if __name__ == "__main__":
    sys.exit(main())
