"""``--upload``: the converted series is streamed to a real archive over STOW-RS."""

from __future__ import annotations

from pathlib import Path

import httpx

from dicomizer.convert import convert
from dicomizer.options import ConversionOptions
from tests.conftest import Server
from wsi.dicom.stow import stow_files


def test_converted_series_is_stored_over_stow(tmp_path: Path, synthetic_svs: Path,
                                              server: Server) -> None:
    result = convert(synthetic_svs, tmp_path / "out", ConversionOptions())

    sent = stow_files(server.dicomweb, result.files)

    assert sent == len(result.files)
    found = httpx.get(f"{server.dicomweb}/studies/{result.study_uid}/series/"
                      f"{result.series_uid}/instances", timeout=30).json()
    assert len(found) == len(result.files)
