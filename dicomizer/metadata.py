"""Patient, study, series and specimen metadata: flags > ``--metadata`` DICOM JSON > defaults.

The DICOM JSON model file (PS3.18 Annex F) holds top-level attributes to put in every
instance. Attributes that describe the pixels or the pyramid are computed by the converter
and cannot be set from the file (:data:`PROTECTED`).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.dataset import Dataset

from wsi.dicom.uids import validate_uid
from wsi.errors import InvalidInput


@dataclass(frozen=True)
class SlideMetadata:
    """Metadata given by the user; ``None`` means "not given" (a default is used)."""

    patient_id: str | None = None
    patient_name: str | None = None
    patient_birth_date: str | None = None
    patient_sex: str | None = None
    accession_number: str | None = None
    study_instance_uid: str | None = None
    study_id: str | None = None
    study_description: str | None = None
    series_instance_uid: str | None = None
    series_description: str | None = None
    series_number: int | None = None
    container_identifier: str | None = None
    specimen_identifier: str | None = None
    specimen_description: str | None = None
    extra: Dataset | None = dataclasses.field(default=None, compare=False, repr=False)
    """Further top-level attributes from the JSON file (protected ones removed)."""


_KEYWORDS = {
    "patient_id": "PatientID",
    "patient_name": "PatientName",
    "patient_birth_date": "PatientBirthDate",
    "patient_sex": "PatientSex",
    "accession_number": "AccessionNumber",
    "study_instance_uid": "StudyInstanceUID",
    "study_id": "StudyID",
    "study_description": "StudyDescription",
    "series_instance_uid": "SeriesInstanceUID",
    "series_description": "SeriesDescription",
    "series_number": "SeriesNumber",
    "container_identifier": "ContainerIdentifier",
}

PROTECTED = frozenset({
    "SOPClassUID", "SOPInstanceUID", "ImageType", "InstanceNumber", "FrameOfReferenceUID",
    "PyramidUID", "Rows", "Columns", "SamplesPerPixel", "PhotometricInterpretation",
    "PlanarConfiguration", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation",
    "NumberOfFrames", "TotalPixelMatrixColumns", "TotalPixelMatrixRows",
    "TotalPixelMatrixFocalPlanes", "ImagedVolumeWidth", "ImagedVolumeHeight",
    "ImagedVolumeDepth", "DimensionOrganizationType", "DimensionOrganizationSequence",
    "DimensionIndexSequence", "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence", "ExtendedOffsetTable", "ExtendedOffsetTableLengths",
    "PixelData", "LossyImageCompression", "LossyImageCompressionRatio",
    "LossyImageCompressionMethod", "SpecificCharacterSet", "NumberOfOpticalPaths",
    "BurnedInAnnotation", "SpecimenLabelInImage",
})
"""Attributes the converter computes; a ``--metadata`` file cannot override them."""


def load_metadata_json(path: Path) -> Dataset:
    """Read a DICOM JSON model object (one dataset) from ``path``."""
    try:
        content = json.loads(Path(path).read_text(encoding="utf-8"))
        if isinstance(content, list) and len(content) == 1:
            content = content[0]
        if not isinstance(content, dict):
            raise ValueError("expected one JSON object")
        return Dataset.from_json(content)
    except (OSError, ValueError, TypeError, KeyError) as exc:
        raise InvalidInput(f"metadata file {path}: not a DICOM JSON dataset ({exc})") from None


def merge(flags: SlideMetadata, document: Dataset | None) -> SlideMetadata:
    """Flags win over the JSON document; what the document holds beyond the flag fields
    (and beyond :data:`PROTECTED`) is kept in ``extra``."""
    if document is None:
        return _validated(flags)
    values: dict[str, Any] = {}
    for field, keyword in _KEYWORDS.items():
        if getattr(flags, field) is None and keyword in document:
            value = document[keyword].value
            values[field] = int(value) if field == "series_number" else str(value)
    extra = Dataset()
    for element in document:
        if element.keyword not in PROTECTED and element.keyword not in _KEYWORDS.values():
            extra.add(element)
    return _validated(dataclasses.replace(flags, **values, extra=extra))


_ONE_SLIDE = {
    "series_instance_uid": "Series Instance UID (--series-uid)",
    "container_identifier": "Container Identifier (--container-id)",
    "specimen_identifier": "Specimen Identifier (--specimen-id)",
}
"""Values that name one slide: each conversion writes one slide's instances into a series of
their own, and one container or specimen identifier on several slides would make viewers
take them for one slide."""


def check_shareable(metadata: SlideMetadata) -> None:
    """Raise :class:`InvalidInput` if ``metadata`` (flags and JSON document) sets a value
    that names one slide, so it cannot be given for several slides at once."""
    merged = merge(metadata, metadata.extra)
    given = [label for field, label in _ONE_SLIDE.items() if getattr(merged, field)]
    if metadata.extra is not None and "SpecimenDescriptionSequence" in metadata.extra:
        # The document's sequence replaces the one built per slide (its specimen UID too).
        given.append("Specimen Description Sequence (--metadata)")
    if given:
        raise InvalidInput(f"{', '.join(given)} names one slide; give it when converting "
                           "one slide at a time")


def _validated(metadata: SlideMetadata) -> SlideMetadata:
    for field in ("study_instance_uid", "series_instance_uid"):
        value = getattr(metadata, field)
        if value is not None:
            validate_uid(value, _KEYWORDS[field])
    return metadata
