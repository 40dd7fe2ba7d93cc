"""THE attribute registry: which attributes are indexed, at which level, and how.

One table drives the index schema, ingest extraction, QIDO-RS and C-FIND matching and the
attributes returned by default. The required keys follow PS3.18 Table 10.6.1-5 (QIDO-RS
study/series/instance matching and return keys) and PS3.4 C.6.1.1 (C-FIND); the WSI keys are
those viewers need (Slim, dicom-microscopy-viewer, wsidicom's web client).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

from pydicom.datadict import keyword_for_tag, tag_for_keyword


class Level(IntEnum):
    """Information-model levels, top to bottom."""

    PATIENT = 0
    STUDY = 1
    SERIES = 2
    INSTANCE = 3


Extractor = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class Attribute:
    """One indexed attribute."""

    keyword: str
    vr: str
    level: Level
    multi: bool = False
    """Multi-valued: stored backslash-joined and matched against any of its values."""
    default_return: bool = True
    """Returned by QIDO-RS without ``includefield`` at its own level and below."""
    extractor: Extractor | None = None
    """How to find the value when it is not a top-level element (nested sequences)."""

    @property
    def tag(self) -> int:
        """The attribute tag as an int."""
        tag = tag_for_keyword(self.keyword)
        assert tag is not None, self.keyword
        return tag

    @property
    def tag_hex(self) -> str:
        """The tag as 8 upper-case hex digits, the DICOM JSON key."""
        return f"{self.tag:08X}"

    @property
    def column(self) -> str:
        """The index column name."""
        return self.keyword.lower()

    @property
    def is_integer(self) -> bool:
        """Stored in an integer column."""
        return self.vr in {"US", "UL", "SS", "SL", "IS"} and not self.multi


JsonDataset = dict[str, Any]
"""A data set in the DICOM JSON model (PS3.18 F.2), as stored for WADO-RS metadata."""


def _values(data: JsonDataset, keyword: str) -> list[Any] | None:
    element = data.get(f"{tag_for_keyword(keyword):08X}")
    return element.get("Value") if element else None


def _nested(*path: str) -> Extractor:
    """Extract ``path[-1]`` from the first item of each sequence on the way down."""

    def extract(data: JsonDataset) -> list[Any] | None:
        current = data
        for keyword in path[:-1]:
            items = _values(current, keyword)
            if not items:
                return None
            current = items[0]
        return _values(current, path[-1])

    return extract


def _pixel_spacing(data: JsonDataset) -> list[Any] | None:
    """Pixel spacing, from the Pixel Measures functional group of WSI (PS3.3 C.7.6.16.2.1)."""
    nested = _nested("SharedFunctionalGroupsSequence", "PixelMeasuresSequence", "PixelSpacing")
    return nested(data) or _values(data, "PixelSpacing")


def _optical_path_ids(data: JsonDataset) -> list[Any] | None:
    """All OpticalPathIdentifier values of the Optical Path Sequence."""
    ids = [(_values(item, "OpticalPathIdentifier") or [None])[0]
           for item in _values(data, "OpticalPathSequence") or []]
    return [i for i in ids if i] or None


P, ST, SE, IN = Level.PATIENT, Level.STUDY, Level.SERIES, Level.INSTANCE

ATTRIBUTES: tuple[Attribute, ...] = (
    Attribute("PatientID", "LO", P),
    Attribute("IssuerOfPatientID", "LO", P),
    Attribute("PatientName", "PN", P),
    Attribute("PatientBirthDate", "DA", P),
    Attribute("PatientSex", "CS", P),
    Attribute("StudyInstanceUID", "UI", ST),
    Attribute("StudyDate", "DA", ST),
    Attribute("StudyTime", "TM", ST),
    Attribute("AccessionNumber", "SH", ST),
    Attribute("ReferringPhysicianName", "PN", ST),
    Attribute("StudyID", "SH", ST),
    Attribute("StudyDescription", "LO", ST),
    Attribute("TimezoneOffsetFromUTC", "SH", ST),
    Attribute("SeriesInstanceUID", "UI", SE),
    Attribute("Modality", "CS", SE),
    Attribute("SeriesNumber", "IS", SE),
    Attribute("SeriesDescription", "LO", SE),
    Attribute("SeriesDate", "DA", SE, default_return=False),
    Attribute("BodyPartExamined", "CS", SE, default_return=False),
    Attribute("PerformedProcedureStepStartDate", "DA", SE),
    Attribute("PerformedProcedureStepStartTime", "TM", SE),
    Attribute("SOPInstanceUID", "UI", IN),
    Attribute("SOPClassUID", "UI", IN),
    Attribute("InstanceNumber", "IS", IN),
    Attribute("Rows", "US", IN),
    Attribute("Columns", "US", IN),
    Attribute("BitsAllocated", "US", IN),
    Attribute("NumberOfFrames", "IS", IN),
    Attribute("ContentDate", "DA", IN, default_return=False),
    Attribute("ContentTime", "TM", IN, default_return=False),
    Attribute("AcquisitionDateTime", "DT", IN, default_return=False),
    Attribute("ImageType", "CS", IN, multi=True),
    Attribute("TotalPixelMatrixColumns", "UL", IN),
    Attribute("TotalPixelMatrixRows", "UL", IN),
    Attribute("PyramidUID", "UI", IN),
    Attribute("ContainerIdentifier", "LO", IN),
    Attribute("FrameOfReferenceUID", "UI", IN, default_return=False),
    Attribute("DimensionOrganizationType", "CS", IN, default_return=False),
    Attribute("SamplesPerPixel", "US", IN, default_return=False),
    Attribute("PhotometricInterpretation", "CS", IN, default_return=False),
    Attribute(
        "OpticalPathIdentifier", "SH", IN, multi=True, extractor=_optical_path_ids
    ),
    Attribute("PixelSpacing", "DS", IN, multi=True, extractor=_pixel_spacing),
)

BY_KEYWORD: dict[str, Attribute] = {a.keyword: a for a in ATTRIBUTES}
BY_TAG: dict[int, Attribute] = {a.tag: a for a in ATTRIBUTES}

UID_KEYS: dict[Level, str] = {
    Level.PATIENT: "PatientID",
    Level.STUDY: "StudyInstanceUID",
    Level.SERIES: "SeriesInstanceUID",
    Level.INSTANCE: "SOPInstanceUID",
}


def at_level(level: Level) -> Iterator[Attribute]:
    """The attributes stored in ``level``'s table."""
    return (a for a in ATTRIBUTES if a.level == level)


def keyword_of(key: str) -> str | None:
    """Resolve a QIDO/C-FIND key given as keyword or 8-hex-digit tag to a keyword."""
    if len(key) == 8 and all(c in "0123456789abcdefABCDEF" for c in key):
        return keyword_for_tag(int(key, 16)) or None
    return key if tag_for_keyword(key) is not None else None


def _as_text(value: Any) -> str:
    if isinstance(value, dict):  # a person name: its component groups joined by "="
        groups = [value.get(k, "") for k in ("Alphabetic", "Ideographic", "Phonetic")]
        return "=".join(groups).rstrip("=")
    return str(value)


def extract(attribute: Attribute, data: JsonDataset) -> Any:
    """The index value of ``attribute`` in a JSON data set: str, int, or None when empty."""
    values = attribute.extractor(data) if attribute.extractor else _values(
        data, attribute.keyword)
    values = [v for v in values or [] if v is not None and v != ""]
    if not values:
        return None
    if attribute.multi:
        return "\\".join(_as_text(v) for v in values)
    if attribute.is_integer:
        try:
            return int(values[0])
        except (TypeError, ValueError):
            return None
    return _as_text(values[0]).strip("\x00 ")
