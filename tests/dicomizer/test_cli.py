"""``wsi dicomize`` end to end: flags, metadata file, progress, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pydicom
from pydicom.uid import generate_uid

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


def test_dicomize_several_slides_each_into_a_series_and_folder_of_its_own(
        tmp_path: Path, synthetic_svs: Path) -> None:
    same_name = tmp_path / "elsewhere" / synthetic_svs.name
    same_name.parent.mkdir()
    same_name.write_bytes(synthetic_svs.read_bytes())
    empty = tmp_path / "empty.svs"
    empty.touch()
    study = generate_uid()
    out = tmp_path / "out"

    run = dicomize(synthetic_svs, empty, same_name, "-o", out, "--study-uid", study,
                   "--patient-id", "BATCH-1", "--levels", "source", "-q")

    assert run.returncode == 2  # one slide failed; the others are complete
    errors = [line for line in run.stderr.splitlines() if line.startswith("wsi: ")]
    assert len(errors) == 1 and errors[0].startswith("wsi: empty.svs: ")
    assert run.stderr.splitlines()[-1] == "2 of 3 slides converted"
    folders = sorted(p.name for p in out.iterdir())
    assert folders == [synthetic_svs.stem, f"{synthetic_svs.stem}-2"]
    listed = {Path(line) for line in run.stdout.splitlines()}
    assert listed == {p for folder in folders for p in (out / folder).iterdir()}
    bases = [pydicom.dcmread(out / folder / "level-0.dcm", stop_before_pixels=True)
             for folder in folders]
    assert {ds.StudyInstanceUID for ds in bases} == {study}
    assert {ds.PatientID for ds in bases} == {"BATCH-1"}
    assert len({ds.SeriesInstanceUID for ds in bases}) == 2
    assert len({ds.FrameOfReferenceUID for ds in bases}) == 2


def test_dicomize_several_slides_refuses_values_that_name_one_slide(
        tmp_path: Path, synthetic_svs: Path) -> None:
    metadata = tmp_path / "meta.json"
    metadata.write_text(json.dumps({"00400512": {"vr": "LO", "Value": ["SLIDE-7"]}}))

    from_file = dicomize(synthetic_svs, synthetic_svs, "-o", tmp_path / "a",
                         "--metadata", metadata)
    from_flag = dicomize(synthetic_svs, synthetic_svs, "-o", tmp_path / "b",
                         "--series-uid", generate_uid())
    specimen = tmp_path / "specimen.json"
    specimen.write_text(json.dumps({"00400560": {"vr": "SQ", "Value": [
        {"00400551": {"vr": "LO", "Value": ["SPEC-1"]},
         "00400554": {"vr": "UI", "Value": [generate_uid()]}}]}}))
    from_sequence = dicomize(synthetic_svs, synthetic_svs, "-o", tmp_path / "c",
                             "--metadata", specimen)

    assert from_file.returncode == from_flag.returncode == 2
    assert from_file.stderr.strip() == (
        "wsi: Container Identifier (--container-id) names one slide; "
        "give it when converting one slide at a time")
    assert "Series Instance UID (--series-uid) names one slide" in from_flag.stderr
    assert from_sequence.returncode == 2
    assert "Specimen Description Sequence (--metadata) names one slide" in from_sequence.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json", "specimen.json"]
