"""NDPI restart intervals decoded in runs (:mod:`wsi.readers.restart_runs`): the same pixels
as decoding them one at a time, which is what the converter's NDPI bands are made of."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import SHARED_SLIDES
from wsi.readers import open_slide, restart_runs
from wsi.readers.tiff import TiffReader

SLIDES = sorted((SHARED_SLIDES / "hamamatsu").glob("*.ndpi"))


def test_blocks_are_row_runs_across_the_level_or_pieces_of_one_row() -> None:
    full = list(restart_runs.blocks(range(2, 9), range(0, 2), across=2, max_segments=6))
    part = list(restart_runs.blocks(range(2, 4), range(1, 6), across=8, max_segments=3))

    assert full == [(range(2, 5), range(0, 2)), (range(5, 8), range(0, 2)),
                    (range(8, 9), range(0, 2))]
    assert part == [(range(2, 3), range(1, 4)), (range(2, 3), range(4, 6)),
                    (range(3, 4), range(1, 4)), (range(3, 4), range(4, 6))]


def test_run_stream_refuses_intervals_without_their_restart_marker() -> None:
    header = b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x08\x00\x10\x03" + bytes(9) + b"\xff\xda"
    good = b"\x01\x02\xff\xd5" + b"\x03\x04\xff\xd6"
    bad = b"\x01\x02\x00\x00" + b"\x03\x04\xff\xd6"

    stream = restart_runs.run_stream(header, 2, good, [4], 16, 32)

    assert stream is not None
    assert stream[7:11] == b"\x00\x10\x00\x20"  # SOF height and width of the run
    # Renumbered from RST0; the last interval's own marker replaced by EOI.
    assert stream.endswith(b"\x01\x02\xff\xd0\x03\x04\xff\xd9")
    assert restart_runs.run_stream(header, 2, bad, [4], 16, 32) is None


@pytest.mark.skipif(not SLIDES, reason="no NDPI slides in shared/slides/hamamatsu")
@pytest.mark.parametrize("path", SLIDES, ids=[p.stem for p in SLIDES])
def test_regions_decoded_in_runs_equal_intervals_decoded_one_by_one(
        path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_slide(path) as runs:
        access = TiffReader._access
        monkeypatch.setattr(TiffReader, "_access", lambda self, page, size: dataclasses.replace(
            access(self, page, size), run_sof=None))
        with open_slide(path) as one_by_one:
            rnd = random.Random(7)
            for level in runs.levels:
                regions = [(0, 0, level.width, level.height), (0, 256, level.width, 256),
                           (-10, -10, level.width + 40, 300)]
                regions += [(rnd.randrange(-50, level.width), rnd.randrange(-50, level.height),
                             rnd.randrange(1, 900), rnd.randrange(1, 900)) for _ in range(6)]
                for region in regions:
                    assert np.array_equal(runs.read_region(level.index, *region),
                                          one_by_one.read_region(level.index, *region)), region
