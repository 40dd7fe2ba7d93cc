"""One table of output codecs: name → transfer syntax, photometric interpretation, encoder.

Photometric interpretations follow PS3.5 §8.2: JPEG baseline with 4:2:0 (or 4:2:2) chroma
subsampling is ``YBR_FULL_422`` (§8.2.1). Full chroma resolution ("444") is encoded without
colour transform as ``RGB`` (with an Adobe APP14 transform-0 marker), because the WSI IOD
does not allow ``YBR_FULL`` (PS3.3 C.8.12.4.1.5). JPEG 2000 and HTJ2K with the
multiple-component transform are ``YBR_RCT`` (reversible) or ``YBR_ICT`` (irreversible)
(§8.2.4, §8.2.14); JPEG-LS has no colour transform, so ``RGB`` (§8.2.3). imagecodecs
releases the GIL while encoding, so encoders scale across worker threads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import imagecodecs
import numpy as np

from dicomizer.codec_names import CODEC_NAMES as CODEC_NAMES
from dicomizer.codec_names import CodecName


@dataclass(frozen=True)
class Encoder:
    """How tiles are encoded and how the result is described in DICOM."""

    name: CodecName
    transfer_syntax_uid: str
    photometric: str
    lossy_method: str | None
    """PS3.3 C.7.6.1.1.5 Lossy Image Compression Method, ``None`` if lossless."""
    encode: Callable[[np.ndarray], bytes]


def _jpeg(quality: int, subsampling: str) -> Callable[[np.ndarray], bytes]:
    def encode(rgb: np.ndarray) -> bytes:
        if subsampling == "444":
            return bytes(imagecodecs.jpeg8_encode(rgb, level=quality, colorspace="RGB",
                                                  outcolorspace="RGB"))
        return bytes(imagecodecs.jpeg8_encode(rgb, level=quality, colorspace="RGB",
                                              outcolorspace="YCbCr", subsampling=subsampling))
    return encode


def _jpeg2000(psnr: int | None) -> Callable[[np.ndarray], bytes]:
    def encode(rgb: np.ndarray) -> bytes:
        if psnr is None:
            return bytes(imagecodecs.jpeg2k_encode(rgb, level=0, codecformat="j2k",
                                                   reversible=True, mct=True))
        return bytes(imagecodecs.jpeg2k_encode(rgb, level=psnr, codecformat="j2k",
                                               reversible=False, mct=True))
    return encode


def _jpegls(rgb: np.ndarray) -> bytes:
    # CharLS sizes its buffer for typical images; noise can need more than the raw size.
    return bytes(imagecodecs.jpegls_encode(rgb, out=rgb.nbytes * 2 + 4096))


def _htj2k(rgb: np.ndarray) -> bytes:
    return bytes(imagecodecs.htj2k_encode(rgb, level=0, reversible=True, rgb=True))


def jpeg2000_psnr(quality: int) -> int:
    """Target PSNR (dB) of lossy JPEG 2000 for a ``--quality`` of 1-100 (90 → 47 dB)."""
    return 25 + quality // 4


def make_encoder(name: CodecName, quality: int = 90, subsampling: str = "420") -> Encoder:
    """The encoder for ``name``; ``quality`` applies to jpeg (1-100) and lossy jpeg2000."""
    if not 1 <= quality <= 100:
        raise ValueError("quality must be 1-100")
    photometric_jpeg = "YBR_FULL_422" if subsampling in ("420", "422") else "RGB"
    table: dict[str, Encoder] = {
        "jpeg": Encoder("jpeg", "1.2.840.10008.1.2.4.50", photometric_jpeg, "ISO_10918_1",
                        _jpeg(quality, subsampling)),
        "jpeg2000": Encoder("jpeg2000", "1.2.840.10008.1.2.4.91", "YBR_ICT", "ISO_15444_1",
                            _jpeg2000(jpeg2000_psnr(quality))),
        "jpeg2000-lossless": Encoder("jpeg2000-lossless", "1.2.840.10008.1.2.4.90", "YBR_RCT",
                                     None, _jpeg2000(None)),
        "jpegls": Encoder("jpegls", "1.2.840.10008.1.2.4.80", "RGB", None, _jpegls),
        "htj2k": Encoder("htj2k", "1.2.840.10008.1.2.4.201", "YBR_RCT", None, _htj2k),
    }
    if name not in table:
        raise ValueError(f"unknown codec {name!r}")
    return table[name]
