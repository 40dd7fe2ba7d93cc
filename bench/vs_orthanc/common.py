"""Constants and helpers shared by the benchmark modules."""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

RESULTS_DIR = REPO / "bench" / "results"
VENV_BIN = REPO / ".venv" / "bin"
DEBIAN_PACKAGES = ("orthanc", "orthanc-dicomweb", "orthanc-wsi", "wrk")
ORTHANC_BIN = "/usr/sbin/Orthanc"
FRAME_ACCEPT = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
MIB = 1024 * 1024
# Past this RSS a server is killed with its load generator: the machine has 24 GiB and is
# shared. Orthanc holds ~500 MB per in-flight frame request of a 227 MB instance (measured
# 4.5 GB at 8 concurrent requests), so c=64 against its 50 HTTP threads would exhaust memory.
RSS_LIMIT_BYTES = 8 * 1024**3


def log(message: str) -> None:
    """Progress output on stderr, with a timestamp."""
    print(f"[{datetime.now():%H:%M:%S}] {message}", file=sys.stderr, flush=True)


def save_run(prefix: str, results: dict, work: Path, keep: bool, started: float) -> Path:
    """Finish a benchmark run: write its JSON result and remove (or keep) its work folder."""
    results["seconds"] = time.monotonic() - started
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    out = RESULTS_DIR / f"{prefix}-{datetime.now():%Y%m%d-%H%M%S}.json"
    out.write_text(json.dumps(results, indent=2, default=str))
    if keep:
        log(f"kept {work}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return out
