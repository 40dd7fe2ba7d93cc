"""Unreadable, truncated and unsupported input: one-line reasons and nothing left behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from dicomizer.convert import convert
from tests.dicomizer.conftest import SVS
from wsi.errors import Conflict, InvalidInput, Unsupported


def truncated_early(tmp: Path) -> Path:
    """Cut inside the tile data: the first IFD (at the end of this file) is gone."""
    return write(tmp / "truncated.svs", SVS.read_bytes()[:400_000])


def truncated_late(tmp: Path) -> Path:
    """Cut after the first IFD: tifffile alone would see a slide without label and macro."""
    return write(tmp / "truncated.svs", SVS.read_bytes()[:1_300_000])


def zero_bytes(tmp: Path) -> Path:
    return write(tmp / "empty.svs", b"")


def text_named_svs(tmp: Path) -> Path:
    return write(tmp / "notes.svs", b"not a slide\n")


def missing(tmp: Path) -> Path:
    return tmp / "missing.svs"


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


BAD_INPUTS: dict[str, tuple[Callable[[Path], Path], type[Exception], str]] = {
    "truncated-early": (truncated_early, InvalidInput, "truncated"),
    "truncated-late": (truncated_late, InvalidInput, "truncated"),
    "zero-bytes": (zero_bytes, InvalidInput, "empty"),
    "text-named-svs": (text_named_svs, Unsupported, "not a slide format"),
    "missing": (missing, InvalidInput, "no such file"),
}


@pytest.mark.parametrize("name", BAD_INPUTS)
def test_bad_input_fails_cleanly_without_output(tmp_path: Path, name: str) -> None:
    make, error, words = BAD_INPUTS[name]
    source = make(tmp_path)
    parent = tmp_path / "out"
    parent.mkdir()

    with pytest.raises(error) as raised:
        convert(source, parent / "slide")

    reason = str(raised.value)
    assert words in reason
    assert "\n" not in reason
    assert list(parent.iterdir()) == []


def test_failure_during_writing_removes_the_staging_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dicomizer import pyramid_builder

    def broken(*args: object) -> None:
        raise InvalidInput("decoder exploded")

    monkeypatch.setattr(pyramid_builder, "decode_tiles_into", broken)
    parent = tmp_path / "out"
    parent.mkdir()

    with pytest.raises(InvalidInput, match="decoder exploded"):
        convert(SVS, parent / "slide")

    assert list(parent.iterdir()) == []


def test_existing_output_files_are_not_overwritten(tmp_path: Path) -> None:
    out = tmp_path / "slide"
    out.mkdir()
    (out / "level-0.dcm").write_bytes(b"precious")

    with pytest.raises(Conflict):
        convert(SVS, out)

    assert (out / "level-0.dcm").read_bytes() == b"precious"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["slide"]


def test_unknown_pixel_spacing_needs_mpp(tmp_path: Path) -> None:
    import numpy as np
    import tifffile

    from dicomizer.options import ConversionOptions

    source = tmp_path / "plain.tif"
    tifffile.imwrite(source, np.full((300, 400, 3), 200, np.uint8), tile=(128, 128),
                     compression="jpeg", metadata=None)

    with pytest.raises(InvalidInput, match="--mpp"):
        convert(source, tmp_path / "a")
    result = convert(source, tmp_path / "b", ConversionOptions(mpp=0.5))

    assert result.instances[0].width == 400
