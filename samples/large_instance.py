"""A very large multi-frame VL Whole Slide Microscopy Image instance, streamed to disk.

The header (preamble, file meta, dataset up to and including the optional Extended Offset
Table) is encoded with pydicom; the encapsulated Pixel Data element is then appended by hand,
one frame at a time, so memory stays bounded to one frame whatever the file size.

Frames are random bytes, NOT valid JPEG: the instance exists to exercise storage, indexing
and frame retrieval of >1 GB objects, which only need byte identity.
:func:`frame_bytes_of` reproduces any frame, so tests can check retrieved frames without
keeping them.

Run ``python -m samples.large_instance --help`` for the command line.
"""

from __future__ import annotations

import argparse
import functools
import math
import struct
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.uid import JPEGBaseline8Bit, generate_uid

from samples._common import (
    BASE_IMAGE_TYPE,
    VL_WSI_SOP_CLASS,
    SlideStudy,
    add_slide,
    add_slide_study,
    add_tiled_image,
    encode_part10_header,
    file_meta,
)

_STUDY = SlideStudy(
    study_id="LARGE",
    accession_number="LARGE0001",
    study_description="Large instance (random frame bytes)",
    referring_physician_name="",
    device_serial_number="SYN-LARGE",
    acquisition_duration_s=600.0,
)

_ITEM_TAG = b"\xfe\xff\x00\xe0"
_SEQUENCE_DELIMITER = b"\xfe\xff\xdd\xe0" + b"\x00\x00\x00\x00"
# (7FE0,0010) OB, two reserved bytes, undefined length.
_PIXEL_DATA_HEADER = b"\xe0\x7f\x10\x00" + b"OB" + b"\x00\x00" + b"\xff\xff\xff\xff"
_EMPTY_BASIC_OFFSET_TABLE = _ITEM_TAG + b"\x00\x00\x00\x00"
_WRITE_BUFFER = 16 * 1024 * 1024
_GENERATOR_THREADS = 2
_LOOK_AHEAD = 3


_MASK64 = 0xFFFFFFFFFFFFFFFF
_GOLDEN = 0x9E3779B97F4A7C15


def _splitmix64(value: int) -> int:
    z = (value + _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


@functools.lru_cache(maxsize=4)
def _word_counters(words: int) -> np.ndarray:
    counters = np.arange(1, words + 1, dtype=np.uint64)
    counters.flags.writeable = False
    return counters


def frame_bytes_of(seed: int, index: int, frame_bytes: int) -> bytes:
    """Return the content of frame ``index`` (0-based) of an instance written with ``seed``.

    Counter-based SplitMix64 over (seed, index, word): vectorised numpy, ~1 GB/s per core,
    which a sequential generator such as PCG64 does not reach; frames of one instance differ.
    """
    if not 0 <= index < 1 << 31 or not 0 <= frame_bytes < 1 << 34:
        raise ValueError("index or frame_bytes out of range")
    words = -(-frame_bytes // 8)
    with np.errstate(over="ignore"):
        z = _word_counters(words) + np.uint64(index << 32)
        z *= np.uint64(_GOLDEN)
        z += np.uint64(_splitmix64(seed & _MASK64))
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z.astype("<u8", copy=False).view(np.uint8)[:frame_bytes].tobytes()


def tile_grid(number_of_frames: int) -> tuple[int, int]:
    """Return (tiles_across, tiles_down) of a near-square grid holding at least that many."""
    across = math.isqrt(max(1, number_of_frames) - 1) + 1
    return across, math.ceil(number_of_frames / across)


def large_instance_frame_count(total_bytes: int, frame_bytes: int) -> int:
    """Return the number of frames :func:`write_large_instance` writes for these sizes.

    Enough frames to reach ``total_bytes`` of frame data, rounded up to fill a complete
    TILED_FULL grid (whose frame count must be exactly tiles across x tiles down).
    """
    needed = max(1, math.ceil(total_bytes / frame_bytes))
    across, down = tile_grid(needed)
    return across * down


def _header_dataset(
    *,
    number_of_frames: int,
    frame_bytes: int,
    tile: int,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    frame_of_reference_uid: str,
    pyramid_uid: str,
    patient_id: str,
    patient_name: str,
    extended_offset_table: bool,
) -> Dataset:
    now = datetime.now()
    across, down = tile_grid(number_of_frames)
    ds = Dataset()
    ds.file_meta = file_meta(VL_WSI_SOP_CLASS, sop_uid, JPEGBaseline8Bit)
    add_slide_study(
        ds,
        _STUDY,
        patient_id=patient_id,
        patient_name=patient_name,
        study_uid=study_uid,
        series_uid=series_uid,
        sop_uid=sop_uid,
        frame_of_reference_uid=frame_of_reference_uid,
        acquired=now,
    )
    add_tiled_image(
        ds,
        image_type=BASE_IMAGE_TYPE,
        instance_number=1,
        acquired=now,
        width=across * tile,
        height=down * tile,
        tile=tile,
        pixel_spacing_mm=0.00025,
        compressed_bytes=number_of_frames * frame_bytes,
        pyramid_uid=pyramid_uid,
        dimension_organization_uid=generate_uid(),
    )
    add_slide(ds, "SLIDE-LARGE", generate_uid())
    if extended_offset_table:
        # Offsets are from the first byte of the first frame's item tag (after the empty
        # Basic Offset Table); every item is 8 header bytes plus frame_bytes.
        offsets = np.arange(number_of_frames, dtype="<u8") * np.uint64(frame_bytes + 8)
        ds.ExtendedOffsetTable = offsets.tobytes()
        ds["ExtendedOffsetTable"].VR = "OV"
        ds.ExtendedOffsetTableLengths = np.full(number_of_frames, frame_bytes, "<u8").tobytes()
        ds["ExtendedOffsetTableLengths"].VR = "OV"
    return ds


def write_large_instance(
    path: Path,
    *,
    total_bytes: int = 1_100_000_000,
    frame_bytes: int = 1_048_576,
    seed: int = 0,
    extended_offset_table: bool = True,
    tile: int = 1024,
    study_uid: str | None = None,
    series_uid: str | None = None,
    sop_uid: str | None = None,
    frame_of_reference_uid: str | None = None,
    pyramid_uid: str | None = None,
    patient_id: str = "WSI-LARGE",
    patient_name: str = "Sample^Large",
) -> Path:
    """Stream a multi-frame VL WSI instance with at least ``total_bytes`` of frame data.

    Every frame is ``frame_bytes`` (must be even) of pseudo-random bytes, reproducible with
    :func:`frame_bytes_of` (``seed``, index). The frame count is
    :func:`large_instance_frame_count`. The transfer syntax is JPEG Baseline (encapsulated,
    explicit VR little endian) with an empty Basic Offset Table and, if
    ``extended_offset_table``, an Extended Offset Table and Lengths. Memory use is bounded
    by a few frames (a small generation look-ahead) plus the header. UIDs left as ``None``
    are generated. Returns ``path``.
    """
    if frame_bytes < 2 or frame_bytes % 2 or frame_bytes >= 0xFFFFFFFF:
        raise ValueError("frame_bytes must be even and fit a 32-bit item length")
    path = Path(path)
    number_of_frames = large_instance_frame_count(total_bytes, frame_bytes)
    ds = _header_dataset(
        number_of_frames=number_of_frames,
        frame_bytes=frame_bytes,
        tile=tile,
        study_uid=study_uid or generate_uid(),
        series_uid=series_uid or generate_uid(),
        sop_uid=sop_uid or generate_uid(),
        frame_of_reference_uid=frame_of_reference_uid or generate_uid(),
        pyramid_uid=pyramid_uid or generate_uid(),
        patient_id=patient_id,
        patient_name=patient_name,
        extended_offset_table=extended_offset_table,
    )
    item_header = _ITEM_TAG + struct.pack("<I", frame_bytes)
    path.parent.mkdir(parents=True, exist_ok=True)
    # A large write buffer turns the per-frame writes into few large system calls.
    with path.open("wb", buffering=max(_WRITE_BUFFER, 2 * frame_bytes)) as fp:
        fp.write(encode_part10_header(ds))
        fp.write(_PIXEL_DATA_HEADER)
        fp.write(_EMPTY_BASIC_OFFSET_TABLE)
        # Frames are generated on worker threads (numpy releases the GIL) while this thread
        # writes, with a small fixed look-ahead so memory stays at a few frames.
        with ThreadPoolExecutor(max_workers=_GENERATOR_THREADS) as pool:
            pending: deque[Future[bytes]] = deque()
            submitted = 0
            for _ in range(number_of_frames):
                while submitted < number_of_frames and len(pending) < _LOOK_AHEAD:
                    pending.append(pool.submit(frame_bytes_of, seed, submitted, frame_bytes))
                    submitted += 1
                frame = pending.popleft().result()
                fp.write(item_header)
                fp.write(frame)
        fp.write(_SEQUENCE_DELIMITER)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m samples.large_instance",
        description="Stream a large multi-frame VL WSI instance (random frame bytes) to disk.",
    )
    parser.add_argument("output", type=Path, help="output .dcm file")
    parser.add_argument(
        "--total-bytes",
        type=int,
        default=1_100_000_000,
        help="minimum amount of frame data in bytes (default 1.1 GB)",
    )
    parser.add_argument("--frame-bytes", type=int, default=1_048_576, help="bytes per frame (even)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the frame contents")
    parser.add_argument(
        "--no-extended-offset-table", action="store_true", help="omit the Extended Offset Table"
    )
    args = parser.parse_args(argv)
    path = write_large_instance(
        args.output,
        total_bytes=args.total_bytes,
        frame_bytes=args.frame_bytes,
        seed=args.seed,
        extended_offset_table=not args.no_extended_offset_table,
    )
    print(
        f"{path} {path.stat().st_size} bytes, "
        f"{large_instance_frame_count(args.total_bytes, args.frame_bytes)} frames"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
