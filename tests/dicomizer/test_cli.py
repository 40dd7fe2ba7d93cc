"""``wsi dicomize`` end to end: flags, metadata file, progress, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom

from tests.conftest import REPO
from tests.dicomizer.conftest import SVS


def dicomize(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wsi", "dicomize", *map(str, args)],
                          capture_output=True, text=True, cwd=REPO, timeout=120, check=False)


def test_dicomize_writes_the_series_with_flags_over_json(tmp_path: Path,
                                                         synthetic_svs: Path) -> None:
    metadata = tmp_path / "meta.json"
    metadata.write_text(json.dumps({
        "00100020": {"vr": "LO", "Value": ["FROM-JSON"]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Json^Patient"}]},
        "00081030": {"vr": "LO", "Value": ["Study from JSON"]},
        "00080080": {"vr": "LO", "Value": ["JSON Hospital"]},
        "00280010": {"vr": "US", "Value": [17]},
    }))
    out = tmp_path / "out"

    run = dicomize(synthetic_svs, "-o", out, "--metadata", metadata, "--patient-id", "FLAG-1",
                   "--accession", "ACC42", "--series-description", "H&E scan",
                   "--container-id", "S-2026-1", "--quality", "80")

    assert run.returncode == 0, run.stderr
    files = [Path(line) for line in run.stdout.splitlines()]
    assert [f.name for f in files] == [f"level-{i}.dcm" for i in range(5)] + ["thumbnail.dcm"]
    assert "passthrough" in run.stderr and "/" in run.stderr  # summary and progress bar
    ds = pydicom.dcmread(files[0], stop_before_pixels=True)
    assert ds.PatientID == "FLAG-1"
    assert ds.PatientName == "Json^Patient"
    assert ds.StudyDescription == "Study from JSON"
    assert ds.InstitutionName == "JSON Hospital"
    assert ds.AccessionNumber == "ACC42"
    assert ds.SeriesDescription == "H&E scan"
    assert ds.ContainerIdentifier == "S-2026-1"
    assert ds.Rows == 240  # a computed attribute cannot be overridden from the file


def test_dicomize_forced_size_and_codec(tmp_path: Path, synthetic_svs: Path) -> None:
    run = dicomize(synthetic_svs, "-o", tmp_path / "out", "--tile-size", "512", "--codec",
                   "jpeg2000", "--no-associated", "-q")

    assert run.returncode == 0, run.stderr
    ds = pydicom.dcmread(tmp_path / "out" / "level-0.dcm", stop_before_pixels=True)
    assert (ds.Rows, ds.file_meta.TransferSyntaxUID) == (512, "1.2.840.10008.1.2.4.91")
    assert not (tmp_path / "out" / "thumbnail.dcm").exists()


def test_dicomize_bad_input_is_one_line_without_traceback(tmp_path: Path) -> None:
    truncated = tmp_path / "cut.svs"
    truncated.write_bytes(SVS.read_bytes()[:1_300_000])

    run = dicomize(truncated, "-o", tmp_path / "out")

    assert run.returncode == 2
    assert run.stderr.strip().splitlines() == [
        "wsi: cut.svs: file is truncated (1300000 bytes; a TIFF directory lies beyond the end)"
    ]
    assert not (tmp_path / "out").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cut.svs"]
