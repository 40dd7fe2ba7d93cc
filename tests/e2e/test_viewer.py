"""The browser viewer, driven in Debian's Chromium through Playwright against the real server.

Screenshots go to ``test-artifacts/`` (git-ignored) for a person to look at.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from samples.wsi_level import write_wsi_pyramid
from samples.wsi_variants import write_associated, write_variant_pyramid
from tests.conftest import REPO, SHARED_SLIDES, Server
from tests.slide_support import store

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
OSD = REPO / "viewer" / "node_modules" / "openseadragon" / "build" / "openseadragon"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
VIEWPORT = {"width": 1400, "height": 900}
FULLY_LOADED = """() => {
  const item = window.wsi && wsi.ready && wsi.viewer.world.getItemAt(0);
  const vp = item && wsi.viewer.viewport;
  return Boolean(item && item.getFullyLoaded() && !wsi.viewer.world.needsDraw()
                 && vp.getZoom(true) === vp.getZoom(false));
}"""

sync_api = pytest.importorskip("playwright.sync_api")


def _missing() -> str | None:
    if not Path(CHROMIUM).exists():
        return "chromium is not installed (make system-deps)"
    if not OSD.is_dir():
        return "OpenSeadragon is not installed (make viewer/node_modules)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, errors


@pytest.fixture(scope="module")
def slide(server: Server, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A 4096x3072 JPEG pyramid (5 levels) with a label, under a patient ID of its own."""
    folder = tmp_path_factory.mktemp("viewer-slide")
    patient = f"E2E-{uuid.uuid4().hex[:8]}"
    study, series = generate_uid(), generate_uid()
    paths = write_wsi_pyramid(folder, 4096, 3072, 256, study_uid=study, series_uid=series,
                              patient_id=patient, patient_name="Viewer^Test", seed=11)
    label = write_associated(folder / "label.dcm", "label", width=400, height=300,
                             study_uid=study, series_uid=series)
    with httpx.Client(base_url=server.dicomweb, timeout=120) as client:
        store(client, [*paths, label])
    return {"patient": patient, "study": study, "series": series}


def _wait_loaded(page: Any, timeout: float = 30_000) -> None:
    page.wait_for_function(FULLY_LOADED, timeout=timeout)
    page.wait_for_timeout(300)  # one more animation frame for the canvas


def _osd_pixels(page: Any, name: str) -> np.ndarray:
    """A screenshot of the viewer area, saved as an artifact, as an RGB array."""
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    box = page.locator("#osd").bounding_box()
    image = np.asarray(Image.open(io.BytesIO(path.read_bytes())).convert("RGB"))
    x, y = int(box["x"]), int(box["y"])
    return image[y : y + int(box["height"]), x : x + int(box["width"])]


def _tissue_fraction(pixels: np.ndarray) -> float:
    """Share of pixels that are stained tissue (pink/purple), not white or grey background."""
    r, g, b = (pixels[..., i].astype(int) for i in range(3))
    return float(((r - g > 25) & (b - g > 5)).mean())


def test_browse_page_lists_the_slide_with_thumbnail_and_label(
    server: Server, page: Any, slide: dict[str, str]
) -> None:
    page.goto(f"{server.url}/")
    page.fill("input[name=PatientID]", slide["patient"])
    page.click("button[type=submit]")
    card = page.locator(f"a.card[data-series='{slide['series']}']")
    card.wait_for(timeout=15_000)
    page.wait_for_function(
        """(uid) => [...document.querySelectorAll(`a.card[data-series='${uid}'] img`)]
                   .filter((img) => img.complete && img.naturalWidth > 0).length === 2""",
        arg=slide["series"], timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / "browse.png"))

    assert page.url.startswith(f"{server.url}/viewer/")
    assert page.locator("section.study").count() == 1
    assert "Viewer, Test" in page.locator("section.study .patient").inner_text()
    sizes = card.locator("img").evaluate_all("(imgs) => imgs.map((i) => i.naturalWidth)")
    assert sizes == [512, 400]  # thumbnail (fit in 512) and label


def test_slide_page_draws_tiles_zooms_and_restores_the_view(
    server: Server, page: Any, slide: dict[str, str]
) -> None:
    tiles: list[str] = []
    page.on("requestfinished", lambda request: tiles.append(request.url)
            if "/tiles/" in request.url else None)
    page.goto(f"{server.url}/viewer/?api={server.url}")
    page.fill("input[name=PatientID]", slide["patient"])
    page.click("button[type=submit]")
    page.click(f"a.card[data-series='{slide['series']}']")
    page.wait_for_url(re.compile(r".*/slide\.html\?.*series=.*"))
    _wait_loaded(page)

    overview = _osd_pixels(page, "slide-overview")
    assert _tissue_fraction(overview) > 0.2
    levels_seen = {int(u.split("/tiles/")[1].split("/")[0]) for u in tiles}
    assert levels_seen and max(levels_seen) >= 2  # the home view reads coarse levels
    assert re.fullmatch(r"\d+(\.\d+)? (µm|mm)", page.inner_text(".scalebar-label"))
    assert re.fullmatch(r"\d+\.\d×", page.inner_text("#magnification"))
    assert page.locator("#panel figure.label img").evaluate("(img) => img.naturalWidth") == 400
    assert "Viewer, Test" in page.inner_text("#metadata")

    tiles.clear()
    page.evaluate("""() => {
      const vp = wsi.viewer.viewport;
      vp.zoomTo(vp.imageToViewportZoom(1.0), null, true);
      vp.panTo(vp.imageToViewportCoordinates(2048, 1536), true);
    }""")
    _wait_loaded(page)
    zoomed = _osd_pixels(page, "slide-zoomed")

    assert any("/tiles/0/" in u for u in tiles)
    assert page.evaluate("wsi.drawn[0]") > 0
    assert _tissue_fraction(zoomed) > 0.1
    assert page.inner_text("#magnification") == "40.0×"
    assert page.inner_text(".scalebar-label") in ("20 µm", "50 µm")
    page.wait_for_function("location.hash.includes('zoom=')")
    link = page.url

    page.goto("about:blank")
    page.goto(link)
    _wait_loaded(page)
    zoom = page.evaluate(
        "wsi.viewer.viewport.viewportToImageZoom(wsi.viewer.viewport.getZoom(true))")
    center = page.evaluate("""() => {
      const vp = wsi.viewer.viewport;
      const c = vp.viewportToImageCoordinates(vp.getCenter(true));
      return [c.x, c.y];
    }""")
    assert zoom == pytest.approx(1.0, rel=0.01)
    assert center == pytest.approx([2048, 1536], abs=2)


def test_view_buttons_zoom_and_fit_without_loading_button_images(
    server: Server, page: Any, slide: dict[str, str]
) -> None:
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(f"{server.url}/viewer/slide.html?series={slide['series']}")
    _wait_loaded(page)
    zoom = "wsi.viewer.viewport.getZoom(true)"
    home = page.evaluate(zoom)

    page.click("#zoom-in")
    _wait_loaded(page)
    zoomed_in = page.evaluate(zoom)
    page.click("#zoom-out")
    page.click("#zoom-out")
    _wait_loaded(page)
    zoomed_out = page.evaluate(zoom)
    page.click("#zoom-in")
    page.click("#zoom-in")
    page.click("#home")
    _wait_loaded(page)

    assert zoomed_in == pytest.approx(home * 1.5, rel=0.01)
    assert zoomed_out < zoomed_in
    assert page.evaluate(zoom) == pytest.approx(home, rel=0.01)
    assert not [u for u in requested if "/openseadragon/images/" in u]


def test_slide_page_from_the_iiif_service(server: Server, page: Any, slide: dict[str, str]
                                          ) -> None:
    requests: list[tuple[str, int]] = []
    page.on("response", lambda r: requests.append((r.url, r.status))
            if "/iiif/3/" in r.url else None)

    page.goto(f"{server.url}/viewer/slide.html?series={slide['series']}&source=iiif")
    _wait_loaded(page)
    pixels = _osd_pixels(page, "slide-iiif")

    images = [(u, s) for u, s in requests if u.endswith(".jpg")]
    assert images and all(status == 200 for _, status in images)
    assert any(u.endswith("/info.json") for u, _ in requests)
    assert _tissue_fraction(pixels) > 0.2


def test_focal_plane_and_optical_path_switch(
    server: Server, page: Any, tmp_path: Path
) -> None:
    paths = write_variant_pyramid(
        tmp_path, 1024, 768, 256, organization="TILED_SPARSE", omit={(1, 1)},
        focal_planes=(0.0, 2.0), optical_paths=("1", "2"), seed=4,
    )
    with httpx.Client(base_url=server.dicomweb, timeout=60) as client:
        store(client, paths)
    series = pydicom.dcmread(paths[0], stop_before_pixels=True).SeriesInstanceUID
    tiles: list[str] = []
    page.on("requestfinished", lambda r: tiles.append(r.url) if "/tiles/" in r.url else None)

    page.goto(f"{server.url}/viewer/slide.html?series={series}")
    _wait_loaded(page)
    before = _osd_pixels(page, "slide-sparse-plane0")
    page.select_option("#plane", "1")
    page.select_option("#path", "2")
    page.wait_for_function("location.hash.includes('z=1') && location.hash.includes('path=2')")
    page.wait_for_timeout(500)
    _wait_loaded(page)
    after = _osd_pixels(page, "slide-sparse-plane1-path2")

    assert page.is_visible("#plane-control") and page.is_visible("#path-control")
    assert any("z=1" in u and "path=2" in u for u in tiles)
    assert np.abs(before.astype(int) - after.astype(int)).mean() > 5


def test_upload_page_converts_a_real_slide_and_opens_it(server: Server, page: Any) -> None:
    page.goto(f"{server.url}/viewer/upload.html")
    page.set_input_files("#file", str(SHARED_SLIDES / "aperio" / "CMU-1-Small-Region.svs"))
    page.wait_for_url(re.compile(r".*/slide\.html\?.*series="), timeout=120_000)
    _wait_loaded(page)

    pixels = _osd_pixels(page, "upload-opened-slide")
    assert _tissue_fraction(pixels) > 0.02


def test_upload_page_reports_a_failed_conversion(server: Server, page: Any, tmp_path: Path
                                                 ) -> None:
    sample = tmp_path / "slide.svs"
    sample.write_bytes(b"not really a slide" * 1000)

    page.goto(f"{server.url}/viewer/upload.html")
    page.set_input_files("#file", str(sample))
    failed = page.locator(".job.failed .job-state")
    failed.wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "upload-failed.png"))

    assert failed.inner_text().startswith("Conversion failed:")


def test_root_redirects_to_the_browser(server: Server) -> None:
    response = httpx.get(f"{server.url}/", follow_redirects=False)
    bare = httpx.get(f"{server.url}/viewer?api=x", follow_redirects=False)

    assert response.status_code in (301, 302, 307, 308)
    assert response.headers["location"].endswith("/viewer/")
    assert bare.headers["location"] == "/viewer/?api=x"
