"""The fast DICOM JSON encoder agrees with pydicom's on every bundled test file."""

from __future__ import annotations

from typing import Any

import pydicom
import pytest
from pydicom.data import get_testdata_files

from archive.dicom_json import encode


def _normal(value: Any) -> Any:
    """Differences that are not disagreements: number types, empty items, padding."""
    if isinstance(value, dict):
        if value.get("vr") == "SQ" and value.get("Value") == []:
            return {"vr": "SQ"}
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        return value.strip() or None  # PS3.18 F.2.5: an empty value is null
    return value


def _readable() -> list[str]:
    paths = []
    for path in sorted(get_testdata_files("*.dcm")):
        try:
            pydicom.dcmread(path, stop_before_pixels=True).to_json_dict(2**62, None)
        except Exception:  # noqa: BLE001 - files pydicom itself cannot encode are skipped
            continue
        paths.append(path)
    return paths


@pytest.mark.parametrize("path", _readable(), ids=lambda p: p.rsplit("/", 1)[-1])
def test_same_model_as_pydicom(path: str) -> None:
    ours = encode(pydicom.dcmread(path, stop_before_pixels=True), lambda *_: None,
                  lambda tag: tag >> 16 == 2 or tag == 0x7FE00010)
    theirs = pydicom.dcmread(path, stop_before_pixels=True).to_json_dict(2**62, None)
    theirs = {k: v for k, v in theirs.items() if not k.startswith("0002") and k != "7FE00010"}

    assert _normal(ours) == _normal(theirs)


def test_bulk_values_become_uris_with_their_path() -> None:
    ds = pydicom.Dataset()
    item = pydicom.Dataset()
    item.ICCProfile = b"\x01" * 5000
    ds.OpticalPathSequence = [item]
    ds.PatientName = "Doe^Jane=Ideo"
    ds.Rows = 512

    model = encode(ds, lambda vr, path, n: {"vr": vr, "BulkDataURI": path} if n > 100 else None,
                   lambda tag: False)

    assert model["00480105"]["Value"][0]["00282000"] == {
        "vr": "OB", "BulkDataURI": "00480105/0/00282000"}
    assert model["00100010"]["Value"] == [{"Alphabetic": "Doe^Jane", "Ideographic": "Ideo"}]
    assert model["00280010"] == {"vr": "US", "Value": [512]}
