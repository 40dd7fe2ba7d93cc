"""Slide tiles, descriptor, associated images and IIIF, against the real server."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pydicom
import pytest
from pydicom.uid import ExplicitVRLittleEndian, JPEG2000Lossless, generate_uid

from samples.wsi_level import render_tile, write_wsi_pyramid
from samples.wsi_variants import (
    plane_seed,
    write_associated,
    write_variant_level,
    write_variant_pyramid,
)
from tests.conftest import SHARED_SLIDES, Server
from tests.slide_support import decode, frames_of, osd_iiif_urls, store

IMMUTABLE = "public, max-age=31536000, immutable"
WHITE = 255


@pytest.fixture(scope="module")
def web(server: Server) -> Iterator[httpx.Client]:
    """A client bound to the server root (tiles and IIIF live beside /dicom-web)."""
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def dicomweb(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.dicomweb, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def jpeg_slide(tmp_path_factory: pytest.TempPathFactory, dicomweb: httpx.Client
               ) -> tuple[str, list[Path]]:
    """A 1000x700 JPEG pyramid (3 levels, 256 tiles) with a native label image."""
    folder = tmp_path_factory.mktemp("jpeg-slide")
    study, series = generate_uid(), generate_uid()
    paths = write_wsi_pyramid(folder, 1000, 700, 256, study_uid=study, series_uid=series,
                              patient_id="TILES-JPEG")
    label = write_associated(folder / "label.dcm", "label", width=400, height=300,
                             study_uid=study, series_uid=series)
    store(dicomweb, [*paths, label])
    return series, paths


def test_descriptor_lists_levels_and_context(web: httpx.Client, jpeg_slide: tuple) -> None:
    series, _ = jpeg_slide

    response = web.get(f"/wsi/series/{series}")

    assert response.status_code == 200
    desc = response.json()
    assert [(lv["width"], lv["height"]) for lv in desc["levels"]] == [
        (1000, 700), (500, 350), (250, 175)]
    assert [lv["downsample"] for lv in desc["levels"]] == [1.0, 2.0, 4.0]
    assert [lv["tiles_across"] for lv in desc["levels"]] == [4, 2, 1]
    assert desc["levels"][1]["pixel_spacing_mm"] == pytest.approx([0.0005, 0.0005])
    assert desc["tile_width"] == desc["tile_height"] == 256
    assert desc["focal_planes_um"] == [0.0]
    assert [p["id"] for p in desc["optical_paths"]] == ["1"]
    assert desc["associated"]["label"].endswith(f"/wsi/series/{series}/label")
    assert desc["associated"]["overview"] is None
    assert desc["context"]["patient_id"] == "TILES-JPEG"
    assert desc["objective_power"] == 40
    assert desc["tiles"].startswith(str(web.base_url))
    assert "{level}/{col}/{row}?v=" in desc["tiles"]


def test_jpeg_tiles_are_the_stored_frames(web: httpx.Client, jpeg_slide: tuple) -> None:
    series, paths = jpeg_slide

    for level, path in enumerate(paths):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        across = math.ceil(ds.TotalPixelMatrixColumns / 256)
        for number, frame in enumerate(frames_of(path)):
            col, row = number % across, number // across
            response = web.get(f"/wsi/series/{series}/tiles/{level}/{col}/{row}",
                               headers={"Accept": "image/webp,image/*,*/*;q=0.8"})

            assert response.status_code == 200
            assert response.headers["content-type"] == "image/jpeg"
            assert response.headers["cache-control"] == IMMUTABLE
            assert response.content == frame.rstrip(b"\0") or response.content == frame


def test_tile_revalidation_answers_304(web: httpx.Client, jpeg_slide: tuple) -> None:
    series, _ = jpeg_slide
    url = f"/wsi/series/{series}/tiles/0/1/1"
    etag = web.get(url).headers["etag"]

    not_modified = web.get(url, headers={"If-None-Match": etag})
    listed = web.get(url, headers={"If-None-Match": f'"other", W/{etag}'})
    changed = web.get(url, headers={"If-None-Match": '"something-else"'})
    other_tile = web.get(f"/wsi/series/{series}/tiles/0/2/1")

    assert etag.startswith('"') and etag.endswith('"')
    assert not_modified.status_code == 304 and not_modified.content == b""
    assert not_modified.headers["etag"] == etag
    assert listed.status_code == 304
    assert changed.status_code == 200
    assert other_tile.headers["etag"] != etag


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/tiles/3/0/0", 404),
        ("/tiles/0/4/0", 404),
        ("/tiles/0/0/3", 404),
        ("/tiles/0/-1/0", 404),
        ("/tiles/0/0/0?z=1", 404),
        ("/tiles/0/0/0?path=nope", 404),
        ("/tiles/0/0/0?format=gif", 400),
        ("/overview", 404),
    ],
)
def test_tile_errors_have_a_json_reason(web: httpx.Client, jpeg_slide: tuple, url: str,
                                        status: int) -> None:
    series, _ = jpeg_slide

    response = web.get(f"/wsi/series/{series}{url}")

    assert response.status_code == status
    assert response.json()["error"]


def test_unknown_and_invalid_series(web: httpx.Client) -> None:
    assert web.get(f"/wsi/series/{generate_uid()}/tiles/0/0/0").status_code == 404
    assert web.get(f"/wsi/series/{generate_uid()}").status_code == 404
    assert web.get("/wsi/series/1.2.x/tiles/0/0/0").status_code == 400


def test_tiles_as_png_or_webp_by_format_or_accept(web: httpx.Client, jpeg_slide: tuple) -> None:
    series, _ = jpeg_slide
    url = f"/wsi/series/{series}/tiles/0/0/0"
    jpeg = decode(web.get(url).content).astype(int)

    png = web.get(url, params={"format": "png"})
    webp = web.get(url, headers={"Accept": "image/webp"})
    refused = web.get(url, headers={"Accept": "image/avif"})

    assert png.headers["content-type"] == "image/png"
    assert webp.headers["content-type"] == "image/webp"
    assert webp.headers["vary"] == "Accept"
    assert np.array_equal(decode(png.content), jpeg)
    assert np.abs(decode(webp.content).astype(int) - jpeg).mean() < 3
    assert refused.status_code == 406


def test_label_and_thumbnail(web: httpx.Client, jpeg_slide: tuple) -> None:
    series, _ = jpeg_slide

    label = web.get(f"/wsi/series/{series}/label")
    thumbnail = web.get(f"/wsi/series/{series}/thumbnail")
    again = web.get(f"/wsi/series/{series}/thumbnail",
                    headers={"If-None-Match": thumbnail.headers["etag"]})

    assert label.headers["content-type"] == "image/jpeg"
    assert decode(label.content).shape == (300, 400, 3)
    assert decode(thumbnail.content).shape == (358, 512, 3)  # from level 0, fit in 512
    assert again.status_code == 304


@pytest.mark.parametrize("syntax", [JPEG2000Lossless, ExplicitVRLittleEndian])
def test_tiles_a_browser_cannot_show_are_transcoded(
    web: httpx.Client, dicomweb: httpx.Client, tmp_path: Path, syntax: str
) -> None:
    paths = write_variant_pyramid(tmp_path, 600, 400, 256, transfer_syntax=syntax, seed=5)
    store(dicomweb, paths)
    series = str(pydicom.dcmread(paths[0], stop_before_pixels=True).SeriesInstanceUID)

    for col, row in [(0, 0), (2, 1)]:
        url = f"/wsi/series/{series}/tiles/0/{col}/{row}"
        jpeg = web.get(url)
        png = web.get(url, params={"format": "png"})
        expected = render_tile(5, 600, 400, row, col, 256)

        assert jpeg.headers["content-type"] == "image/jpeg"
        assert decode(jpeg.content).shape == (256, 256, 3)
        assert np.abs(decode(jpeg.content).astype(int) - expected).mean() < 4
        assert np.array_equal(decode(png.content), expected)  # lossless source, lossless out
        assert web.get(url).content == jpeg.content  # from the transcode cache


def test_rgb_jpeg_without_colour_marker_gets_an_adobe_marker(
    web: httpx.Client, dicomweb: httpx.Client, tmp_path: Path
) -> None:
    (path,) = write_variant_level(tmp_path / "aperio.dcm", width=512, height=512, tile=256,
                                  aperio_rgb=True, seed=9)
    store(dicomweb, [path])
    series = str(pydicom.dcmread(path, stop_before_pixels=True).SeriesInstanceUID)
    stored = frames_of(path)[0]
    expected = render_tile(9, 512, 512, 0, 0, 256).astype(int)

    served = web.get(f"/wsi/series/{series}/tiles/0/0/0").content

    assert np.abs(decode(stored).astype(int) - expected).mean() > 20  # false colours as stored
    assert served[2:18] == b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"
    assert served[18:] == stored[2:]  # scan data untouched
    assert np.abs(decode(served).astype(int) - expected).mean() < 4


@pytest.fixture(scope="module")
def sparse_slide(tmp_path_factory: pytest.TempPathFactory, dicomweb: httpx.Client
                 ) -> tuple[str, list[Path]]:
    """TILED_SPARSE, 2 focal planes x 2 optical paths, each level in 2 concatenated parts,
    frames shuffled, two level-0 tiles missing."""
    folder = tmp_path_factory.mktemp("sparse-slide")
    paths = write_variant_pyramid(
        folder, 1000, 700, 256, organization="TILED_SPARSE", omit={(1, 1), (2, 0)},
        focal_planes=(0.0, 2.0), optical_paths=("1", "2"), parts=2, seed=3,
    )
    store(dicomweb, paths)
    series = str(pydicom.dcmread(paths[0], stop_before_pixels=True).SeriesInstanceUID)
    return series, paths


def _sparse_frames(paths: list[Path]) -> dict[tuple[int, float, str, int, int], bytes]:
    found = {}
    for path in paths:
        level = int(path.name.split("-")[1])
        ds = pydicom.dcmread(path)
        for item, frame in zip(ds.PerFrameFunctionalGroupsSequence, frames_of(path),
                               strict=True):
            pos = item.PlanePositionSlideSequence[0]
            key = (level, float(pos.ZOffsetInSlideCoordinateSystem),
                   str(item.OpticalPathIdentificationSequence[0].OpticalPathIdentifier),
                   (int(pos.ColumnPositionInTotalImagePixelMatrix) - 1) // 256,
                   (int(pos.RowPositionInTotalImagePixelMatrix) - 1) // 256)
            found[key] = frame
    return found


def test_sparse_multi_instance_levels(web: httpx.Client, sparse_slide: tuple) -> None:
    series, paths = sparse_slide
    frames = _sparse_frames(paths)
    desc = web.get(f"/wsi/series/{series}").json()

    assert desc["focal_planes_um"] == [0.0, 2.0]
    assert [p["id"] for p in desc["optical_paths"]] == ["1", "2"]
    assert [len(lv["instances"]) for lv in desc["levels"]] == [2, 2, 2]
    assert all(lv["sparse"] for lv in desc["levels"])
    for level, lv in enumerate(desc["levels"][:2]):
        for z_index, z in enumerate((0.0, 2.0)):
            for path in ("1", "2"):
                for row in range(lv["tiles_down"]):
                    for col in range(lv["tiles_across"]):
                        response = web.get(
                            f"/wsi/series/{series}/tiles/{level}/{col}/{row}",
                            params={"z": z_index, "path": path})
                        expected = frames.get((level, z, path, col, row))
                        assert response.status_code == 200
                        if expected is not None:
                            assert response.content in (expected, expected.rstrip(b"\0"))
                        else:
                            assert (col, row) in {(1, 1), (2, 0)}  # omitted
                            assert (decode(response.content) >= WHITE - 2).all()
                            assert decode(response.content).shape == (256, 256, 3)


def test_sparse_default_plane_and_path_are_the_first(web: httpx.Client, sparse_slide: tuple
                                                     ) -> None:
    series, _ = sparse_slide

    default = web.get(f"/wsi/series/{series}/tiles/0/0/0", params={"format": "png"})
    first = web.get(f"/wsi/series/{series}/tiles/0/0/0",
                    params={"format": "png", "z": 0, "path": "1"})
    other = web.get(f"/wsi/series/{series}/tiles/0/0/0",
                    params={"format": "png", "z": 1, "path": "2"})

    assert default.content == first.content != other.content
    expected = render_tile(plane_seed(3, 1, 1), 1000, 700, 0, 0, 256).astype(int)
    assert np.abs(decode(other.content).astype(int) - expected).mean() < 4


# --- IIIF -------------------------------------------------------------------------------


def test_iiif_info(web: httpx.Client, jpeg_slide: tuple) -> None:
    series, _ = jpeg_slide

    base = web.get(f"/iiif/3/{series}")
    response = web.get(f"/iiif/3/{series}/info.json")
    ld = web.get(f"/iiif/3/{series}/info.json", headers={"Accept": "application/ld+json"})

    assert base.status_code == 303
    assert base.headers["location"].endswith(f"/iiif/3/{series}/info.json")
    info = response.json()
    assert info["@context"] == "http://iiif.io/api/image/3/context.json"
    assert info["id"] == f"{str(web.base_url).rstrip('/')}/iiif/3/{series}"
    assert info["type"] == "ImageService3" and info["profile"] == "level2"
    assert (info["width"], info["height"]) == (1000, 700)
    assert info["tiles"] == [{"width": 256, "height": 256, "scaleFactors": [1, 2, 4]}]
    assert {"width": 250, "height": 175} in info["sizes"]
    assert response.headers["content-type"].startswith("application/json")
    assert ld.headers["content-type"].startswith("application/ld+json")
    assert 'rel="profile"' in response.headers["link"]


def test_iiif_tiles_as_openseadragon_requests_them(web: httpx.Client, jpeg_slide: tuple
                                                   ) -> None:
    series, paths = jpeg_slide
    info = web.get(f"/iiif/3/{series}/info.json").json()
    passthrough = 0

    for osd_level in range(3):
        pyramid_level = 2 - osd_level
        stored = frames_of(paths[pyramid_level])
        for url, (width, height) in osd_iiif_urls(info, osd_level):
            response = web.get(url)

            assert response.status_code == 200, url
            assert response.headers["content-type"] == "image/jpeg"
            assert decode(response.content).shape == (height, width, 3), url
            passthrough += response.content in stored
    # Interior 256x256 tiles of level 0 (3x2) and level 1 (1x1) are the stored frames.
    assert passthrough == 7


def test_iiif_regions_sizes_rotations_and_errors(web: httpx.Client, jpeg_slide: tuple) -> None:
    series, _ = jpeg_slide
    base = f"/iiif/3/{series}"

    def image(path: str) -> np.ndarray:
        response = web.get(f"{base}/{path}")
        assert response.status_code == 200, (path, response.text)
        return decode(response.content)

    assert image("full/max/0/default.jpg").shape == (700, 1000, 3)
    assert image("full/250,/0/default.png").shape == (175, 250, 3)
    assert image("full/!100,100/90/default.png").shape == (100, 70, 3)
    assert image("square/64,64/0/gray.png").shape == (64, 64, 3)
    assert image("pct:50,50,50,50/pct:50/180/color.webp").shape == (175, 250, 3)
    assert image("100,100,300,200/^600,/0/default.jpg").shape == (400, 600, 3)
    region = image("300,200,200,100/max/0/default.png").astype(int)
    rotated = image("300,200,200,100/max/!270/default.png").astype(int)
    assert np.array_equal(np.rot90(region[:, ::-1], k=1), rotated)
    bitonal = image("full/100,/0/bitonal.png")
    assert set(np.unique(bitonal)) <= {0, 255}
    for path, status in [
        ("2000,0,10,10/max/0/default.jpg", 400),
        ("full/2000,/0/default.jpg", 400),
        ("full/^5000,/0/default.jpg", 400),
        ("full/max/45/default.jpg", 501),
        ("full/max/0/default.tif", 501),
        ("full/max/0/fancy.jpg", 400),
        ("0,0,-1,5/max/0/default.jpg", 400),
    ]:
        response = web.get(f"{base}/{path}")
        assert response.status_code == status, path
        assert response.json()["error"]


def test_iiif_revalidation(web: httpx.Client, jpeg_slide: tuple) -> None:
    series, _ = jpeg_slide
    url = f"/iiif/3/{series}/0,0,512,512/256,256/0/default.jpg"
    etag = web.get(url).headers["etag"]

    assert web.get(url, headers={"If-None-Match": etag}).status_code == 304
    assert web.get(f"/iiif/3/{series}/full/100,/0/default.jpg",
                   headers={"If-None-Match": etag}).status_code == 200


CMU = SHARED_SLIDES / "dicom" / "cmu-1-small-region"


@pytest.mark.skipif(not CMU.is_dir(), reason="shared slides not present")
def test_third_party_pyramid_with_uneven_downsamples(web: httpx.Client, dicomweb: httpx.Client
                                                     ) -> None:
    paths = sorted(CMU.glob("*.dcm"))
    store(dicomweb, paths)
    series = str(pydicom.dcmread(paths[0], stop_before_pixels=True).SeriesInstanceUID)
    level0 = CMU / "level-0-frames-0-30.dcm"

    desc = web.get(f"/wsi/series/{series}").json()
    info = web.get(f"/iiif/3/{series}/info.json").json()
    tile = web.get(f"/wsi/series/{series}/tiles/0/1/2")

    assert len(desc["levels"]) == 12
    assert desc["levels"][3]["downsample"] == pytest.approx(8.014, abs=1e-3)
    # Header says RGB, the stream is JFIF YCbCr: the stream is believed, bytes pass through.
    assert tile.content == frames_of(level0)[2 * 5 + 1]
    assert info["tiles"][0]["scaleFactors"][:4] == [1, 2, 4, 8]
    top = round(math.log2(info["tiles"][0]["scaleFactors"][-1]))
    for osd_level in (top, top - 2):
        for url, (width, height) in osd_iiif_urls(info, osd_level):
            response = web.get(url)
            assert response.status_code == 200, url
            assert decode(response.content).shape == (height, width, 3)


def test_slide_model_follows_ingest_and_delete(web: httpx.Client, dicomweb: httpx.Client,
                                               tmp_path: Path) -> None:
    paths = write_wsi_pyramid(tmp_path, 600, 400, 256, levels=2)
    ds = pydicom.dcmread(paths[0], stop_before_pixels=True)
    store(dicomweb, paths[:1])
    before = web.get(f"/wsi/series/{ds.SeriesInstanceUID}").json()

    store(dicomweb, paths[1:])
    after = web.get(f"/wsi/series/{ds.SeriesInstanceUID}").json()
    dicomweb.delete(f"/studies/{ds.StudyInstanceUID}/series/{ds.SeriesInstanceUID}")
    gone = web.get(f"/wsi/series/{ds.SeriesInstanceUID}/tiles/0/0/0")

    assert len(before["levels"]) == 1
    assert len(after["levels"]) == 2 and after["version"] != before["version"]
    assert after["tiles"].endswith(f"?v={after['version']}")
    assert gone.status_code == 404
