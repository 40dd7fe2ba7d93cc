"""The Markdown tables of figures, the verdicts on the issue's goals, the printed report."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

TABLE_HEAD = ("| workload | metric | ours | Orthanc | ours/Orthanc | other load (cores) |",
              "|---|---|---:|---:|---:|---:|")


def _fmt(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:,.{digits}f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or math.isnan(ours) or math.isnan(theirs):
        return "-"
    if theirs == 0:
        return "inf" if ours else "-"
    ratio = ours / theirs
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    return f"{ratio:.2f}x" if ratio >= 0.01 else f"{ratio:.4f}x"


def row(workload: str, metric: str, ours: float | None, theirs: float | None, load: str) -> str:
    """One row of the table: both figures and their ratio."""
    return (f"| {workload} | {metric} | {_fmt(ours)} | {_fmt(theirs)} | {_ratio(ours, theirs)} | "
            f"{load} |")


def print_report(title: str, results: dict[str, Any], out: Path, table: str,
                 goals: Sequence[str], *, peak_rss: bool = False) -> None:
    """Print a run's heading, versions, table and goal verdicts, then where its JSON is.

    The run's notes follow the goals; with ``peak_rss`` the servers' peak RSS does instead.
    """
    machine = results["machine"]
    memory = f", {machine['memory_gib']} GiB" if "memory_gib" in machine else ""
    print(f"\n{title} ({results['started']}, {machine['cpus']} cores{memory})")
    print(f"versions: {results['versions']}\n")
    print(table)
    print("\nGoals:")
    for goal in goals:
        print(f"- {goal}")
    saved = f"results: {out}  (total {results.get('seconds', 0):.0f} s)"
    if peak_rss:
        peaks = {k: round(v) for k, v in results.get("peak_rss_mib", {}).items()}
        print(f"\npeak RSS (MiB): {peaks}")
        print(saved)
    else:
        for note in results.get("notes", []):
            print(f"- note: {note}")
        print(f"\n{saved}")


def report(results: dict[str, Any]) -> tuple[str, list[str]]:
    """The Markdown table of figures and the goal verdicts."""
    rows = list(TABLE_HEAD)

    def load(o: dict[str, Any] | None, t: dict[str, Any] | None) -> str:
        values = [x.get("foreign_cpu_cores") for x in (o or {}, t or {})]
        return " / ".join("-" if v is None else f"{v:.2f}" for v in values)

    stow_r = results.get("stow")
    if stow_r:
        name = (f"STOW-RS {stow_r['instances']} CT instances "
                f"({stow_r['bytes'] / stow_r['instances'] / 1e6:.2f} MB), "
                f"{stow_r['per_request']}/request")
        for metric, key in (("instances/s", "instances_per_s"), ("MB/s", "mb_per_s")):
            rows.append(row(name, metric, stow_r["ours"][key], stow_r["orthanc"][key],
                            load(stow_r["ours"], stow_r["orthanc"])))
    setup = results.get("qido_setup")
    if setup and all(s.get("seconds") for s in setup.values()):
        o, t = (setup[n]["stored"] / setup[n]["seconds"] for n in ("ours", "orthanc"))
        rows.append(row(f"(setup, not a goal) STOW-RS of the {setup['ours']['stored']:,} "
                        "small QIDO instances, 250/request, 2 in parallel", "instances/s", o, t,
                        "-"))
    qido = results.get("qido") or {}
    for kind, r in qido.items():
        for metric, key in (("p50 ms", "p50_ms"), ("p99 ms", "p99_ms")):
            rows.append(row(f"QIDO {kind}", f"{metric} (n={r['ours']['requests']}/"
                            f"{r['orthanc']['requests']})", r["ours"][key], r["orthanc"][key],
                            load(r["ours"], r["orthanc"])))
    frames = results.get("frames") or {}
    ours_f = frames.get("ours frames", {})
    for label in ("orthanc frames", "orthanc wsi tiles"):
        theirs = frames.get(label, {})
        for c, o in ours_f.items():
            t = theirs.get(c)
            if t is None:
                continue
            what = "WADO-RS frames" if label == "orthanc frames" else \
                "frames (ours) vs Orthanc WSI /wsi/tiles"
            for metric, key in (("req/s", "rps"), ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms")):
                note = ""
                if key == "rps" and "aborted" in t:
                    note = " (Orthanc killed at the RSS limit)"
                elif key == "rps" and t.get("errors"):
                    note = f" ({t['errors']} errors)"
                if key == "rps" and o.get("errors"):
                    note += f" (ours {o['errors']} err)"
                rows.append(f"| {what} c={c} | {metric} | {_fmt(o.get(key))} | "
                            f"{_fmt(t.get(key))}{note} | {_ratio(o.get(key), t.get(key))} | "
                            f"{load(o, t)} |")
    goals = []
    if stow_r:
        ratio = stow_r["ours"]["instances_per_s"] / stow_r["orthanc"]["instances_per_s"]
        goals.append(f"STOW-RS >= 1.5x Orthanc: {ratio:.2f}x -> "
                     f"{'MET' if ratio >= 1.5 else 'NOT MET'}")
    if qido:
        for kind, r in qido.items():
            o, t = r["ours"]["p50_ms"], r["orthanc"]["p50_ms"]
            goals.append(f"QIDO p50 <= Orthanc [{kind}]: {o:.1f} vs {t:.1f} ms -> "
                         f"{'MET' if o <= t else 'NOT MET'}")
    o8 = ours_f.get("8")
    t8 = (frames.get("orthanc frames") or {}).get("8")
    if o8 and t8:
        if t8["rps"]:
            ratio = o8["rps"] / t8["rps"]
            goals.append(f"WADO-RS frames >= 3x Orthanc req/s at c=8: {ratio:.1f}x -> "
                         f"{'MET' if ratio >= 3 else 'NOT MET'}")
        else:
            goals.append("WADO-RS frames >= 3x Orthanc req/s at c=8: Orthanc completed no "
                         f"request; ours {o8['rps']:.0f} req/s -> MET")
    w8 = (frames.get("orthanc wsi tiles") or {}).get("8")
    if o8 and w8 and w8["rps"]:
        goals.append(f"(no goal) frames vs Orthanc WSI tile API at c=8: "
                     f"{o8['rps'] / w8['rps']:.2f}x")
    return "\n".join(rows), goals


# --------------------------------------------------------------------------------------------
