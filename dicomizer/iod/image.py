"""Image modules of the VL Whole Slide Microscopy Image IOD (PS3.3 A.32.8-1)."""

from __future__ import annotations

from pydicom.dataset import Dataset

from dicomizer.iod.context import InstanceSpec, SlideContext

IMAGE_ORIENTATION_SLIDE = (0, -1, 0, -1, 0, 0)
"""PS3.3 C.8.12.2.1.1: a row (increasing column index) runs along -Y and a column along -X
of the slide coordinate system: the common orientation of a slide with its label on the
left (Google's and the lead's samples use it too)."""
SLICE_THICKNESS_MM = 0.004
"""Nominal section thickness: scanners rarely record it; viewers need a value."""
_PLANE_POSITION_SLIDE = 0x0048021A
_COLUMN_POSITION = 0x0048021E
_ROW_POSITION = 0x0048021F


def general_image(ds: Dataset, context: SlideContext, spec: InstanceSpec) -> None:
    """General Image (C.7.6.1), with the lossy compression history (C.7.6.1.1.5)."""
    ds.InstanceNumber = spec.instance_number
    ds.ContentDate = context.acquired.strftime("%Y%m%d")
    ds.ContentTime = context.acquired.strftime("%H%M%S")
    ds.LossyImageCompression = "01" if spec.lossy_methods else "00"
    if spec.lossy_methods:
        ds.LossyImageCompressionMethod = list(spec.lossy_methods)


def whole_slide_microscopy_image(ds: Dataset, context: SlideContext, spec: InstanceSpec) -> None:
    """Whole Slide Microscopy Image (C.8.12.4).

    ImageType value 3 is VOLUME for pyramid levels (ORIGINAL for the base, DERIVED ...
    RESAMPLED for the others, C.8.12.4.1.1), LABEL, OVERVIEW or THUMBNAIL otherwise.
    Imaged volume, origin and orientation are only required (1C) for VOLUME and THUMBNAIL.
    """
    ds.ImageType = list(spec.image_type)
    kind = spec.kind
    ds.BurnedInAnnotation = "YES" if kind in ("LABEL", "OVERVIEW") else "NO"
    ds.SpecimenLabelInImage = "YES" if kind in ("LABEL", "OVERVIEW") else "NO"
    ds.FocusMethod = "AUTO"
    ds.ExtendedDepthOfField = "NO"
    ds.TotalPixelMatrixColumns = spec.width
    ds.TotalPixelMatrixRows = spec.height
    ds.TotalPixelMatrixFocalPlanes = 1
    ds.VolumetricProperties = "VOLUME"
    origin = Dataset()
    origin.XOffsetInSlideCoordinateSystem = 0.0
    origin.YOffsetInSlideCoordinateSystem = 0.0
    if spec.pixel_spacing_mm is not None:
        row_spacing, column_spacing = spec.pixel_spacing_mm
        width_mm = round(spec.width * column_spacing, 6)
        height_mm = round(spec.height * row_spacing, 6)
        ds.ImagedVolumeWidth = width_mm
        ds.ImagedVolumeHeight = height_mm
        ds.ImagedVolumeDepth = SLICE_THICKNESS_MM * 1000.0  # micrometres (C.8.12.4.1.3)
        # The sources do not say where on the slide the scan lies. With the orientation
        # above a row runs along -Y and a column along -X, so this origin keeps the whole
        # matrix at positive slide coordinates; it is the same for every level.
        origin.XOffsetInSlideCoordinateSystem = height_mm
        origin.YOffsetInSlideCoordinateSystem = width_mm
    # Microscope Slide Layer Tile Organization (C.8.12.4.1.4) wants an origin for every
    # image type, labels and overviews included.
    ds.TotalPixelMatrixOriginSequence = [origin]
    ds.ImageOrientationSlide = list(IMAGE_ORIENTATION_SLIDE)
    if kind == "LABEL":
        # Slide Label module (C.8.12.8), required for LABEL images; Type 2, unknown here.
        ds.BarcodeValue = ""
        ds.LabelText = ""
    if kind in ("VOLUME", "THUMBNAIL"):
        ds.PyramidUID = context.pyramid_uid
    # Absent pixels (padding) are white: L*=100, a*=b*=0 (PS3.3 C.10.7.1.1 encoding).
    ds.RecommendedAbsentPixelCIELabValue = [0xFFFF, 0x8080, 0x8080]


def image_pixel(ds: Dataset, spec: InstanceSpec) -> None:
    """Image Pixel (C.7.6.3) as constrained by C.8.12.4.1.5: 8-bit colour, interleaved."""
    ds.SamplesPerPixel = 3
    ds.PhotometricInterpretation = spec.photometric
    ds.PlanarConfiguration = 0
    ds.Rows = spec.tile_height
    ds.Columns = spec.tile_width
    ds.BitsAllocated = 8
    ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0


def multi_frame(ds: Dataset, context: SlideContext, spec: InstanceSpec) -> None:
    """Multi-frame (C.7.6.6), Multi-frame Functional Groups (C.7.6.16) with the shared
    Pixel Measures, frame type and optical path, and Multi-frame Dimension (C.7.6.17).

    TILED_FULL (C.8.12.4.1.2): frames are the tiles of the total pixel matrix in row-major
    order, so no per-frame functional groups are needed.
    """
    ds.NumberOfFrames = spec.number_of_frames
    ds.DimensionOrganizationType = "TILED_FULL"
    organization = Dataset()
    organization.DimensionOrganizationUID = context.dimension_organization_uid
    ds.DimensionOrganizationSequence = [organization]
    indices = []
    for pointer, label in ((_COLUMN_POSITION, "Column Position"),
                           (_ROW_POSITION, "Row Position")):
        index = Dataset()
        index.DimensionOrganizationUID = context.dimension_organization_uid
        index.DimensionIndexPointer = pointer
        index.FunctionalGroupPointer = _PLANE_POSITION_SLIDE
        index.DimensionDescriptionLabel = label
        indices.append(index)
    ds.DimensionIndexSequence = indices
    shared = Dataset()
    measures = Dataset()
    if spec.pixel_spacing_mm is not None:
        # Unknown for labels and overviews, whose optics are not the scanner's.
        measures.PixelSpacing = [round(v, 9) for v in spec.pixel_spacing_mm]
    measures.SliceThickness = SLICE_THICKNESS_MM
    shared.PixelMeasuresSequence = [measures]
    frame_type = Dataset()
    frame_type.FrameType = list(spec.image_type)
    shared.WholeSlideMicroscopyImageFrameTypeSequence = [frame_type]
    optical_path = Dataset()
    optical_path.OpticalPathIdentifier = "1"
    shared.OpticalPathIdentificationSequence = [optical_path]
    ds.SharedFunctionalGroupsSequence = [shared]
