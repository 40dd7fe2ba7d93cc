"""HEAD on every GET route gives the GET response's status and headers and no body."""

from __future__ import annotations

from pathlib import Path

import httpx
import pydicom
import pytest
from pydicom.uid import generate_uid

from samples.wsi_level import write_wsi_pyramid
from tests.conftest import Server
from tests.slide_support import store


@pytest.fixture(scope="module")
def slide(server: Server, tmp_path_factory: pytest.TempPathFactory) -> pydicom.Dataset:
    paths = write_wsi_pyramid(tmp_path_factory.mktemp("head"), 600, 400, 256, levels=2,
                              study_uid=generate_uid())
    with httpx.Client(base_url=server.dicomweb, timeout=60) as client:
        store(client, paths)
    return pydicom.dcmread(paths[0], stop_before_pixels=True)


def _urls(ds: pydicom.Dataset) -> list[str]:
    instance = (f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
                f"/instances/{ds.SOPInstanceUID}")
    tiles = f"/wsi/series/{ds.SeriesInstanceUID}"
    return [
        "/healthz",
        f"/dicom-web/studies?StudyInstanceUID={ds.StudyInstanceUID}",
        instance,
        instance + "/metadata",
        instance + "/frames/2",
        tiles,
        tiles + "/tiles/0/1/1",
        tiles + "/tiles/0/1/1",  # again: now from the fast path
        tiles + "/tiles/0/9/9",  # outside the grid: 404
        "/viewer/",
    ]


@pytest.mark.parametrize("index", range(10))
def test_head_is_get_without_a_body(server: Server, slide: pydicom.Dataset, index: int) -> None:
    url = _urls(slide)[index]
    with httpx.Client(base_url=server.url, timeout=60) as client:
        got = client.get(url)
        head = client.head(url)

    assert head.status_code == got.status_code
    assert head.content == b""
    for name in ("content-type", "content-length", "etag", "cache-control"):
        if name == "content-type" and "multipart" in got.headers.get(name, ""):
            assert head.headers[name].split("boundary=")[0] == got.headers[name].split(
                "boundary=")[0]
        else:
            assert head.headers.get(name) == got.headers.get(name), name


def test_head_of_a_study_does_not_stream_it(server: Server, slide: pydicom.Dataset,
                                            tmp_path: Path) -> None:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        head = client.head(f"/dicom-web/studies/{slide.StudyInstanceUID}")
        after = client.get("/healthz")

    assert head.status_code == 200
    assert head.headers["content-type"].startswith('multipart/related; type="application/dicom"')
    assert after.status_code == 200  # the connection and the server are fine afterwards
