"""Slides: the pyramid facts of a stored series, read from its stored metadata JSON, cached.

Facts are parsed from the DICOM JSON that ingest already stored for each instance (no file
is opened), then turned into :mod:`wsi.pyramid` models. A built :class:`Slide` is kept in a
small LRU keyed by Series Instance UID:

- the archive drops a series' entry whenever it ingests into or deletes from that series;
- an entry older than ``recheck_seconds`` is checked against a one-row signature query
  (instance count and primary keys) before use, so writes by another process (``wsi import``
  on the same index) show up within that time without a query per tile request.

Computing on demand rather than at ingest keeps the index schema unchanged and lets
improvements of the pyramid rules apply to slides stored earlier.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from wsi.codecs import PixelDescription
from wsi.errors import NotFound
from wsi.pyramid import (
    TILED_SPARSE,
    FramePosition,
    InstanceFacts,
    Pyramid,
    Size,
    associated_images,
    build_pyramids,
)

if TYPE_CHECKING:
    from archive.archive import InstanceRecord

_SHARED_FG = "52009229"
_PER_FRAME_FG = "52009230"
_PIXEL_MEASURES = "00289110"
_PLANE_POSITION_SLIDE = "0048021A"
_OPTICAL_PATH_ID_SEQ = "00480207"
_OPTICAL_PATH_SEQ = "00480105"
_OPTICAL_PATH_ID = "00480106"


def _values(data: Mapping[str, Any] | None, tag: str) -> list[Any]:
    if not data:
        return []
    return list(data.get(tag, {}).get("Value") or [])


def _first(data: Mapping[str, Any] | None, tag: str, default: Any = None) -> Any:
    values = _values(data, tag)
    return values[0] if values else default


def _item(data: Mapping[str, Any] | None, *tags: str) -> Mapping[str, Any] | None:
    """The first item of each nested sequence along ``tags``."""
    current = data
    for tag in tags:
        current = _first(current, tag)
        if not isinstance(current, dict):
            return None
    return current


def _text(data: Mapping[str, Any], tag: str) -> str:
    value = _first(data, tag, "")
    if isinstance(value, dict):  # PN
        return str(value.get("Alphabetic", ""))
    return str(value)


def _int(data: Mapping[str, Any] | None, tag: str, default: int) -> int:
    try:
        return int(_first(data, tag, default))
    except (TypeError, ValueError):
        return default


def _pixel_spacing(data: Mapping[str, Any]) -> tuple[float, float] | None:
    measures = _item(data, _SHARED_FG, _PIXEL_MEASURES)
    values = _values(measures, "00280030") or _values(data, "00280030")
    if len(values) < 2:
        return None
    try:
        spacing = (float(values[0]), float(values[1]))
    except (TypeError, ValueError):
        return None
    return spacing if spacing[0] > 0 and spacing[1] > 0 else None


def _optical_paths(data: Mapping[str, Any]) -> tuple[str, ...]:
    ids = [str(_first(item, _OPTICAL_PATH_ID, "")) for item in _values(data, _OPTICAL_PATH_SEQ)]
    ids = [i for i in ids if i]
    if not ids:
        shared = _item(data, _SHARED_FG, _OPTICAL_PATH_ID_SEQ)
        ids = [str(_first(shared, _OPTICAL_PATH_ID, ""))]
    return tuple(dict.fromkeys(ids))


def _focal_planes(data: Mapping[str, Any]) -> tuple[float, ...]:
    """TILED_FULL planes: SpacingBetweenSlices (mm) apart from the shared Z offset (µm)."""
    count = max(1, _int(data, "00480303", 1))
    measures = _item(data, _SHARED_FG, _PIXEL_MEASURES)
    spacing_mm = float(_first(measures, "00180088", 0.0) or 0.0)
    position = _item(data, _SHARED_FG, _PLANE_POSITION_SLIDE)
    base = float(_first(position, "0040074A", 0.0) or 0.0)
    if count > 1 and spacing_mm <= 0:
        return tuple(float(i) for i in range(count))
    return tuple(round(base + i * spacing_mm * 1000.0, 6) for i in range(count))


def _frame_positions(data: Mapping[str, Any], tile: Size) -> tuple[FramePosition, ...] | None:
    items = _values(data, _PER_FRAME_FG)
    if not items:
        return None
    positions = []
    for item in items:
        plane = _item(item, _PLANE_POSITION_SLIDE)
        if plane is None:
            return None
        column = _int(plane, "0048021E", 1)
        row = _int(plane, "0048021F", 1)
        z = round(float(_first(plane, "0040074A", 0.0) or 0.0), 6)
        path = str(_first(_item(item, _OPTICAL_PATH_ID_SEQ), _OPTICAL_PATH_ID, "") or "")
        positions.append(
            FramePosition((column - 1) // tile.width, (row - 1) // tile.height, z, path)
        )
    return tuple(positions)


def _pixels(data: Mapping[str, Any], rows: int, columns: int) -> PixelDescription:
    return PixelDescription(
        rows=rows,
        columns=columns,
        samples_per_pixel=_int(data, "00280002", 1),
        bits_allocated=_int(data, "00280100", 8),
        pixel_representation=_int(data, "00280103", 0),
        planar_configuration=_int(data, "00280006", 0),
    )


def instance_facts(data: Mapping[str, Any], transfer_syntax_uid: str) -> InstanceFacts | None:
    """The pyramid facts of one instance's DICOM JSON; None if it is not a tiled image.

    Only images with a total pixel matrix (PS3.3 C.8.12.4) count: CT slices and other
    single images in the same series are left out.
    """
    rows, columns = _int(data, "00280010", 0), _int(data, "00280011", 0)
    if rows <= 0 or columns <= 0 or "00480006" not in data:
        return None
    tile = Size(columns, rows)
    total = Size(_int(data, "00480006", columns), _int(data, "00480007", rows))
    organization = str(_first(data, "00209311", "") or "").upper()
    positions = _frame_positions(data, tile) if organization == TILED_SPARSE else None
    return InstanceFacts(
        sop_instance_uid=str(_first(data, "00080018", "")),
        image_type=tuple(str(v).upper() for v in _values(data, "00080008")),
        total_size=total,
        tile_size=tile,
        number_of_frames=max(1, _int(data, "00280008", 1)),
        transfer_syntax_uid=transfer_syntax_uid,
        pixel_spacing=_pixel_spacing(data),
        photometric_interpretation=str(_first(data, "00280004", "RGB")).strip(),
        pixels=_pixels(data, rows, columns),
        bits_stored=_int(data, "00280101", 8),
        optical_paths=_optical_paths(data),
        focal_planes=_focal_planes(data),
        dimension_organization=organization,
        pyramid_uid=_first(data, "00080019"),
        frame_positions=positions,
        concatenation_uid=_first(data, "00209161"),
        concatenation_frame_offset=_int(data, "00209228", 0),
    )


@dataclass(frozen=True)
class OpticalPath:
    """An optical path as a viewer names it."""

    identifier: str
    description: str


@dataclass(frozen=True)
class SlideInfo:
    """Patient, study, series and slide context shown next to the image."""

    patient_name: str = ""
    patient_id: str = ""
    patient_birth_date: str = ""
    patient_sex: str = ""
    study_date: str = ""
    study_time: str = ""
    study_id: str = ""
    accession_number: str = ""
    study_description: str = ""
    referring_physician: str = ""
    series_description: str = ""
    series_number: str = ""
    modality: str = ""
    manufacturer: str = ""
    model: str = ""
    container_id: str = ""
    specimens: tuple[str, ...] = ()
    objective_power: float | None = None
    optical_paths: tuple[OpticalPath, ...] = ()


def slide_info(data: Mapping[str, Any]) -> SlideInfo:
    """Context of a slide from one of its instances' DICOM JSON."""
    specimens = []
    for item in _values(data, "00400560"):
        name = _text(item, "00400551")
        description = _text(item, "00400600")
        specimens.append(f"{name}: {description}" if name and description else name or description)
    paths = tuple(
        OpticalPath(_text(item, _OPTICAL_PATH_ID), _text(item, "00480107"))
        for item in _values(data, _OPTICAL_PATH_SEQ)
    )
    powers = [_first(item, "00480112") for item in _values(data, _OPTICAL_PATH_SEQ)]
    power = next((float(p) for p in powers if p not in (None, "")), None)
    return SlideInfo(
        patient_name=_text(data, "00100010"),
        patient_id=_text(data, "00100020"),
        patient_birth_date=_text(data, "00100030"),
        patient_sex=_text(data, "00100040"),
        study_date=_text(data, "00080020"),
        study_time=_text(data, "00080030"),
        study_id=_text(data, "00200010"),
        accession_number=_text(data, "00080050"),
        study_description=_text(data, "00081030"),
        referring_physician=_text(data, "00080090"),
        series_description=_text(data, "0008103E"),
        series_number=_text(data, "00200011"),
        modality=_text(data, "00080060"),
        manufacturer=_text(data, "00080070"),
        model=_text(data, "00081090"),
        container_id=_text(data, "00400512"),
        specimens=tuple(s for s in specimens if s),
        objective_power=power,
        optical_paths=paths,
    )


@dataclass(frozen=True)
class Slide:
    """A stored series as a whole-slide image: pyramids, associated images, context."""

    study_uid: str
    series_uid: str
    info: SlideInfo
    records: Mapping[str, InstanceRecord]
    """Stored instances by SOP Instance UID."""
    facts: Mapping[str, InstanceFacts]
    pyramids: tuple[Pyramid, ...]
    associated: Mapping[str, InstanceFacts]
    version: str
    """Changes whenever an instance of the series is added, replaced or removed."""

    @property
    def pyramid(self) -> Pyramid:
        """The main pyramid (largest level 0); NotFound if the series has none."""
        if not self.pyramids:
            raise NotFound(f"series {self.series_uid} has no tiled VOLUME images")
        return self.pyramids[0]


def build_slide(records: list[InstanceRecord], texts: list[str]) -> Slide:
    """A :class:`Slide` from the stored records of one series and their metadata JSON."""
    facts: dict[str, InstanceFacts] = {}
    info: SlideInfo | None = None
    info_from_volume = False
    for record, text in zip(records, texts, strict=True):
        data = json.loads(text)
        found = instance_facts(data, record.transfer_syntax_uid)
        if found is None:
            continue
        volume = found.flavor in ("VOLUME", "")
        if info is None or (volume and not info_from_volume):
            # The context comes from a VOLUME image when there is one (objective power).
            info, info_from_volume = slide_info(data), volume
        facts[record.sop_instance_uid] = found
    digest = hashlib.sha256()
    for record in sorted(records, key=lambda r: r.sop_instance_uid):
        digest.update(f"{record.sop_instance_uid}:{record.sha256};".encode())
    first = records[0]
    return Slide(
        study_uid=first.study_uid,
        series_uid=first.series_uid,
        info=info or SlideInfo(),
        records={r.sop_instance_uid: r for r in records},
        facts=facts,
        pyramids=tuple(build_pyramids(facts.values())),
        associated=associated_images(facts.values()),
        version=digest.hexdigest()[:16],
    )


@dataclass
class _Entry:
    slide: Slide
    signature: tuple[Any, ...]
    checked: float


class SlideCache:
    """Built slides by Series Instance UID: an LRU of ``capacity`` entries, thread-safe.

    Memory: ``capacity`` slides; a slide holds its instances' facts (for TILED_SPARSE one
    small record per frame), not pixel data.
    """

    def __init__(self, capacity: int = 64, recheck_seconds: float = 30.0) -> None:
        self._capacity = capacity
        self._recheck = recheck_seconds
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def get(
        self,
        series_uid: str,
        signature: Callable[[], tuple[Any, ...]],
        build: Callable[[], Slide],
    ) -> Slide:
        """The cached slide, revalidated by ``signature()`` when old, else ``build()``."""
        now = time.monotonic()
        with self._lock:
            entry = self._entries.get(series_uid)
            if entry is not None:
                self._entries.move_to_end(series_uid)
                if now - entry.checked < self._recheck:
                    return entry.slide
        current = signature()
        if entry is not None and entry.signature == current:
            entry.checked = now
            return entry.slide
        slide = build()
        with self._lock:
            self._entries[series_uid] = _Entry(slide, current, now)
            self._entries.move_to_end(series_uid)
            while len(self._entries) > self._capacity:
                self._entries.popitem(last=False)
        return slide

    def peek(self, series_uid: str) -> Slide | None:
        """The cached slide if it needs no revalidation now, else None; never queries."""
        with self._lock:
            entry = self._entries.get(series_uid)
            if entry is None or time.monotonic() - entry.checked >= self._recheck:
                return None
            self._entries.move_to_end(series_uid)
            return entry.slide

    def forget(self, series_uid: str) -> None:
        """Drop a series (after an ingest into it or a delete from it)."""
        with self._lock:
            self._entries.pop(series_uid, None)

    def expire_all(self) -> None:
        """Make every slide be revalidated on its next use (another process changed the
        index, and any series may have gained or lost instances)."""
        with self._lock:
            for entry in self._entries.values():
                entry.checked = float("-inf")
