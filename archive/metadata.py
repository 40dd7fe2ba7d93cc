"""Stored WADO-RS metadata: the DICOM JSON model of a header, computed once at ingest.

Large binary values become BulkDataURI references with a placeholder prefix; the HTTP layer
swaps the placeholder for the instance URL the client called (so proxies work) with one
string replace, without parsing the JSON again (PS3.18 F.2.6 BulkDataURI).
"""

from __future__ import annotations

import json
from typing import Any

from pydicom.dataset import Dataset

from archive.dicom_json import encode

BULK_PLACEHOLDER = "@@WSI-BULK@@/"
"""Prefix of every stored BulkDataURI; replaced by ``{instance URL}/bulkdata/`` when served."""

PIXEL_DATA_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}
_OFFSET_TABLE_TAGS = {0x7FE00001, 0x7FE00002}


def metadata_model(
    ds: Dataset, transfer_syntax_uid: str, pixel_vr: str | None, threshold: int
) -> dict[str, Any]:
    """The instance's DICOM JSON (file meta excluded) with bulk data as placeholders."""

    def bulk(vr: str, path: str, length: int) -> dict[str, Any] | None:
        if length > threshold or int(path[-8:], 16) in _OFFSET_TABLE_TAGS:
            return {"vr": vr, "BulkDataURI": BULK_PLACEHOLDER + path}
        return None

    out = encode(ds, bulk, lambda tag: tag >> 16 == 0x0002 or tag in PIXEL_DATA_TAGS)
    out["00083002"] = {"vr": "UI", "Value": [transfer_syntax_uid]}
    # The transfer syntax also goes in as (0002,0010): dicom-microscopy-viewer and wsidicom's
    # web client read it from the metadata to decide how to decode frames.
    out["00020010"] = {"vr": "UI", "Value": [transfer_syntax_uid]}
    if pixel_vr is not None:
        out["7FE00010"] = {"vr": pixel_vr, "BulkDataURI": BULK_PLACEHOLDER + "7FE00010"}
    return dict(sorted(out.items()))


def to_text(model: dict[str, Any]) -> str:
    """The stored form of a metadata model."""
    return json.dumps(model, separators=(",", ":"))
