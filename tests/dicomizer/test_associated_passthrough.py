"""Labels, overviews and thumbnails stored as JPEG are passed through, strips joined by
restart markers (:mod:`wsi.readers.jpeg_strips`); others are re-encoded."""

from __future__ import annotations

import math
from pathlib import Path

import imagecodecs
import numpy as np
import openslide
import pydicom
import pytest
import tifffile
from pydicom.encaps import generate_frames
from wsidicom import WsiDicom

from dicomizer.convert import ConversionResult, convert
from dicomizer.options import ConversionOptions
from tests.dicomizer.conftest import NDPI_DAPI, SVS, Converter, dciodvfy_errors
from wsi.jpeg_stream import segments
from wsi.readers.jpeg_strips import join_strips

PASSTHROUGH = ConversionOptions()
SVS_SERIES = {"thumbnail": "Thumbnail", "overview": "Macro"}


def instance(result: ConversionResult, name: str) -> tuple[pydicom.Dataset, bytes]:
    """(dataset, its one frame) of the associated instance ``name``."""
    path = next(p for p in result.files if p.name == f"{name}.dcm")
    ds = pydicom.dcmread(path)
    return ds, next(generate_frames(ds.PixelData, number_of_frames=1))


def stored_strips(source: Path, series_name: str) -> tuple[list[bytes], np.ndarray]:
    """The raw strips of a TIFF series and its pixels as tifffile decodes them."""
    with tifffile.TiffFile(source) as tf:
        series = next(s for s in tf.series if s.name == series_name)
        page = series.keyframe
        strips = []
        for offset, count in zip(page.dataoffsets, page.databytecounts, strict=True):
            tf.filehandle.seek(offset)
            strips.append(tf.filehandle.read(count))
        return strips, series.asarray()


def scan_data(stream: bytes) -> bytes:
    """The entropy-coded data of a one-scan JPEG stream (after SOS, before EOI)."""
    _, sos_at, sos_length = segments(stream)[-1]
    return stream[sos_at + sos_length : stream.rindex(b"\xff\xd9")]


def psnr(actual: np.ndarray, expected: np.ndarray) -> float:
    mse = float(np.mean((actual.astype(np.float64) - expected.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def test_svs_jpeg_thumbnail_and_macro_keep_their_scan_data(converted: Converter) -> None:
    result = converted("svs", SVS, PASSTHROUGH)

    by_name = {item.name: item for item in result.instances}
    assert by_name["thumbnail"].passthrough and by_name["overview"].passthrough
    assert not by_name["label"].passthrough  # LZW: re-encoded
    for name, series_name in SVS_SERIES.items():
        ds, frame = instance(result, name)
        strips, pixels = stored_strips(SVS, series_name)
        at = 0
        for strip in strips:  # every strip's entropy-coded data, in order, byte for byte
            at = frame.index(scan_data(strip), at) + 1
        assert ds.PhotometricInterpretation == "RGB"
        assert ds.LossyImageCompressionMethod == "ISO_10918_1"
        assert (ds.Rows, ds.Columns) == pixels.shape[:2]
        # RGB without subsampling: decoded strip by strip or joined, the pixels are equal.
        assert np.array_equal(imagecodecs.jpeg8_decode(frame), pixels)
        assert dciodvfy_errors(next(p for p in result.files if p.name == f"{name}.dcm")) == []


def test_passed_through_images_open_in_wsidicom_and_openslide(converted: Converter) -> None:
    result = converted("svs", SVS, PASSTHROUGH)
    _, macro = stored_strips(SVS, "Macro")

    with WsiDicom.open(result.files[0].parent) as wsi:
        overview = np.asarray(wsi.read_overview())[..., :3]
    with openslide.OpenSlide(str(result.files[0])) as slide:
        through_openslide = np.asarray(slide.associated_images["macro"])[..., :3]

    assert np.array_equal(overview, macro)
    assert np.array_equal(through_openslide, macro)


def test_subsampled_ycbcr_strips_pass_through_as_ybr_full_422(converted: Converter,
                                                               synthetic_svs: Path) -> None:
    result = converted("synthetic", synthetic_svs, PASSTHROUGH)

    ds, frame = instance(result, "thumbnail")
    strips, pixels = stored_strips(synthetic_svs, "Thumbnail")
    assert next(i for i in result.instances if i.name == "thumbnail").passthrough
    assert ds.PhotometricInterpretation == "YBR_FULL_422"
    assert frame.index(scan_data(strips[-1])) > frame.index(scan_data(strips[0]))
    # Chroma upsampling now sees across strip borders; elsewhere the pixels are the same.
    assert psnr(imagecodecs.jpeg8_decode(frame), pixels) > 45


def test_ndpi_macro_in_full_chroma_ycbcr_is_reencoded(converted: Converter,
                                                      synthetic_svs: Path) -> None:
    result = converted("ndpi-dapi", NDPI_DAPI, PASSTHROUGH)

    # YCbCr 4:4:4 would be YBR_FULL, which the WSI IOD does not allow (PS3.3 C.8.12.4.1.5).
    overview = next(i for i in result.instances if i.name == "overview")
    assert not overview.passthrough
    assert instance(result, "overview")[0].PhotometricInterpretation == "RGB"


def test_forced_reencoding_and_other_codecs_reencode_associated_images(tmp_path: Path) -> None:
    forced = convert(SVS, tmp_path / "forced", ConversionOptions(levels="source",
                                                                 force_reencode=True))
    j2k = convert(SVS, tmp_path / "j2k", ConversionOptions(levels="source", codec="jpeg2000"))

    for result in (forced, j2k):
        assert not any(item.passthrough for item in result.instances)
    assert {i.transfer_syntax_uid for i in j2k.instances} == {"1.2.840.10008.1.2.4.91"}


def strips_of(image: np.ndarray, rows: int, **encode: object) -> list[bytes]:
    return [bytes(imagecodecs.jpeg8_encode(image[y : y + rows], level=85, **encode))
            for y in range(0, image.shape[0], rows)]


RGB_444 = {"colorspace": "RGB", "outcolorspace": "RGB"}
YCBCR_420 = {"colorspace": "RGB", "outcolorspace": "YCbCr", "subsampling": "420"}


@pytest.fixture(scope="module")
def image() -> np.ndarray:
    rng = np.random.default_rng(3)
    smooth = np.cumsum(rng.integers(-3, 4, (40, 70, 3)), axis=1) + 128
    return np.clip(smooth, 0, 255).astype(np.uint8)


def test_joined_strips_decode_like_the_strips(image: np.ndarray) -> None:
    strips = strips_of(image, 16, **RGB_444)

    joined = join_strips(strips, None, 70, 40, rgb_marker=True)

    assert joined is not None
    decoded = np.concatenate([imagecodecs.jpeg8_decode(s) for s in strips])
    assert np.array_equal(imagecodecs.jpeg8_decode(joined), decoded)
    assert b"\xff\xdd\x00\x04" in joined and b"\xff\xd0" in joined and b"\xff\xd1" in joined
    assert b"Adobe" in joined


def test_subsampled_strips_join_on_mcu_rows(image: np.ndarray) -> None:
    joined = join_strips(strips_of(image, 16, **YCBCR_420), None, 70, 40)

    assert joined is not None
    assert psnr(imagecodecs.jpeg8_decode(joined), image) > 30


def test_strips_that_cannot_be_joined_are_refused(image: np.ndarray) -> None:
    uneven = strips_of(image, 12, **YCBCR_420)  # 12 rows: not whole 16-row MCU rows
    mixed = strips_of(image[:32], 16, **RGB_444)
    mixed[1] = bytes(imagecodecs.jpeg8_encode(image[16:32], level=40, **RGB_444))

    assert join_strips(uneven, None, 70, 40) is None
    assert join_strips(mixed, None, 70, 32) is None  # other tables
    assert join_strips(strips_of(image, 16, **RGB_444), None, 70, 41) is None  # wrong height
    assert join_strips([b"not a jpeg"], None, 70, 40) is None


def test_one_strip_is_the_stream_itself(image: np.ndarray) -> None:
    stream = bytes(imagecodecs.jpeg8_encode(image, level=85, **YCBCR_420))

    assert join_strips([stream], None, 70, 40) == stream
