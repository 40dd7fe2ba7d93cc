"""The fast path answers exactly what the Litestar routes answer, and only when it may.

These drive the ASGI apps in-process (the fast path and the Litestar app it wraps) so that
each answer can be attributed to one of them; test_tiles.py and test_wado.py cover tiles and
frames through the real server.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from litestar.config.cors import CORSConfig

from archive.archive import Archive
from dicomweb.app import create_app
from dicomweb.blocking import Blocking
from dicomweb.fast_path import FastPath
from dicomweb.services import Services
from samples.wsi_level import write_wsi_pyramid
from samples.wsi_variants import write_variant_level
from tests.slide_support import frames_of
from tests.support import parse_multipart
from wsi.settings import Settings

ORIGIN = "https://viewer.example"


class Recorder:
    """Wraps the Litestar app to count the requests the fast path hands over."""

    def __init__(self) -> None:
        self.app: Any = None
        self.calls = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            self.calls += 1
        await self.app(scope, receive, send)


class Harness:
    """The wrapped app, what reached Litestar, and one event loop for all requests."""

    def __init__(self, fast: FastPath, recorder: Recorder, archive: Archive, series: str,
                 level0: Path, aperio: Path) -> None:
        self.fast, self.recorder, self.archive, self.series = fast, recorder, archive, series
        self.level0, self.aperio = level0, aperio
        self.loop = asyncio.new_event_loop()

    def get(self, path: str, query: str = "", **headers: str
            ) -> tuple[int, dict[str, str], bytes]:
        """One GET through the wrapper: status, headers (lower-case names), body."""
        return self.loop.run_until_complete(_get(self.fast, path, query, headers))


def _harness(folder: Path) -> Iterator[Harness]:
    settings = Settings(data_dir=folder / "data", cors_origins=(ORIGIN,))
    settings.data_dir.mkdir()
    archive = Archive(settings)
    (level0, *_) = write_wsi_pyramid(folder / "slide", 600, 400, 256, levels=2)
    (aperio,) = write_variant_level(folder / "aperio.dcm", width=512, height=256, tile=256,
                                    aperio_rgb=True, seed=3)
    for path in [level0, aperio]:
        archive.ingest_path(path)
    services = Services(settings, archive, Blocking(4))
    recorder = Recorder()  # counts what reaches Litestar
    recorder.app = app = create_app(services)
    fast = FastPath(recorder, services, app.cors_config or CORSConfig())
    series = str(pydicom.dcmread(level0, stop_before_pixels=True).SeriesInstanceUID)
    harness = Harness(fast, recorder, archive, series, level0, aperio)
    yield harness
    harness.loop.close()
    archive.close()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Harness]:
    """One archive for the module: the tests count requests relative to what went before."""
    yield from _harness(tmp_path_factory.mktemp("fast-path"))


@pytest.fixture()
def cold(tmp_path: Path) -> Iterator[Harness]:
    yield from _harness(tmp_path)


async def _get(app: Any, path: str, query: str, headers: dict[str, str]
               ) -> tuple[int, dict[str, str], bytes]:
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
        "scheme": "http", "path": path, "raw_path": path.encode(), "root_path": "",
        "query_string": query.encode(), "server": ("127.0.0.1", 8080),
        "client": ("127.0.0.1", 50000),
        "headers": [(b"host", b"127.0.0.1:8080"),
                    *[(k.replace("_", "-").lower().encode(), v.encode())
                      for k, v in headers.items()]],
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    names = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    return start["status"], names, body


def warm(h: Harness, series: str) -> None:
    """The first request of a slide goes through Litestar, which caches slide and frames."""
    h.get(f"/wsi/series/{series}/tiles/0/0/0")


def test_cached_tiles_are_answered_without_litestar_and_identically(stack: Harness) -> None:
    h, series = stack, stack.series
    fast, recorder = h.fast, h.recorder
    frames = frames_of(h.level0)
    warm(h, series)
    calls, served = recorder.calls, fast.served

    for col, row in [(0, 0), (1, 0), (2, 0), (0, 1), (2, 1)]:
        status, headers, body = h.get(f"/wsi/series/{series}/tiles/0/{col}/{row}",
                                      "v=5b6c9278507881ad" if col else "",
                                      accept="image/webp,image/*,*/*;q=0.8")
        assert status == 200
        assert body == frames[row * 3 + col]
        slow = h.get(f"/wsi/series/{series}/tiles/0/{col}/{row}", "format=jpeg")
        assert slow[2] == body
        for name in ("etag", "cache-control", "content-type", "content-length"):
            assert headers[name] == slow[1][name], name
        assert headers["vary"] == "Accept"
    assert recorder.calls == calls + 5  # only the ?format= requests reached Litestar
    assert fast.served == served + 5


def test_revalidation_and_cors_match_litestar(stack: Harness) -> None:
    h, series, recorder = stack, stack.series, stack.recorder
    warm(h, series)
    path = f"/wsi/series/{series}/tiles/0/1/1"
    etag = h.get(path)[1]["etag"]
    calls = recorder.calls

    status, headers, body = h.get(path, if_none_match=etag)
    assert (status, body, headers["etag"]) == (304, b"", etag)

    fast_cors = h.get(path, origin=ORIGIN)[1]
    other = h.get(path, origin="https://elsewhere.example")[1]
    assert recorder.calls == calls
    slow_cors = h.get(path, "format=jpeg", origin=ORIGIN)[1]
    for name in ("access-control-allow-origin", "access-control-expose-headers",
                 "access-control-allow-methods", "access-control-allow-headers"):
        assert fast_cors[name] == slow_cors[name], name
    assert fast_cors["access-control-allow-origin"] == ORIGIN
    assert "access-control-allow-origin" not in other
    assert fast_cors["vary"] == "Accept, Origin"


def test_aperio_rgb_frames_get_their_marker_on_the_fast_path(stack: Harness) -> None:
    h, recorder = stack, stack.recorder
    series = str(pydicom.dcmread(h.aperio, stop_before_pixels=True)
                 .SeriesInstanceUID)
    warm(h, series)
    calls = recorder.calls

    body = h.get(f"/wsi/series/{series}/tiles/0/1/0")[2]

    assert recorder.calls == calls
    assert body == h.get(f"/wsi/series/{series}/tiles/0/1/0", "format=jpeg")[2]
    assert body[2:8] == b"\xff\xee\x00\x0eAd"


@pytest.mark.parametrize(("path", "query", "headers"), [
    ("/wsi/series/{s}/tiles/0/9/9", "", {}),  # outside the grid: Litestar's 404
    ("/wsi/series/{s}/tiles/7/0/0", "", {}),  # no such level
    ("/wsi/series/{s}/tiles/0/0/0", "", {"accept": "image/png"}),
    ("/wsi/series/{s}/tiles/0/0/0", "z=0", {}),
    ("/wsi/series/{s}/tiles/0/0/0", "v=1&path=1", {}),
    ("/wsi/series/1.2.3.4/tiles/0/0/0", "", {}),  # unknown series
])
def test_everything_else_goes_to_litestar(stack: Harness, path: str, query: str,
                                          headers: dict[str, str]) -> None:
    h, series, fast, recorder = stack, stack.series, stack.fast, stack.recorder
    warm(h, series)
    calls, served = recorder.calls, fast.served

    status, _, _ = h.get(path.format(s=series), query, **headers)

    assert recorder.calls == calls + 1
    assert fast.served == served
    assert status in (200, 404)


def test_a_cold_slide_goes_to_litestar_first(cold: Harness) -> None:
    h = cold

    h.get(f"/wsi/series/{h.series}/tiles/0/0/0")
    h.get(f"/wsi/series/{h.series}/tiles/0/0/0")

    assert (h.recorder.calls, h.fast.served) == (1, 1)


OCTET_ANY = 'multipart/related; type="application/octet-stream"; transfer-syntax=*'


def _instance_url(level0: Path) -> str:
    ds = pydicom.dcmread(level0, stop_before_pixels=True)
    return (f"/dicom-web/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}"
            f"/instances/{ds.SOPInstanceUID}")


@pytest.mark.parametrize("accept", [OCTET_ANY, 'multipart/related; type="image/jpeg"',
                                    "image/jpeg", "*/*"])
def test_single_frames_are_answered_without_litestar_and_identically(
        stack: Harness, accept: str) -> None:
    h = stack
    url = _instance_url(h.level0) + "/frames/"
    frames = frames_of(h.level0)
    h.get(url + "1", accept=accept)  # Litestar caches the record and the frame table
    calls = h.recorder.calls

    fast = h.get(url + "4", accept=accept)
    slow = h.get(url + "4", "via=litestar", accept=accept)

    assert h.recorder.calls == calls + 1  # only the request with a query reached Litestar
    assert fast[0] == slow[0] == 200
    for name in ("etag", "cache-control"):
        assert fast[1][name] == slow[1][name], name
    if fast[1]["content-type"].startswith("multipart/related"):
        fast_parts = parse_multipart(fast[1]["content-type"], fast[2])
        slow_parts = parse_multipart(slow[1]["content-type"], slow[2])
        assert fast_parts == slow_parts
        assert [body for _, body in fast_parts] == [frames[3]]
        strip = lambda value: re.sub(r"boundary=\S+", "", value)  # noqa: E731
        assert strip(fast[1]["content-type"]) == strip(slow[1]["content-type"])
    else:
        assert fast[1]["content-type"] == slow[1]["content-type"]
        assert fast[2] == slow[2] == frames[3]


@pytest.mark.parametrize(("suffix", "accept"), [
    ("/frames/4", "application/octet-stream"),  # decoded pixels: Litestar
    ("/frames/4", 'multipart/related; type="image/jp2"'),  # a 406
    ("/frames/99", OCTET_ANY),  # outside the instance: a 404
    ("/frames/1,2", OCTET_ANY),  # several frames
])
def test_other_frame_requests_go_to_litestar(stack: Harness, suffix: str, accept: str) -> None:
    h = stack
    url = _instance_url(h.level0)
    h.get(url + "/frames/1", accept=OCTET_ANY)
    calls, served = h.recorder.calls, h.fast.served

    status = h.get(url + suffix, accept=accept)[0]

    assert (h.recorder.calls, h.fast.served) == (calls + 1, served)
    assert status in (200, 404, 406)


def _open_paths() -> set[str]:
    fds = Path("/proc/self/fd")
    paths = set()
    for fd in fds.iterdir():
        try:
            paths.add(os.readlink(fd).removesuffix(" (deleted)"))
        except OSError:
            continue
    return paths


def test_deleted_files_are_let_go(cold: Harness) -> None:
    h = cold
    aperio = pydicom.dcmread(h.aperio, stop_before_pixels=True)
    aperio_url = f"/wsi/series/{aperio.SeriesInstanceUID}/tiles/0/0/0"
    h.get(aperio_url)
    h.get(aperio_url)  # served by the fast path, which keeps the file open
    record = h.archive.instance(aperio.StudyInstanceUID, aperio.SeriesInstanceUID,
                                aperio.SOPInstanceUID)
    assert str(record.path) in _open_paths()

    h.archive.delete(aperio.StudyInstanceUID)
    warm(h, h.series)
    h.get(f"/wsi/series/{h.series}/tiles/0/1/0")  # the next fast-path read closes old files

    assert str(record.path) not in _open_paths()
    assert h.get(aperio_url)[0] == 404
