"""The instances both servers get: CT series, many small studies, a large WSI level."""

from __future__ import annotations

import contextlib
import math
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from vs_orthanc.common import MIB, log


def make_ct_series(folder: Path, count: int) -> list[Path]:
    """500 CT-like instances of 512 x 512 x 16 bit from samples/ct_series.py."""
    from samples.ct_series import write_ct_series

    return sorted(write_ct_series(folder, count=count))


def make_ct_studies(folder: Path, instances: int) -> list[Path]:
    """``instances`` small (64 x 64) instances over many patients/studies/series."""
    from samples.ct_series import write_ct_studies

    per_series, series_per_study, studies_per_patient = 5, 2, 2
    patients = math.ceil(instances / (per_series * series_per_study * studies_per_patient))
    paths = write_ct_studies(folder, patients=patients, studies_per_patient=studies_per_patient,
                             series_per_study=series_per_study,
                             instances_per_series=per_series, rows=64, columns=64)
    return sorted(paths)[:instances]


def _row_tiles(args: tuple[int, int, int, int, int, int, float]) -> list[bytes]:
    from samples.wsi_level import encode_tile, render_tile

    seed, width, height, row, tile, quality, downsample = args
    return [encode_tile(render_tile(seed, width, height, row, column, tile, downsample), quality)
            for column in range(math.ceil(width / tile))]


def _parallel_encoded_tiles(seed: int, width: int, height: int, tile: int, quality: int,
                            downsample: float) -> Iterator[bytes]:
    """Drop-in for samples.wsi_level._encoded_tiles that renders rows in all cores."""
    import multiprocessing

    rows = [(seed, width, height, row, tile, quality, downsample)
            for row in range(math.ceil(height / tile))]
    with multiprocessing.get_context("fork").Pool(os.cpu_count() or 1) as pool:
        for tiles in pool.imap(_row_tiles, rows, chunksize=2):
            yield from tiles


@contextlib.contextmanager
def parallel_tile_rendering() -> Iterator[None]:
    """Within it, ``samples.wsi_level.write_wsi_level`` renders its tiles on every core.

    The sample writer renders tiles one by one (~22 ms each, ~7 min for 18,500 tiles on one
    core); this renders the same tiles in a process pool. Content and layout are unchanged.
    """
    import samples.wsi_level as wsi_level

    original = getattr(wsi_level, "_encoded_tiles", None)
    if original is not None:
        wsi_level._encoded_tiles = _parallel_encoded_tiles  # type: ignore[attr-defined]
    try:
        yield
    finally:
        if original is not None:
            wsi_level._encoded_tiles = original  # type: ignore[attr-defined]


def make_wsi_level(cache_dir: Path, width: int, height: int, tile: int) -> Path:
    """The large WSI level from samples/wsi_level.py, cached between runs."""
    import samples.wsi_level as wsi_level

    path = cache_dir / f"wsi-level-{width}x{height}-t{tile}.dcm"
    if path.exists():
        log(f"using cached WSI level {path} ({path.stat().st_size / MIB:.0f} MiB)")
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    log(f"writing a {width}x{height} WSI level (tile {tile}); this takes a few minutes once")
    partial = path.with_suffix(".partial")
    with parallel_tile_rendering():
        wsi_level.write_wsi_level(partial, width=width, height=height, tile=tile,
                                  patient_id="WSI-BENCH", patient_name="Bench^Slide")
    partial.rename(path)
    log(f"WSI level written in {time.monotonic() - started:.0f} s "
        f"({path.stat().st_size / MIB:.0f} MiB)")
    return path


@dataclass(frozen=True)
class WsiInfo:
    """What the frame workload needs to know about the stored WSI level."""

    path: Path
    study_uid: str
    series_uid: str
    sop_uid: str
    frames: int
    columns_of_tiles: int
    rows_of_tiles: int
    size_bytes: int


def wsi_info(path: Path) -> WsiInfo:
    """UIDs and tile grid of a WSI level, read from its header."""
    import pydicom

    ds = pydicom.dcmread(path, stop_before_pixels=True)
    across = math.ceil(int(ds.TotalPixelMatrixColumns) / int(ds.Columns))
    down = math.ceil(int(ds.TotalPixelMatrixRows) / int(ds.Rows))
    return WsiInfo(path, str(ds.StudyInstanceUID), str(ds.SeriesInstanceUID),
                   str(ds.SOPInstanceUID), int(ds.NumberOfFrames), across, down,
                   path.stat().st_size)


def frame_bytes(path: Path, numbers: Sequence[int]) -> dict[int, bytes]:
    """The stored (encapsulated) bytes of some frames, to check what the servers return."""
    import pydicom
    from pydicom.encaps import generate_fragmented_frames

    ds = pydicom.dcmread(path)
    wanted = set(numbers)
    out: dict[int, bytes] = {}
    count = int(ds.NumberOfFrames)
    for index, fragments in enumerate(generate_fragmented_frames(ds.PixelData,
                                                                  number_of_frames=count), 1):
        if index in wanted:
            out[index] = b"".join(fragments)
    return out
