"""CT (and, for variety, MR) image series and multi-patient collections for tests and benchmarks.

Instances are single-frame, 16-bit (12 stored) MONOCHROME2, Explicit VR Little Endian, with
a synthetic torso phantom as pixel data. :func:`write_ct_series` writes one realistic CT
series (512 x 512, about 0.5 MB per instance); :func:`write_ct_studies` writes many small
instances over several patients and studies with varied identifying attributes, for query
and indexing tests.

Writing is fast because the header of a series is encoded once: only the elements that differ
per instance (SOP Instance UID, Instance Number, Image Position, Slice Location, Pixel Data)
and the file meta are encoded per file.

Run ``python -m samples.ct_series --help`` for the command line.
"""

from __future__ import annotations

import argparse
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset
from pydicom.tag import Tag
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from samples._common import (
    dicom_date,
    dicom_time,
    encode_explicit_le,
    file_meta,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.4"
CHARACTER_SET = "ISO_IR 192"

_SOP_INSTANCE_UID = 0x00080018
_INSTANCE_NUMBER = 0x00200013
_IMAGE_POSITION = 0x00200032
_SLICE_LOCATION = 0x00201041
_PIXEL_DATA = 0x7FE00010
_VARYING_TAGS = (_SOP_INSTANCE_UID, _INSTANCE_NUMBER, _IMAGE_POSITION, _SLICE_LOCATION, _PIXEL_DATA)

_FIELD_OF_VIEW_MM = 358.4
_LONG_VRS = frozenset(
    {"OB", "OD", "OF", "OL", "OV", "OW", "SQ", "SV", "UC", "UN", "UR", "UT", "UV"}
)

# Tissue classes of the phantom and their value per modality (CT in HU, MR in signal units).
_AIR, _FAT, _SOFT, _LUNG, _BONE, _MARROW, _BLOOD, _TABLE = range(8)
_CT_HU = np.array([-1000, -100, 40, -850, 1000, 300, 50, 200], dtype=np.float32)
_MR_SIGNAL = np.array([0, 900, 450, 25, 40, 620, 720, 0], dtype=np.float32)

_FAMILY_NAMES = (
    "Smith",
    "García",
    "Müller",
    "Nguyen",
    "Kowalski",
    "Okafor",
    "Rossi",
    "Jensen",
    "Tanaka",
    "Dubois",
    "Silva",
    "O'Brien",
    "Ødegård",
    "Novak",
    "Haddad",
    "Lee",
)
_GIVEN_NAMES = (
    "Anna",
    "José",
    "Jürgen",
    "Mai",
    "Piotr",
    "Chidi",
    "Giulia",
    "Lars",
    "Yuki",
    "Émile",
    "Ana",
    "Siobhan",
    "Åse",
    "Jan",
    "Layla",
    "Min",
)
_REFERRING = ("House^Gregory", "Grey^Meredith", "Kildare^James", "Quinn^Michaela", "")
_STUDIES = {
    "CT": (
        ("CT CHEST W CONTRAST", "CHEST"),
        ("CT ABDOMEN PELVIS W CONTRAST", "ABDOMEN"),
        ("CT HEAD WO CONTRAST", "HEAD"),
        ("CT CHEST ABDOMEN PELVIS", "CHEST"),
    ),
    "MR": (
        ("MR BRAIN W WO CONTRAST", "BRAIN"),
        ("MR LUMBAR SPINE WO CONTRAST", "LSPINE"),
        ("MR KNEE LEFT", "KNEE"),
        ("MR ABDOMEN", "ABDOMEN"),
    ),
}
_PAIRED_BODY_PARTS = frozenset({"KNEE", "HIP", "SHOULDER", "BREAST", "HAND", "FOOT"})
# Acquisition (CT Image / MR Image modules) and display (VOI LUT, rescale) attributes of the
# phantom's scanners; a modality other than CT gets the MR ones.
_MODALITY_ATTRIBUTES: dict[str, dict[str, object]] = {
    "CT": {
        "KVP": 120,
        "DataCollectionDiameter": 500,
        "ReconstructionDiameter": _FIELD_OF_VIEW_MM,
        "DistanceSourceToDetector": 1085.6,
        "DistanceSourceToPatient": 595,
        "GantryDetectorTilt": 0,
        "TableHeight": 160,
        "RotationDirection": "CW",
        "ExposureTime": 500,
        "XRayTubeCurrent": 250,
        "Exposure": 125,
        "FilterType": "BODY FILTER",
        "GeneratorPower": 30,
        "FocalSpots": 1.2,
        "ConvolutionKernel": "STANDARD",
        "RevolutionTime": 0.5,
        "SingleCollimationWidth": 0.625,
        "TotalCollimationWidth": 40,
        "SpiralPitchFactor": 0.984,
        "WindowCenter": [40, -600],
        "WindowWidth": [400, 1500],
        "WindowCenterWidthExplanation": ["SOFT TISSUE", "LUNG"],
        "RescaleIntercept": -1024,
        "RescaleSlope": 1,
        "RescaleType": "HU",
    },
    "MR": {
        "ScanningSequence": "SE",
        "SequenceVariant": "SK",
        "ScanOptions": "",
        "MRAcquisitionType": "2D",
        "SequenceName": "se2d1",
        "RepetitionTime": 500,
        "EchoTime": 15,
        "NumberOfAverages": 1,
        "ImagingFrequency": 63.87,
        "ImagedNucleus": "1H",
        "EchoNumbers": 1,
        "MagneticFieldStrength": 1.5,
        "EchoTrainLength": 1,
        "FlipAngle": 90,
        "WindowCenter": 500,
        "WindowWidth": 1000,
    },
}
_SERIES = {
    "CT": ("Axial 1.0 soft tissue", "Axial 1.0 lung", "Axial 3.0 bone", "Axial 5.0 standard"),
    "MR": ("Ax T1 SE", "Ax T2 TSE", "Ax FLAIR", "Ax T1 post contrast"),
}


def _pad(value: bytes, vr: str) -> bytes:
    if len(value) % 2:
        return value + (b"\x00" if vr in ("UI", "OB") else b" ")
    return value


def _element(tag: int, vr: str, value: bytes) -> bytes:
    """Encode one Explicit VR Little Endian data element (value already in bytes)."""
    value = _pad(value, vr)
    if vr in _LONG_VRS:
        return struct.pack("<HH2sxxI", tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value
    return struct.pack("<HH2sH", tag >> 16, tag & 0xFFFF, vr.encode(), len(value)) + value


def _ds(value: float) -> str:
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


class SeriesWriter:
    """Writes the instances of one series, encoding the shared header only once.

    ``template`` holds every attribute of the series' instances except SOP Instance UID,
    Instance Number, Image Position (Patient), Slice Location and Pixel Data; those are
    passed to :meth:`write` and encoded by hand into the gaps of the pre-encoded header.
    """

    def __init__(self, template: Dataset) -> None:
        """Pre-encode the static elements of ``template`` between the per-instance ones."""
        present = [t for t in _VARYING_TAGS if Tag(t) in template]
        if present:
            raise ValueError(f"template must not contain per-instance tags {present}")
        self._sop_class_uid = str(template.SOPClassUID)
        # File meta is encoded by hand as well: through pydicom it costs more than the rest.
        meta = file_meta(self._sop_class_uid, "1.2", ExplicitVRLittleEndian)
        del meta.MediaStorageSOPInstanceUID
        self._meta_before_uid = encode_explicit_le(
            Dataset({e.tag: e for e in meta if e.tag < 0x00020003})
        )
        self._meta_after_uid = encode_explicit_le(
            Dataset({e.tag: e for e in meta if e.tag > 0x00020003})
        )
        charset = template.get("SpecificCharacterSet", "iso8859")
        tags = sorted(template.keys())
        self._segments: list[bytes] = []
        for low, high in pairwise((-1, *_VARYING_TAGS, 0x100000000)):
            segment = Dataset()
            for tag in tags:
                if low < tag < high:
                    segment.add(template[tag])
            self._segments.append(encode_explicit_le(segment, charset))

    def write(
        self,
        path: Path,
        *,
        sop_instance_uid: str,
        instance_number: int,
        image_position: Sequence[float],
        slice_location: float,
        pixels: np.ndarray,
    ) -> Path:
        """Write one instance to ``path`` and return ``path``."""
        uid = sop_instance_uid.encode("ascii")
        meta_body = b"".join(
            (self._meta_before_uid, _element(0x00020003, "UI", uid), self._meta_after_uid)
        )
        meta = b"".join(
            (
                b"\x00" * 128,
                b"DICM",
                _element(0x00020000, "UL", struct.pack("<I", len(meta_body))),
                meta_body,
            )
        )
        varying = (
            _element(_SOP_INSTANCE_UID, "UI", uid),
            _element(_INSTANCE_NUMBER, "IS", str(instance_number).encode("ascii")),
            _element(
                _IMAGE_POSITION, "DS", "\\".join(_ds(v) for v in image_position).encode("ascii")
            ),
            _element(_SLICE_LOCATION, "DS", _ds(slice_location).encode("ascii")),
        )
        pixel_bytes = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
        pixel_header = struct.pack("<HH2sxxI", 0x7FE0, 0x0010, b"OW", len(pixel_bytes))
        parts = [meta]
        for segment, element in zip(self._segments[:-1], (*varying, pixel_header), strict=True):
            parts += (segment, element)
        parts += (pixel_bytes, self._segments[-1])
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fp:
            fp.writelines(parts)
        return path


class _Phantom:
    """Synthetic axial torso: label images along z, mapped to CT HU or MR signal."""

    def __init__(self, rows: int, columns: int, seed: int) -> None:
        y, x = np.mgrid[-1 : 1 : rows * 1j, -1 : 1 : columns * 1j].astype(np.float32)
        self._x, self._y = x, y
        body = (x / 0.86) ** 2 + (y / 0.62) ** 2
        self._base = np.full((rows, columns), _AIR, dtype=np.uint8)
        self._base[(y > 0.72) & (y < 0.78) & (np.abs(x) < 0.95)] = _TABLE
        self._base[body < 1.0] = _FAT
        self._base[body < 0.82] = _SOFT
        spine = x**2 + (y - 0.4) ** 2
        self._base[spine < 0.012] = _BONE
        self._base[spine < 0.006] = _MARROW
        rng = np.random.default_rng(seed)
        self._noise = rng.normal(0.0, 1.0, size=(4, rows, columns)).astype(np.float32)

    def labels(self, t: float) -> np.ndarray:
        """Label image at relative position ``t`` in [0, 1] from head to feet."""
        labels = self._base.copy()
        x, y = self._x, self._y
        lung_scale = max(0.0, np.sin(np.pi * min(1.0, t / 0.55)))
        if lung_scale > 0.05:
            for cx in (-0.4, 0.4):
                lung = ((x - cx) / (0.27 * lung_scale)) ** 2 + (
                    (y + 0.02) / (0.42 * lung_scale)
                ) ** 2
                labels[lung < 1.0] = _LUNG
        heart_scale = max(0.0, np.sin(np.pi * (t - 0.2) / 0.3)) if 0.2 < t < 0.5 else 0.0
        if heart_scale > 0.05:
            heart = ((x - 0.08) / (0.24 * heart_scale)) ** 2 + (
                (y - 0.02) / (0.2 * heart_scale)
            ) ** 2
            labels[heart < 1.0] = _BLOOD
        aorta = (x + 0.08) ** 2 + (y - 0.22) ** 2
        labels[aorta < 0.004] = _BLOOD
        return labels

    def image(self, t: float, index: int, modality: str) -> np.ndarray:
        """Stored pixel values (uint16, 12 bits used) for slice ``index`` at position ``t``."""
        if modality == "CT":
            values, sigma, offset = _CT_HU, 12.0, 1024.0
        else:
            values, sigma, offset = _MR_SIGNAL, 18.0, 0.0
        noise = np.roll(self._noise[index % 4], index // 4, axis=0)
        image = values[self.labels(t)] + noise * sigma + offset
        return np.clip(image, 0, 4095).astype(np.uint16)


@dataclass(frozen=True)
class _SeriesSpec:
    modality: str
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    series_number: int
    series_description: str
    study_description: str
    body_part: str
    patient_id: str
    patient_name: str
    patient_birth_date: str
    patient_sex: str
    study_datetime: datetime
    accession_number: str
    study_id: str
    referring_physician: str
    rows: int
    columns: int
    slice_thickness: float


def _template(spec: _SeriesSpec, count: int) -> Dataset:
    when = spec.study_datetime
    series_time = when + timedelta(minutes=2 * spec.series_number)
    age = max(0, when.year - int(spec.patient_birth_date[:4]))
    spacing = _FIELD_OF_VIEW_MM / spec.columns
    ds = Dataset()
    ds.SpecificCharacterSet = CHARACTER_SET
    # CT defines AXIAL for value 3; MR has no defined terms there, OTHER is the neutral one.
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL" if spec.modality == "CT" else "OTHER"]
    ds.InstanceCreationDate = dicom_date(series_time)
    ds.InstanceCreationTime = dicom_time(series_time)
    ds.SOPClassUID = CT_IMAGE_STORAGE if spec.modality == "CT" else MR_IMAGE_STORAGE
    ds.StudyDate = dicom_date(when)
    ds.SeriesDate = dicom_date(series_time)
    ds.AcquisitionDate = dicom_date(series_time)
    ds.ContentDate = dicom_date(series_time)
    ds.StudyTime = dicom_time(when)
    ds.SeriesTime = dicom_time(series_time)
    ds.AcquisitionTime = dicom_time(series_time)
    ds.ContentTime = dicom_time(series_time)
    ds.AccessionNumber = spec.accession_number
    ds.Modality = spec.modality
    ds.Manufacturer = "WSI Archive Samples"
    ds.InstitutionName = "Sample General Hospital"
    ds.ReferringPhysicianName = spec.referring_physician
    ds.StationName = f"{spec.modality}01"
    ds.StudyDescription = spec.study_description
    ds.SeriesDescription = spec.series_description
    ds.ManufacturerModelName = "Synthetic CT" if spec.modality == "CT" else "Synthetic MR"
    ds.PatientName = spec.patient_name
    ds.PatientID = spec.patient_id
    ds.PatientBirthDate = spec.patient_birth_date
    ds.PatientSex = spec.patient_sex
    ds.PatientAge = f"{min(age, 999):03d}Y"
    ds.PatientWeight = 72.5
    ds.BodyPartExamined = spec.body_part
    ds.SliceThickness = spec.slice_thickness
    ds.DeviceSerialNumber = f"SYN-{spec.modality}-0001"
    ds.SoftwareVersions = "1.0"
    ds.PatientPosition = "HFS"
    for keyword, value in _MODALITY_ATTRIBUTES["CT" if spec.modality == "CT" else "MR"].items():
        setattr(ds, keyword, value)
    if spec.modality != "CT":
        ds.SpacingBetweenSlices = spec.slice_thickness
    ds.StudyInstanceUID = spec.study_uid
    ds.SeriesInstanceUID = spec.series_uid
    if spec.body_part in _PAIRED_BODY_PARTS:
        ds.Laterality = "L"
    ds.StudyID = spec.study_id
    ds.SeriesNumber = spec.series_number
    ds.AcquisitionNumber = 1
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.FrameOfReferenceUID = spec.frame_of_reference_uid
    ds.PositionReferenceIndicator = ""
    ds.ImagesInAcquisition = count
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows = spec.rows
    ds.Columns = spec.columns
    ds.PixelSpacing = [_ds(spacing), _ds(spacing)]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    return ds


def _write_series(folder: Path, spec: _SeriesSpec, count: int, seed: int) -> list[Path]:
    writer = SeriesWriter(_template(spec, count))
    phantom = _Phantom(spec.rows, spec.columns, seed)
    spacing = _FIELD_OF_VIEW_MM / spec.columns
    x0 = -spacing * (spec.columns - 1) / 2
    y0 = -spacing * (spec.rows - 1) / 2
    paths = []
    for index in range(count):
        z = -index * spec.slice_thickness
        paths.append(
            writer.write(
                folder / f"IM{index + 1:05d}.dcm",
                sop_instance_uid=generate_uid(),
                instance_number=index + 1,
                image_position=(x0, y0, z),
                slice_location=z,
                pixels=phantom.image(index / max(1, count - 1), index, spec.modality),
            )
        )
    return paths


def write_ct_series(
    folder: Path,
    count: int = 500,
    *,
    rows: int = 512,
    columns: int = 512,
    study_uid: str | None = None,
    series_uid: str | None = None,
    patient_id: str = "CT-SAMPLE",
    patient_name: str = "Sample^CT",
    seed: int = 0,
) -> list[Path]:
    """Write one axial CT series of ``count`` instances into ``folder`` (``IM00001.dcm`` ...).

    CT Image Storage, Explicit VR Little Endian, ``rows`` x ``columns`` 16-bit MONOCHROME2
    (12 bits stored, RescaleIntercept -1024), 1 mm slices head to feet; 512 x 512 instances
    are about 0.5 MB. UIDs left as ``None`` are generated. Returns the paths in slice order.
    """
    when = datetime(2024, 3, 14, 9, 26, 53)
    spec = _SeriesSpec(
        modality="CT",
        study_uid=study_uid or generate_uid(),
        series_uid=series_uid or generate_uid(),
        frame_of_reference_uid=generate_uid(),
        series_number=2,
        series_description="Axial 1.0 soft tissue",
        study_description="CT CHEST ABDOMEN PELVIS W CONTRAST",
        body_part="CHEST",
        patient_id=patient_id,
        patient_name=patient_name,
        patient_birth_date="19600229",
        patient_sex="F",
        study_datetime=when,
        accession_number="ACC-CT-0001",
        study_id="1",
        referring_physician="House^Gregory",
        rows=rows,
        columns=columns,
        slice_thickness=1.0,
    )
    return _write_series(Path(folder), spec, count, seed)


def write_ct_studies(
    folder: Path,
    patients: int = 10,
    studies_per_patient: int = 2,
    series_per_study: int = 2,
    instances_per_series: int = 10,
    *,
    rows: int = 64,
    columns: int = 64,
    seed: int = 0,
    modalities: Sequence[str] = ("CT", "CT", "MR"),
) -> list[Path]:
    """Write a collection of small CT/MR instances over several patients and studies.

    Files go to ``folder/<PatientID>/<AccessionNumber>/<SeriesNumber>/IM<n>.dcm``. Patient
    name (including non-ASCII names, UTF-8 / ISO_IR 192), patient ID, birth date, sex, study
    date/time, accession number, study description, referring physician and modality (drawn
    from ``modalities`` per study) vary deterministically with ``seed``; UIDs are generated.
    Returns all paths. 10,000 instances of 64 x 64 take a few seconds.
    """
    folder = Path(folder)
    rng = np.random.default_rng(seed)
    paths: list[Path] = []
    for p in range(patients):
        patient_id = f"PAT{seed:02d}{p:05d}"
        family = _FAMILY_NAMES[int(rng.integers(len(_FAMILY_NAMES)))]
        given = _GIVEN_NAMES[int(rng.integers(len(_GIVEN_NAMES)))]
        birth = datetime(1930, 1, 1) + timedelta(days=int(rng.integers(0, 365 * 80)))
        sex = ("F", "M", "O")[int(rng.choice(3, p=[0.49, 0.49, 0.02]))]
        for s in range(studies_per_patient):
            modality = str(modalities[int(rng.integers(len(modalities)))])
            description, body_part = _STUDIES.get(modality, _STUDIES["CT"])[int(rng.integers(4))]
            study_datetime = datetime(2015, 1, 1, 7) + timedelta(
                days=int(rng.integers(0, 365 * 10)), seconds=int(rng.integers(0, 12 * 3600))
            )
            accession = f"A{seed:02d}{p:05d}{s:03d}"
            study_uid = generate_uid()
            frame_of_reference_uid = generate_uid()
            referring = _REFERRING[int(rng.integers(len(_REFERRING)))]
            for n in range(series_per_study):
                spec = _SeriesSpec(
                    modality=modality,
                    study_uid=study_uid,
                    series_uid=generate_uid(),
                    frame_of_reference_uid=frame_of_reference_uid,
                    series_number=n + 1,
                    series_description=_SERIES.get(modality, _SERIES["CT"])[n % 4],
                    study_description=description,
                    body_part=body_part,
                    patient_id=patient_id,
                    patient_name=f"{family}^{given}",
                    patient_birth_date=dicom_date(birth),
                    patient_sex=sex,
                    study_datetime=study_datetime,
                    accession_number=accession,
                    study_id=str(s + 1),
                    referring_physician=referring,
                    rows=rows,
                    columns=columns,
                    slice_thickness=5.0,
                )
                paths += _write_series(
                    folder / patient_id / accession / str(n + 1),
                    spec,
                    instances_per_series,
                    seed + p * 1000 + s * 10 + n,
                )
    return paths


def main(argv: Sequence[str] | None = None) -> int:
    """Command line entry point."""
    parser = argparse.ArgumentParser(
        prog="python -m samples.ct_series",
        description="Write synthetic CT series, or many small CT/MR studies for query tests.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    series = commands.add_parser("series", help="one CT series (default 500 x 512x512)")
    series.add_argument("folder", type=Path)
    series.add_argument("--count", type=int, default=500, help="number of instances")
    series.add_argument("--rows", type=int, default=512)
    series.add_argument("--columns", type=int, default=512)
    series.add_argument("--seed", type=int, default=0)
    studies = commands.add_parser("studies", help="many small instances over patients/studies")
    studies.add_argument("folder", type=Path)
    studies.add_argument("--patients", type=int, default=10)
    studies.add_argument("--studies-per-patient", type=int, default=2)
    studies.add_argument("--series-per-study", type=int, default=2)
    studies.add_argument("--instances-per-series", type=int, default=10)
    studies.add_argument("--rows", type=int, default=64)
    studies.add_argument("--columns", type=int, default=64)
    studies.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.command == "series":
        paths = write_ct_series(
            args.folder, args.count, rows=args.rows, columns=args.columns, seed=args.seed
        )
    else:
        paths = write_ct_studies(
            args.folder,
            args.patients,
            args.studies_per_patient,
            args.series_per_study,
            args.instances_per_series,
            rows=args.rows,
            columns=args.columns,
            seed=args.seed,
        )
    print(f"wrote {len(paths)} instances under {args.folder}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
