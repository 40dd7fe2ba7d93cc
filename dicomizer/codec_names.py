"""The output codec names, importable without loading any codec (the CLI parser uses them)."""

from __future__ import annotations

from typing import Literal

CodecName = Literal["jpeg", "jpeg2000", "jpeg2000-lossless", "jpegls", "htj2k"]
CODEC_NAMES: tuple[CodecName, ...] = ("jpeg", "jpeg2000", "jpeg2000-lossless", "jpegls", "htj2k")
