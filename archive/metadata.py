"""Stored WADO-RS metadata: the DICOM JSON model of a header, computed once at ingest.

Large binary values become BulkDataURI references with a placeholder prefix; the HTTP layer
swaps the placeholder for the instance URL the client called (so proxies work) with one
string replace, without parsing the JSON again (PS3.18 F.2.6 BulkDataURI).
"""

from __future__ import annotations

import json
from typing import Any

from pydicom.dataset import Dataset

BULK_PLACEHOLDER = "@@WSI-BULK@@/"
"""Prefix of every stored BulkDataURI; replaced by ``{instance URL}/bulkdata/`` when served."""

_BULK_VRS = {"OB", "OD", "OF", "OL", "OV", "OW", "UN"}
PIXEL_DATA_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_OFFSET_TABLE_TAGS = {0x7FE00001, 0x7FE00002}


def _to_json(ds: Dataset, threshold: int, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for elem in ds:
        tag = int(elem.tag)
        if elem.tag.group == 0x0002 or tag in PIXEL_DATA_TAGS:
            continue
        key = f"{tag:08X}"
        here = f"{path}{key}"
        if elem.VR == "SQ":
            items = [_to_json(item, threshold, f"{here}/{i}/") for i, item in enumerate(elem.value)]
            out[key] = {"vr": "SQ", "Value": items} if items else {"vr": "SQ"}
        elif tag in _OFFSET_TABLE_TAGS or (
            elem.VR in _BULK_VRS and elem.value is not None and len(elem.value) > threshold
        ):
            out[key] = {"vr": elem.VR, "BulkDataURI": BULK_PLACEHOLDER + here}
        else:
            out[key] = elem.to_json_dict(None, threshold + 1)
    return out


def metadata_json(
    ds: Dataset, transfer_syntax_uid: str, pixel_vr: str | None, threshold: int
) -> str:
    """The instance's DICOM JSON (file meta excluded) with bulk data as placeholders."""
    out = _to_json(ds, threshold, "")
    out["00083002"] = {"vr": "UI", "Value": [transfer_syntax_uid]}
    # The transfer syntax also goes in as (0002,0010): dicom-microscopy-viewer and wsidicom's
    # web client read it from the metadata to decide how to decode frames.
    out["00020010"] = {"vr": "UI", "Value": [transfer_syntax_uid]}
    if pixel_vr is not None:
        out["7FE00010"] = {"vr": pixel_vr, "BulkDataURI": BULK_PLACEHOLDER + "7FE00010"}
    return json.dumps(dict(sorted(out.items())), separators=(",", ":"))
