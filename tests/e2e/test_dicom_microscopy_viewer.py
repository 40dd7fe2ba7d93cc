"""dicom-microscopy-viewer (the library behind Slim) against this server's /dicom-web.

A second, independent DICOMweb client in the same headless Chromium as our own viewer
(``viewer/static/dmv.html``): it reads the series metadata, builds its pyramid from it, fetches
frames with ``multipart/related; type="application/octet-stream"; transfer-syntax=*``, decodes
them itself (WebAssembly codecs in a module web worker) and draws them with OpenLayers' WebGL
tile layer, for which Chromium gets software GL (SwiftShader).
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from samples.wsi_level import write_wsi_pyramid
from samples.wsi_variants import TRANSFER_SYNTAXES, write_variant_pyramid
from tests.conftest import REPO, Server, start_server, stop_server
from tests.e2e.test_viewer import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, VIEWPORT, _tissue_fraction
from tests.slide_support import store

sync_api = pytest.importorskip("playwright.sync_api")

MODULES = REPO / "viewer" / "node_modules"
DMV = MODULES / "dicom-microscopy-viewer" / "dist"
DWC = MODULES / "dicomweb-client" / "build"
GL_ARGS = [arg for arg in CHROMIUM_ARGS if arg != "--disable-gpu"] + [
    "--use-gl=angle", "--use-angle=swiftshader", "--enable-unsafe-swiftshader",
]
RENDERED = """() => {
  const s = window.dmvState;
  return Boolean(s && (s.error || (s.ready && s.framesLoaded > 0 && s.renders > 0
                 && !dmvViewer.getMap().getLoadingOrNotReady())));
}"""
# Where the slide's extent is on screen: [left, top, right, bottom] in CSS pixels.
IMAGE_BOX = """() => {
  const map = dmvViewer.getMap();
  const [x0, y0, x1, y1] = map.getView().getProjection().getExtent();
  const a = map.getPixelFromCoordinate([x0, y1]), b = map.getPixelFromCoordinate([x1, y0]);
  const box = map.getTargetElement().getBoundingClientRect();
  return [box.left + Math.min(a[0], b[0]), box.top + Math.min(a[1], b[1]),
          box.left + Math.max(a[0], b[0]), box.top + Math.max(a[1], b[1])];
}"""


@dataclass
class Shown:
    """What the page did: its state, the frame responses and the slide's area on screen."""

    state: dict[str, Any]
    frames: list[tuple[int, str, str, str]] = field(default_factory=list)
    """(status, URL, request Accept, response Content-Type) of each frame request."""
    bulkdata: list[tuple[int, str]] = field(default_factory=list)
    image: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 3), np.uint8))


@pytest.fixture(scope="module")
def gl_browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (make system-deps)")
    if not (DMV.is_dir() and DWC.is_dir()):
        pytest.skip("dicom-microscopy-viewer is not installed (make viewer/node_modules)")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=GL_ARGS)
        yield chromium
        chromium.close()


def _store_pyramid(server: Server, folder: Path, transfer_syntax: str = "jpeg"
                   ) -> dict[str, str]:
    study, series = generate_uid(), generate_uid()
    patient = f"DMV-{uuid.uuid4().hex[:8]}"
    if transfer_syntax == "jpeg":
        paths = write_wsi_pyramid(folder, 4096, 3072, 256, study_uid=study, series_uid=series,
                                  patient_id=patient, patient_name="Dmv^Test", seed=11)
    else:
        paths = write_variant_pyramid(folder, 2048, 1536, 256, study_uid=study,
                                      series_uid=series, patient_id=patient, seed=11,
                                      transfer_syntax=TRANSFER_SYNTAXES[transfer_syntax])
    with httpx.Client(base_url=server.dicomweb, timeout=120) as client:
        store(client, paths)
    return {"study": study, "series": series}


@pytest.fixture(scope="module")
def dmv_slide(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A 4096x3072 JPEG pyramid (5 levels), as the viewer tests store."""
    return _store_pyramid(server, tmp_path_factory.mktemp("dmv-slide"))


def _show(browser: Any, page_url: str, slide: dict[str, str], name: str,
          api: str | None = None) -> Shown:
    """Open dmv.html on the slide, wait until its tiles are drawn, screenshot it."""
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    console: list[str] = []
    shown = Shown(state={})
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda msg: console.append(f"{msg.type}: {msg.text}")
            if msg.type in ("error", "warning") else None)

    def on_response(response: Any) -> None:
        if "/frames/" in response.url:
            shown.frames.append((response.status, response.url,
                                 response.request.headers.get("accept", ""),
                                 response.headers.get("content-type", "")))
        elif "/bulkdata/" in response.url:
            shown.bulkdata.append((response.status, response.url))

    page.on("response", on_response)
    query = f"study={slide['study']}&series={slide['series']}" + (f"&api={api}" if api else "")
    try:
        page.goto(f"{page_url}/viewer/dmv.html?{query}")
        page.wait_for_function(RENDERED, timeout=60_000)
        page.wait_for_timeout(500)  # a last frame on the WebGL canvas
        shown.state = page.evaluate("window.dmvState")
        left, top, right, bottom = (round(v) for v in page.evaluate(IMAGE_BOX))
        path = ARTIFACTS / f"{name}.png"
        page.screenshot(path=str(path))
    finally:
        context.close()
    assert shown.state["error"] is None, (shown.state, console)
    assert not errors, (errors, console)
    assert not console, console
    screen = np.asarray(Image.open(path).convert("RGB"))
    shown.image = screen[max(top, 0):bottom, max(left, 0):right]
    return shown


def _assert_frames_fetched(shown: Shown, stored_syntax: str) -> None:
    assert shown.frames
    assert all(status == 200 for status, *_ in shown.frames), shown.frames
    assert shown.state["frameErrors"] == 0 and shown.state["framesLoaded"] >= len(shown.frames)
    for _, _, accept, content_type in shown.frames:
        assert accept == 'multipart/related; type="application/octet-stream"; transfer-syntax=*'
        assert content_type.startswith("multipart/related")
        assert f"transfer-syntax={stored_syntax}" in content_type


def _whole_slide(server: Server, slide: dict[str, str], size: tuple[int, int]) -> np.ndarray:
    """The whole slide at ``size``, as our IIIF service renders it."""
    url = f"{server.url}/iiif/3/{slide['series']}/full/{size[0]},{size[1]}/0/default.png"
    response = httpx.get(url, timeout=60)
    assert response.status_code == 200, response.text
    return np.asarray(Image.open(io.BytesIO(response.content)).convert("RGB"))


def _assert_shows_the_slide(server: Server, slide: dict[str, str], shown: Shown) -> None:
    """The whole slide is on screen, tissue-coloured, and looks like our own rendering of it.

    The library draws in the slide coordinate system: with the samples' ImageOrientationSlide
    (0, -1, 0, -1, 0, 0) the total pixel matrix appears turned by 180 degrees (OpenSeadragon
    and IIIF show it as stored), so the reference is compared rotated.
    """
    image = shown.image
    assert image.shape[0] > 500 and image.shape[1] > 600, image.shape
    assert _tissue_fraction(image) > 0.1, _tissue_fraction(image)
    size = (image.shape[1] // 4, image.shape[0] // 4)
    ours = Image.fromarray(image).resize(size, Image.Resampling.BOX)
    reference = Image.fromarray(_whole_slide(server, slide, size)).resize(
        size, Image.Resampling.BOX)
    a = np.asarray(ours, dtype=float).mean(axis=2)
    b = np.asarray(reference, dtype=float).mean(axis=2)[::-1, ::-1]
    correlation = float(np.corrcoef(a.ravel(), b.ravel())[0, 1])
    assert correlation > 0.9, correlation


def test_draws_a_stored_jpeg_slide(
    server: Server, gl_browser: Any, dmv_slide: dict[str, str]
) -> None:
    shown = _show(gl_browser, server.url, dmv_slide, "dmv-slide")
    _assert_frames_fetched(shown, "1.2.840.10008.1.2.4.50")
    _assert_shows_the_slide(server, dmv_slide, shown)
    assert not shown.bulkdata  # the small sRGB ICC profile is inline in the metadata


@pytest.mark.parametrize("transfer_syntax", ["jpeg2000", "native"])
def test_draws_other_transfer_syntaxes(
    server: Server, gl_browser: Any, tmp_path: Path, transfer_syntax: str
) -> None:
    slide = _store_pyramid(server, tmp_path, transfer_syntax)
    shown = _show(gl_browser, server.url, slide, f"dmv-{transfer_syntax}")
    _assert_frames_fetched(shown, TRANSFER_SYNTAXES[transfer_syntax])
    _assert_shows_the_slide(server, slide, shown)


def test_cross_origin_with_the_icc_profile_as_bulk_data(
    gl_browser: Any, tmp_path: Path
) -> None:
    """Page on 127.0.0.1, DICOMweb on localhost (CORS preflights: the Accept has quotes);
    a bulk data threshold below the ICC profile's size makes the library fetch it."""
    other = start_server(tmp_path / "data", env={"WSI_BULKDATA_THRESHOLD": "256"})
    try:
        slide = _store_pyramid(other, tmp_path / "slide")
        api = f"http://localhost:{other.port}"
        shown = _show(gl_browser, other.url, slide, "dmv-cross-origin", api=api)
        _assert_frames_fetched(shown, "1.2.840.10008.1.2.4.50")
        assert all(url.startswith(api) for _, url, _, _ in shown.frames)
        assert shown.bulkdata and all(status == 200 for status, _ in shown.bulkdata)
        assert all(url.endswith("/bulkdata/00480105/0/00282000") for _, url in shown.bulkdata)
        _assert_shows_the_slide(other, slide, shown)
    finally:
        stop_server(other)


def test_vendored_bundles_are_served_with_script_and_wasm_types(server: Server) -> None:
    """The module worker needs a JavaScript type and streaming WebAssembly compilation
    ``application/wasm``; the bundles come from ``node_modules`` untouched."""
    if not DMV.is_dir():
        pytest.skip("dicom-microscopy-viewer is not installed (make viewer/node_modules)")
    vendor = f"{server.url}/viewer/vendor"
    expected = {
        "dicom-microscopy-viewer/dicomMicroscopyViewer.bundle.min.js": "text/javascript",
        "dicom-microscopy-viewer/dynamic-import/dataLoader.worker.min.js": "text/javascript",
        "dicom-microscopy-viewer/dynamic-import/libjpegturbowasm_decode.wasm": "application/wasm",
        "dicomweb-client/dicomweb-client.js": "text/javascript",
    }
    builds = {"dicom-microscopy-viewer": DMV, "dicomweb-client": DWC}
    for path, media_type in expected.items():
        package, name = path.split("/", 1)
        response = httpx.get(f"{vendor}/{path}", timeout=30)
        assert response.status_code == 200, path
        assert response.headers["content-type"].startswith(media_type), (path, response.headers)
        assert response.content == (builds[package] / name).read_bytes()
