#!/usr/bin/env python3
"""Benchmark: ``wsi dicomize`` against wsidicomizer (PyPI) and OrthancWSIDicomizer (Debian).

On the same slides, in one run, with ``cp`` of the source as the floor:

- a synthetic 40000 x 30000 Aperio-like SVS (RGB JPEG tiles of 240, base level only, as
  ``samples/synthetic_slide.py --reuse`` makes it; cached in ``bench/results/cache/``), and
- the largest real slide in ``../shared/slides`` (or ``--slide PATH``, repeatable).

Cases per slide: tile passthrough and forced JPEG re-encoding for every tool, plus the
like-for-like variants. By default our pyramid runs down to one tile (factor 2), while
wsidicomizer and Orthanc write only the levels the source stores: so ours also runs with
``--levels source`` (the anchors' default) and they also run with ``--add-missing-levels`` /
``--pyramid=1`` (ours' default). Our re-encode defaults to full-chroma (RGB, 4:4:4) JPEG
while both anchors encode 4:2:0, so ours also runs with ``--subsampling 420``. Two floors:
``cp`` of the source, and ``ours imports only`` (starting the interpreter and importing what
``wsi dicomize`` imports, no conversion). For our runs the conversion time that ``wsi
dicomize`` reports itself (interpreter start and imports excluded) is recorded as well.
Our packages are byte-compiled first (:func:`byte_compile`), as ``make run`` does.

Each case runs ``--runs`` times (round robin, so background load hits every tool alike);
the best wall time counts, with its peak RSS and CPU time from ``/usr/bin/time -v`` and the
cores other processes used meanwhile (before each run it waits up to ``--max-wait`` s for
other processes to use < 0.3 cores: the machine is shared). Each
case's output is checked once: dciodvfy errors (all files), whether wsidicom and OpenSlide
open it, and the instances and pyramid levels written. The table and the ratios are
printed and everything is written as JSON and Markdown to ``bench/results/``.

Tools are installed when missing: Debian packages ``orthanc-wsi``, ``time``, ``dicom3tools``,
``libturbojpeg0`` (wsidicomizer's PyTurboJPEG needs it), and wsidicomizer into its own venv
``bench/.venv-anchors`` (gitignored) so its dependency pins do not touch ours.

Run from the repository root:  ``.venv/bin/python bench/dicomize_vs_anchors.py``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the vs_orthanc package
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # samples/

from vs_orthanc.common import REPO, RESULTS_DIR, VENV_BIN, log  # noqa: E402
from vs_orthanc.servers import (  # noqa: E402
    _busy_jiffies,
    ensure_debian_packages,
    wait_until_quiet,
)

DEBIAN_PACKAGES = ("orthanc-wsi", "time", "dicom3tools", "libturbojpeg0")
ANCHOR_VENV = REPO / "bench" / ".venv-anchors"
OURS = VENV_BIN / "wsi"
PYTHON = VENV_BIN / "python"
WSIDICOMIZER = ANCHOR_VENV / "bin" / "wsidicomizer"
ORTHANC = "/usr/bin/OrthancWSIDicomizer"
TIME = "/usr/bin/time"
SHARED_SLIDES = REPO.parent / "shared" / "slides"
SLIDE_SUFFIXES = {".svs", ".ndpi", ".tif", ".tiff", ".scn", ".bif", ".mrxs", ".vms"}
SYNTHETIC_SIZE = (40000, 30000)


@dataclass(frozen=True)
class Case:
    """One way of converting a slide."""

    name: str
    tool: str
    mode: str
    """``passthrough`` or ``re-encode``."""
    argv: Callable[[Path, Path], list[str]] = field(repr=False)
    """(source, output folder) → command line."""
    empty_folder: bool = False
    """True if the tool wants the output folder to exist (Orthanc)."""


def openslide_library() -> Path | None:
    """libopenslide from the openslide-bin wheel (Orthanc needs it for non-TIFF formats)."""
    import openslide_bin  # type: ignore[import-untyped]

    found = sorted(Path(openslide_bin.__file__).parent.glob("libopenslide.so*"))
    return found[0] if found else None


def orthanc(*flags: str) -> Callable[[Path, Path], list[str]]:
    def argv(source: Path, out: Path) -> list[str]:
        extra = []
        if source.suffix.lower() != ".svs" and (library := openslide_library()):
            # Orthanc reads hierarchical TIFF itself and anything else through OpenSlide.
            extra = [f"--openslide={library}"]
        return [ORTHANC, "--threads=2", *extra, *flags, f"--folder={out}", str(source)]
    return argv


CASES = (
    Case("ours", "ours", "passthrough",
         lambda s, o: [str(OURS), "dicomize", str(s), "-o", str(o), "--quiet"]),
    Case("ours --levels source", "ours", "passthrough",
         lambda s, o: [str(OURS), "dicomize", str(s), "-o", str(o), "--quiet",
                       "--levels", "source"]),
    Case("wsidicomizer", "wsidicomizer", "passthrough",
         lambda s, o: [str(WSIDICOMIZER), "-i", str(s), "-o", str(o), "-w", "2"]),
    Case("wsidicomizer --add-missing-levels", "wsidicomizer", "passthrough",
         lambda s, o: [str(WSIDICOMIZER), "-i", str(s), "-o", str(o), "-w", "2",
                       "--add-missing-levels"]),
    Case("Orthanc", "orthanc", "passthrough", orthanc(), empty_folder=True),
    Case("Orthanc --pyramid=1", "orthanc", "passthrough", orthanc("--pyramid=1"),
         empty_folder=True),
    Case("ours --force-reencode", "ours", "re-encode",
         lambda s, o: [str(OURS), "dicomize", str(s), "-o", str(o), "--quiet",
                       "--force-reencode"]),
    Case("ours --force-reencode --subsampling 420", "ours", "re-encode",
         lambda s, o: [str(OURS), "dicomize", str(s), "-o", str(o), "--quiet",
                       "--force-reencode", "--subsampling", "420"]),
    Case("ours --levels source --force-reencode --subsampling 420", "ours", "re-encode",
         lambda s, o: [str(OURS), "dicomize", str(s), "-o", str(o), "--quiet",
                       "--levels", "source", "--force-reencode", "--subsampling", "420"]),
    Case("wsidicomizer --force-transcoding", "wsidicomizer", "re-encode",
         lambda s, o: [str(WSIDICOMIZER), "-i", str(s), "-o", str(o), "-w", "2",
                       "--force-transcoding"]),
    # wsidicomizer encodes at quality 80 by default, ours and Orthanc at 90.
    Case("wsidicomizer --force-transcoding --quality 90", "wsidicomizer", "re-encode",
         lambda s, o: [str(WSIDICOMIZER), "-i", str(s), "-o", str(o), "-w", "2",
                       "--force-transcoding", "--quality", "90"]),
    Case("wsidicomizer --force-transcoding --add-missing-levels", "wsidicomizer", "re-encode",
         lambda s, o: [str(WSIDICOMIZER), "-i", str(s), "-o", str(o), "-w", "2",
                       "--force-transcoding", "--add-missing-levels"]),
    Case("Orthanc --reencode=1", "orthanc", "re-encode", orthanc("--reencode=1"),
         empty_folder=True),
    Case("Orthanc --reencode=1 --pyramid=1", "orthanc", "re-encode",
         orthanc("--reencode=1", "--pyramid=1"), empty_folder=True),
)
COPY = Case("cp (floor)", "cp", "copy", lambda s, o: ["cp", str(s), str(o / s.name)],
            empty_folder=True)
IMPORTS = Case("ours imports only (floor)", "floor", "floor",
               lambda s, o: [str(PYTHON), "-c",
                             "import wsi.cli, dicomizer.convert, tifffile"])
FLOORS = (COPY, IMPORTS)
RATIOS = (
    # (ours, anchor): like-for-like pairs first.
    ("ours --levels source", "wsidicomizer"),
    ("ours --levels source", "Orthanc"),
    ("ours --levels source", "cp (floor)"),
    ("ours", "wsidicomizer --add-missing-levels"),
    ("ours", "Orthanc --pyramid=1"),
    ("ours", "wsidicomizer"),
    ("ours", "Orthanc"),
    ("ours", "cp (floor)"),
    ("ours --levels source --force-reencode --subsampling 420",
     "wsidicomizer --force-transcoding --quality 90"),
    ("ours --levels source --force-reencode --subsampling 420",
     "wsidicomizer --force-transcoding"),
    ("ours --levels source --force-reencode --subsampling 420", "Orthanc --reencode=1"),
    ("ours --force-reencode --subsampling 420",
     "wsidicomizer --force-transcoding --add-missing-levels"),
    ("ours --force-reencode --subsampling 420", "Orthanc --reencode=1 --pyramid=1"),
    ("ours --force-reencode", "wsidicomizer --force-transcoding --add-missing-levels"),
    ("ours --force-reencode", "wsidicomizer --force-transcoding"),
    ("ours --force-reencode", "Orthanc --reencode=1"),
)


@dataclass
class Measured:
    """One command run under ``/usr/bin/time -v``."""

    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    ok: bool
    error: str = ""
    other_load: float = 0.0
    """Cores that other processes used meanwhile (the machine is shared)."""
    conversion_s: float | None = None
    """Ours: the conversion time ``wsi dicomize`` reports (no interpreter start, imports)."""


@dataclass
class Result:
    """All runs of one case on one slide, and the checks of its output."""

    slide: str
    case: str
    tool: str
    mode: str
    runs: list[Measured] = field(default_factory=list)
    instances: int = 0
    volume_levels: int = 0
    output_mb: float = 0.0
    dciodvfy_errors: int | None = None
    wsidicom_opens: bool | None = None
    openslide_opens: bool | None = None

    @property
    def best(self) -> Measured | None:
        good = [run for run in self.runs if run.ok]
        return min(good, key=lambda run: run.wall_s) if good else None


# -- setup ---------------------------------------------------------------------------------


def ensure_tools() -> None:
    """Install the Debian packages and the wsidicomizer venv when missing."""
    ensure_debian_packages(DEBIAN_PACKAGES)
    if not WSIDICOMIZER.exists():
        log(f"installing wsidicomizer into {ANCHOR_VENV.relative_to(REPO)}")
        subprocess.run([sys.executable, "-m", "venv", str(ANCHOR_VENV)], check=True)
        subprocess.run([str(ANCHOR_VENV / "bin" / "pip"), "install", "--quiet",
                        "wsidicomizer"], check=True)


def byte_compile() -> None:
    """Write fresh .pyc files for our packages (as ``make run``/``make test`` do).

    They are installed editable, and with ``PYTHONDONTWRITEBYTECODE=1`` every ``wsi``
    start would otherwise compile them again (0.1–0.2 s); the anchors are installed packages
    with their .pyc, so this keeps the comparison fair.
    """
    subprocess.run([str(PYTHON), "-m", "compileall", "-q",
                    "wsi", "dicomizer", "archive", "dicomweb", "samples"],
                   cwd=REPO, check=True)


def synthetic_slide() -> Path:
    """The 40000 x 30000 synthetic SVS, made once and cached."""
    width, height = SYNTHETIC_SIZE
    path = RESULTS_DIR / "cache" / f"synthetic-{width}x{height}.svs"
    if not path.exists():
        from samples.synthetic_slide import write_synthetic_svs

        log(f"writing {path.relative_to(REPO)}")
        write_synthetic_svs(path.with_suffix(".partial"), width, height, reuse=64)
        path.with_suffix(".partial").rename(path)
    return path


def largest_real_slide() -> Path:
    """The largest vendor slide file in shared/slides."""
    slides = [p for p in SHARED_SLIDES.rglob("*") if p.suffix.lower() in SLIDE_SUFFIXES]
    if not slides:
        raise SystemExit(f"no slides in {SHARED_SLIDES}")
    return max(slides, key=lambda p: p.stat().st_size)


# -- measuring -----------------------------------------------------------------------------


def timed(argv: list[str], log_file: Path) -> Measured:
    """Run ``argv`` under ``/usr/bin/time -v``; its report goes to ``log_file``."""
    busy = _busy_jiffies()
    with log_file.open("w") as out:
        done = subprocess.run([TIME, "-v", *argv], stdout=out, stderr=subprocess.STDOUT,
                              check=False)
    busy = _busy_jiffies() - busy
    text = log_file.read_text(errors="replace")

    def number(label: str) -> float:
        found = re.search(rf"{re.escape(label)}: ([\d.:]+)", text)
        return _seconds(found.group(1)) if found else float("nan")

    wall = number("Elapsed (wall clock) time (h:mm:ss or m:ss)")
    cpu = number("User time (seconds)") + number("System time (seconds)")
    other = (busy / os.sysconf("SC_CLK_TCK") - cpu) / max(wall, 0.01)
    inner = re.search(r"instance\(s\) in ([\d.]+) s", text)
    return Measured(
        wall_s=wall,
        cpu_s=cpu,
        peak_rss_mb=number("Maximum resident set size (kbytes)") / 1024,
        ok=done.returncode == 0,
        error="" if done.returncode == 0 else text.strip().splitlines()[0][:300],
        other_load=max(0.0, other),
        conversion_s=float(inner.group(1)) if inner else None,
    )


def _seconds(value: str) -> float:
    parts = [float(p) for p in value.split(":")]
    total = 0.0
    for part in parts:
        total = total * 60 + part
    return total


def check_output(folder: Path, result: Result) -> None:
    """dciodvfy errors, wsidicom/OpenSlide, instances and levels of one conversion."""
    import openslide
    import pydicom
    from wsidicom import WsiDicom

    files = sorted(folder.rglob("*.dcm"))
    result.instances = len(files)
    result.output_mb = sum(f.stat().st_size for f in files) / 1e6
    errors = 0
    volume: set[tuple[int, int]] = set()
    for path in files:
        report = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True,
                                check=False)
        errors += sum(1 for line in (report.stdout + report.stderr).splitlines()
                      if line.startswith("Error"))
        header = pydicom.dcmread(path, stop_before_pixels=True)
        image_type = list(header.get("ImageType", []))
        if len(image_type) < 3 or image_type[2] == "VOLUME":
            volume.add((int(header.get("TotalPixelMatrixColumns", 0)),
                        int(header.get("TotalPixelMatrixRows", 0))))
    result.dciodvfy_errors = errors
    result.volume_levels = len(volume)
    try:
        with WsiDicom.open(folder) as wsi:
            wsi.read_region((0, 0), len(wsi.levels) - 1, (16, 16))
        result.wsidicom_opens = True
    except Exception:  # any failure to open counts as "does not open"
        result.wsidicom_opens = False
    result.openslide_opens = False
    for path in files:
        try:
            with openslide.OpenSlide(str(path)) as slide:
                slide.read_region((0, 0), slide.level_count - 1, (16, 16))
            result.openslide_opens = True
            break
        except Exception:  # OpenSlide opens the series from any one of its files
            continue


def run_all(slides: Sequence[Path], cases: Sequence[Case], runs: int, work: Path,
            max_wait: float) -> list[Result]:
    results = {(s.name, c.name): Result(s.name, c.name, c.tool, c.mode)
               for s in slides for c in cases}
    for run in range(1, runs + 1):
        for slide in slides:
            for case in cases:
                out = work / "out"
                shutil.rmtree(out, ignore_errors=True)
                if case.empty_folder:
                    out.mkdir(parents=True)
                result = results[(slide.name, case.name)]
                log(f"run {run}/{runs} {slide.name}: {case.name}")
                if case.tool != "cp" and max_wait > 0:
                    wait_until_quiet(0.3, max_wait)
                measured = timed(case.argv(slide, out), work / "time.log")
                result.runs.append(measured)
                if not measured.ok:
                    log(f"  failed: {measured.error}")
                elif case not in FLOORS and result.dciodvfy_errors is None:
                    check_output(out, result)
                shutil.rmtree(out, ignore_errors=True)
    return list(results.values())


# -- reporting -----------------------------------------------------------------------------


def table(results: Sequence[Result]) -> str:
    head = ("| slide | case | wall s (best) | conversion s | CPU s | peak RSS MB | other load | "
            "instances | levels | output MB | dciodvfy errors | wsidicom | OpenSlide |")
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in results:
        best = r.best

        def yes(value: bool | None) -> str:
            return "–" if value is None else ("yes" if value else "**no**")

        if best is None:
            lines.append(f"| {r.slide} | {r.case} | failed | | | | | | | | | | |")
            continue
        conversion = "–" if best.conversion_s is None else f"{best.conversion_s:.2f}"
        lines.append(
            f"| {r.slide} | {r.case} | {best.wall_s:.2f} | {conversion} | {best.cpu_s:.1f} | "
            f"{best.peak_rss_mb:.0f} | {best.other_load:.2f} | {r.instances or '–'} | "
            f"{r.volume_levels or '–'} | "
            f"{r.output_mb:.0f} | {'–' if r.dciodvfy_errors is None else r.dciodvfy_errors} | "
            f"{yes(r.wsidicom_opens)} | {yes(r.openslide_opens)} |")
    return "\n".join(lines)


def ratios(results: Sequence[Result]) -> list[dict[str, object]]:
    found = []
    by_key = {(r.slide, r.case): r for r in results}
    for slide in dict.fromkeys(r.slide for r in results):
        for ours, anchor in RATIOS:
            a, b = by_key.get((slide, ours)), by_key.get((slide, anchor))
            if a is None or b is None or a.best is None or b.best is None:
                continue
            found.append({
                "slide": slide, "ours": ours, "anchor": anchor,
                "time_ours_over_anchor": a.best.wall_s / max(b.best.wall_s, 0.01),
                "cpu_ours_over_anchor": a.best.cpu_s / max(b.best.cpu_s, 0.01),
                "rss_ours_over_anchor": (a.best.peak_rss_mb / b.best.peak_rss_mb
                                         if anchor != COPY.name else None),
            })
    return found


def ratio_lines(found: Sequence[dict[str, object]]) -> str:
    lines = ["| slide | ours | anchor | wall ours/anchor | CPU ours/anchor | "
             "peak RSS ours/anchor |", "|---|---|---|---|---|---|"]
    for item in found:
        rss = item["rss_ours_over_anchor"]
        lines.append(f"| {item['slide']} | {item['ours']} | {item['anchor']} | "
                     f"{item['time_ours_over_anchor']:.2f} | "
                     f"{item['cpu_ours_over_anchor']:.2f} | "
                     f"{'–' if rss is None else f'{rss:.2f}'} |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=2, help="runs per case (best counts)")
    parser.add_argument("--slide", type=Path, action="append",
                        help="slide(s) to use instead of the synthetic and largest real one")
    parser.add_argument("--cases", default="",
                        help="comma-separated substrings: run only cases whose name has one "
                        "(=NAME: exactly that case)")
    parser.add_argument("--no-install", action="store_true", help="do not install tools")
    parser.add_argument("--max-wait", type=float, default=20.0,
                        help="seconds to wait at most before each run for other processes "
                        "to use < 0.3 cores (0: do not wait)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if not args.no_install:
        ensure_tools()
    byte_compile()
    slides = args.slide or [synthetic_slide(), largest_real_slide()]
    wanted = [w.strip() for w in args.cases.split(",") if w.strip()]
    cases = [*FLOORS] + [c for c in CASES if not wanted or any(
        c.name == w[1:] if w.startswith("=") else w in c.name for w in wanted)]
    work = RESULTS_DIR / "tmp-dicomize"
    work.mkdir(parents=True, exist_ok=True)
    started = datetime.now()
    try:
        results = run_all(slides, cases, args.runs, work, args.max_wait)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    found = ratios(results)
    report = (f"{table(results)}\n\nRatios (of the best run; < 1 means ours is faster or "
              f"smaller; CPU = user + system time, less sensitive to other load on the "
              f"machine than wall time):\n\n{ratio_lines(found)}\n")
    print(report)
    stamp = f"{started:%Y%m%d-%H%M%S}"
    payload = {
        "started": started.isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                    "load_average": os.getloadavg()},
        "slides": [{"name": s.name, "bytes": s.stat().st_size} for s in slides],
        "runs": args.runs,
        "results": [asdict(r) | {"best": asdict(r.best) if r.best else None}
                    for r in results],
        "ratios": found,
    }
    (RESULTS_DIR / f"dicomize_vs_anchors-{stamp}.json").write_text(
        json.dumps(payload, indent=2))
    (RESULTS_DIR / f"dicomize_vs_anchors-{stamp}.md").write_text(report)
    log(f"written bench/results/dicomize_vs_anchors-{stamp}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
