"""Patient, study, series, frame of reference, equipment, acquisition and SOP common modules
of the VL Whole Slide Microscopy Image IOD (PS3.3 A.32.8-1)."""

from __future__ import annotations

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID

from dicomizer.iod.context import VL_WSI_SOP_CLASS, InstanceSpec, SlideContext

IMPLEMENTATION_CLASS_UID = "1.2.826.0.1.3680043.8.498.75067841339237101436"
"""Our implementation class UID, under pydicom's root (PS3.7 D.3.3.2)."""
IMPLEMENTATION_VERSION_NAME = "WSIARCHIVE_DCMZ"


def _date(context: SlideContext) -> str:
    return context.acquired.strftime("%Y%m%d")


def _time(context: SlideContext) -> str:
    return context.acquired.strftime("%H%M%S")


def sop_common(ds: Dataset, context: SlideContext, spec: InstanceSpec) -> None:
    """SOP Common (C.12.1) plus the Part 10 File Meta Information (PS3.10 §7.1)."""
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = UID(VL_WSI_SOP_CLASS)
    meta.MediaStorageSOPInstanceUID = UID(spec.sop_uid)
    meta.TransferSyntaxUID = UID(spec.transfer_syntax_uid)
    meta.ImplementationClassUID = UID(IMPLEMENTATION_CLASS_UID)
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    ds.file_meta = meta
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.SOPClassUID = VL_WSI_SOP_CLASS
    ds.SOPInstanceUID = spec.sop_uid
    ds.InstanceCreationDate = _date(context)
    ds.InstanceCreationTime = _time(context)


def patient(ds: Dataset, context: SlideContext) -> None:
    """Patient (C.7.1.1): Type 2 attributes, empty unless given."""
    m = context.metadata
    ds.PatientName = m.patient_name or ""
    ds.PatientID = m.patient_id or ""
    ds.PatientBirthDate = m.patient_birth_date or ""
    ds.PatientSex = m.patient_sex or ""


def general_study(ds: Dataset, context: SlideContext) -> None:
    """General Study (C.7.2.1)."""
    m = context.metadata
    ds.StudyInstanceUID = context.study_uid
    ds.StudyDate = _date(context)
    ds.StudyTime = _time(context)
    ds.ReferringPhysicianName = ""
    ds.StudyID = m.study_id or ""
    ds.AccessionNumber = m.accession_number or ""
    if m.study_description:
        ds.StudyDescription = m.study_description


def series(ds: Dataset, context: SlideContext) -> None:
    """General Series (C.7.3.1) and Whole Slide Microscopy Series (C.8.12.3): Modality SM."""
    m = context.metadata
    ds.Modality = "SM"
    ds.SeriesInstanceUID = context.series_uid
    ds.SeriesNumber = m.series_number if m.series_number is not None else 1
    ds.SeriesDate = _date(context)
    ds.SeriesTime = _time(context)
    ds.SeriesDescription = m.series_description or context.source_name[:64]


def frame_of_reference(ds: Dataset, context: SlideContext) -> None:
    """Frame of Reference (C.7.4.1): one per slide, shared by every instance."""
    ds.FrameOfReferenceUID = context.frame_of_reference_uid
    ds.PositionReferenceIndicator = "SLIDE_CORNER"


def equipment(ds: Dataset, context: SlideContext) -> None:
    """General Equipment (C.7.5.1) and Enhanced General Equipment (C.7.5.2, Type 1 there)."""
    vendor = context.properties.vendor
    props = context.properties.vendor_properties
    ds.Manufacturer = vendor or "unknown"
    model = props.get("Model") or props.get("ScanScope ID") or "unknown"
    ds.ManufacturerModelName = str(model)[:64]
    ds.DeviceSerialNumber = str(props.get("ScannerSerialNumber") or props.get("ScanScope ID")
                                or "unknown")[:64]
    ds.SoftwareVersions = [str(props.get("Software") or "unknown")[:64],
                           f"wsi-archive dicomizer {context.software_version}"]


def acquisition(ds: Dataset, context: SlideContext) -> None:
    """General Acquisition (C.7.10.1)."""
    ds.AcquisitionUID = context.acquisition_uid
    ds.AcquisitionDateTime = context.acquired.strftime("%Y%m%d%H%M%S")
