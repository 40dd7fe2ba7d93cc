"""Helpers shared by the sample generators."""

from __future__ import annotations

import functools
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID

IMPLEMENTATION_VERSION_NAME = "WSI_SAMPLES_1"


def dicom_date(value: datetime) -> str:
    """Return ``value`` as a DICOM DA string (YYYYMMDD)."""
    return value.strftime("%Y%m%d")


def dicom_time(value: datetime) -> str:
    """Return ``value`` as a DICOM TM string (HHMMSS.ffffff)."""
    return value.strftime("%H%M%S.%f")


def dicom_datetime(value: datetime) -> str:
    """Return ``value`` as a DICOM DT string (YYYYMMDDHHMMSS.ffffff)."""
    return value.strftime("%Y%m%d%H%M%S.%f")


@functools.cache
def srgb_icc_profile() -> bytes | None:
    """Return an sRGB ICC profile made by Pillow's littleCMS, or ``None`` if unavailable."""
    try:
        from PIL import ImageCms

        return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
    except (ImportError, OSError):
        return None


def code_item(value: str, scheme: str, meaning: str) -> Dataset:
    """Return a Code Sequence Macro item (CodeValue, CodingSchemeDesignator, CodeMeaning)."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def file_meta(sop_class_uid: str, sop_instance_uid: str, transfer_syntax: str) -> FileMetaDataset:
    """Return a Part 10 File Meta Information dataset."""
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = UID(sop_class_uid)
    meta.MediaStorageSOPInstanceUID = UID(sop_instance_uid)
    meta.TransferSyntaxUID = UID(transfer_syntax)
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


def encode_preamble_and_meta(meta: FileMetaDataset) -> bytes:
    """Return the 128-byte preamble, ``DICM`` prefix and encoded File Meta Information."""
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_file_meta_info(fp, meta, enforce_standard=True)
    return b"\x00" * 128 + b"DICM" + fp.getvalue()


def encode_explicit_le(ds: Dataset, character_set: str | list[str] = "iso8859") -> bytes:
    """Return the elements of ``ds`` encoded as Explicit VR Little Endian (no file meta).

    ``character_set`` is the Specific Character Set in force for ``ds``: a fragment of a
    larger dataset does not carry (0008,0005) itself but its strings must be encoded with it.
    """
    fp = DicomBytesIO()
    fp.is_little_endian = True
    fp.is_implicit_VR = False
    write_dataset(fp, ds, parent_encoding=character_set)
    return fp.getvalue()


def encode_part10_header(ds: Dataset) -> bytes:
    """Return a complete Part 10 encoding (preamble, meta, dataset) of ``ds`` as bytes.

    ``ds.file_meta`` must be set; the dataset is written Explicit VR Little Endian, which is
    the encoding of every transfer syntax used by these samples (native or encapsulated).
    """
    buffer = io.BytesIO()
    buffer.write(encode_preamble_and_meta(ds.file_meta))
    buffer.write(encode_explicit_le(ds, ds.get("SpecificCharacterSet", "iso8859")))
    return buffer.getvalue()


# --- VL Whole Slide Microscopy Image (PS3.3 A.32.8) -------------------------------------

VL_WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
BASE_IMAGE_TYPE = ("ORIGINAL", "PRIMARY", "VOLUME", "NONE")
SLICE_THICKNESS_MM = 0.004

# Slide-corner offsets (mm) of the top left pixel: with the conventional ImageOrientationSlide
# below, rows run along -Y and columns along -X, so the matrix starts at a high X and Y.
_ORIGIN_X_MM = 20.0
_ORIGIN_Y_MM = 50.0
_IMAGE_ORIENTATION_SLIDE = (0, -1, 0, -1, 0, 0)


@dataclass(frozen=True)
class SlideStudy:
    """The study and scanner values that tell one sample slide's header from another's."""

    study_id: str
    accession_number: str
    study_description: str
    referring_physician_name: str
    device_serial_number: str
    acquisition_duration_s: float


def add_slide_study(
    ds: Dataset,
    study: SlideStudy,
    *,
    patient_id: str,
    patient_name: str,
    study_uid: str,
    series_uid: str,
    sop_uid: str,
    frame_of_reference_uid: str,
    acquired: datetime,
) -> None:
    """Set the patient, study, series and equipment attributes of a sample VL WSI instance.

    SOP Common, Patient, General Study, General Series, Frame of Reference, General and
    Enhanced General Equipment and General Acquisition; ``acquired`` dates study and
    acquisition.
    """
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = VL_WSI_SOP_CLASS
    ds.SOPInstanceUID = sop_uid

    ds.PatientName = patient_name
    ds.PatientID = patient_id
    ds.PatientBirthDate = "19700101"
    ds.PatientSex = "O"

    ds.StudyInstanceUID = study_uid
    ds.StudyDate = dicom_date(acquired)
    ds.StudyTime = dicom_time(acquired)
    ds.ReferringPhysicianName = study.referring_physician_name
    ds.StudyID = study.study_id
    ds.AccessionNumber = study.accession_number
    ds.StudyDescription = study.study_description

    ds.Modality = "SM"
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = 1
    ds.FrameOfReferenceUID = frame_of_reference_uid
    ds.PositionReferenceIndicator = "SLIDE_CORNER"

    ds.Manufacturer = "WSI Archive Samples"
    ds.ManufacturerModelName = "Synthetic Scanner"
    ds.DeviceSerialNumber = study.device_serial_number
    ds.SoftwareVersions = "1.0"

    ds.AcquisitionDateTime = dicom_datetime(acquired)
    ds.AcquisitionDuration = study.acquisition_duration_s


def add_tiled_image(
    ds: Dataset,
    *,
    image_type: Sequence[str],
    instance_number: int,
    acquired: datetime,
    width: int,
    height: int,
    tile: int,
    pixel_spacing_mm: float,
    compressed_bytes: int,
    pyramid_uid: str,
    dimension_organization_uid: str,
) -> None:
    """Set the image attributes of a TILED_FULL JPEG Baseline (YBR_FULL_422) level.

    General Image, Whole Slide Microscopy Image, Image Pixel, Multi-frame Dimension and the
    shared functional groups (pixel measures, frame type) of a ``width`` x ``height`` matrix
    in ``tile`` x ``tile`` frames; ``compressed_bytes`` is the size of all frames together.
    """
    frames = math.ceil(width / tile) * math.ceil(height / tile)
    ds.ImageType = list(image_type)
    ds.InstanceNumber = instance_number
    ds.ContentDate = dicom_date(acquired)
    ds.ContentTime = dicom_time(acquired)
    ds.BurnedInAnnotation = "NO"
    ds.SpecimenLabelInImage = "NO"
    ds.VolumetricProperties = "VOLUME"
    ds.FocusMethod = "AUTO"
    ds.ExtendedDepthOfField = "NO"
    ds.LossyImageCompression = "01"
    ds.LossyImageCompressionRatio = f"{frames * tile * tile * 3 / compressed_bytes:.2f}"
    ds.LossyImageCompressionMethod = "ISO_10918_1"
    ds.ImagedVolumeWidth = width * pixel_spacing_mm
    ds.ImagedVolumeHeight = height * pixel_spacing_mm
    ds.ImagedVolumeDepth = SLICE_THICKNESS_MM * 1000.0  # micrometres, unlike width/height
    ds.TotalPixelMatrixColumns = width
    ds.TotalPixelMatrixRows = height
    ds.TotalPixelMatrixFocalPlanes = 1
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem = _ORIGIN_X_MM
    origin.YOffsetInSlideCoordinateSystem = _ORIGIN_Y_MM
    ds.TotalPixelMatrixOriginSequence = [origin]
    ds.ImageOrientationSlide = list(_IMAGE_ORIENTATION_SLIDE)
    ds.PyramidUID = pyramid_uid

    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = "YBR_FULL_422"
    ds.PlanarConfiguration = 0
    ds.Rows = tile
    ds.Columns = tile
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0

    ds.NumberOfFrames = frames
    ds.DimensionOrganizationType = "TILED_FULL"
    organization = Dataset()
    organization.DimensionOrganizationUID = dimension_organization_uid
    ds.DimensionOrganizationSequence = [organization]
    measures = Dataset()
    measures.PixelSpacing = [pixel_spacing_mm, pixel_spacing_mm]
    measures.SliceThickness = SLICE_THICKNESS_MM
    frame_type = Dataset()
    frame_type.FrameType = list(image_type)
    shared = Dataset()
    shared.PixelMeasuresSequence = [measures]
    shared.WholeSlideMicroscopyImageFrameTypeSequence = [frame_type]
    ds.SharedFunctionalGroupsSequence = [shared]


def add_slide(
    ds: Dataset,
    container_id: str,
    specimen_uid: str,
    preparation: Sequence[Dataset] = (),
) -> None:
    """Set the Specimen, Optical Path and Acquisition Context attributes of a sample slide.

    One specimen (``<container_id>-S1``, prepared by the ``preparation`` steps) on a
    microscope slide, and one brightfield optical path with the sRGB ICC profile when
    Pillow can make one.
    """
    ds.ContainerIdentifier = container_id
    ds.IssuerOfTheContainerIdentifierSequence = []
    ds.ContainerTypeCodeSequence = [code_item("433466003", "SCT", "Microscope slide")]
    specimen = Dataset()
    specimen.SpecimenIdentifier = f"{container_id}-S1"
    specimen.SpecimenUID = specimen_uid
    specimen.IssuerOfTheSpecimenIdentifierSequence = []
    specimen.SpecimenPreparationSequence = list(preparation)
    ds.SpecimenDescriptionSequence = [specimen]

    ds.NumberOfOpticalPaths = 1
    path = Dataset()
    path.OpticalPathIdentifier = "1"
    path.IlluminationTypeCodeSequence = [code_item("111744", "DCM", "Brightfield illumination")]
    path.IlluminationColorCodeSequence = [code_item("414298005", "SCT", "Full Spectrum")]
    icc = srgb_icc_profile()
    if icc is not None:
        path.ICCProfile = icc
        path.ColorSpace = "SRGB"
    ds.OpticalPathSequence = [path]

    ds.AcquisitionContextSequence = []
