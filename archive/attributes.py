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
from pydicom.dataset import Dataset


class Level(IntEnum):
    """Information-model levels, top to bottom."""

    PATIENT = 0
    STUDY = 1
    SERIES = 2
    INSTANCE = 3


Extractor = Callable[[Dataset], Any]


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


def _nested(*path: str) -> Extractor:
    """Extract ``path[-1]`` from the first item of each sequence on the way down."""

    def extract(ds: Dataset) -> Any:
        current: Any = ds
        for keyword in path[:-1]:
            seq = current.get(keyword)
            if not seq:
                return None
            current = seq[0]
        return current.get(path[-1])

    return extract


def _pixel_spacing(ds: Dataset) -> Any:
    """Pixel spacing, from the Pixel Measures functional group of WSI (PS3.3 C.7.6.16.2.1)."""
    value = _nested("SharedFunctionalGroupsSequence", "PixelMeasuresSequence", "PixelSpacing")(ds)
    return value if value is not None else ds.get("PixelSpacing")


def _optical_path_ids(ds: Dataset) -> Any:
    """All OpticalPathIdentifier values of the Optical Path Sequence."""
    ids = [item.get("OpticalPathIdentifier") for item in ds.get("OpticalPathSequence", [])]
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


def extract(attribute: Attribute, ds: Dataset) -> Any:
    """The index value of ``attribute`` in ``ds``: str, int, or None when absent/empty."""
    raw = attribute.extractor(ds) if attribute.extractor else ds.get(attribute.keyword)
    if raw is None:
        return None
    value = raw.value if hasattr(raw, "value") else raw
    if value is None or value == "":
        return None
    if attribute.multi:
        values = [value] if isinstance(value, str | bytes | int | float) else list(value)
        return "\\".join(str(v) for v in values)
    if attribute.is_integer:
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return str(value).strip("\x00 ")
