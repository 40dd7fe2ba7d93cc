"""Builders of the VL Whole Slide Microscopy Image IOD (PS3.3 A.32.8), one per module group.

:func:`build_dataset` assembles the header of one instance (everything but the pixel data
and the offset tables, which :mod:`dicomizer.writer` adds) from two frozen descriptions: the
:class:`SlideContext` shared by every instance of a slide and the :class:`InstanceSpec` of
one instance.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

from dicomizer.iod import common as common
from dicomizer.iod import image as image
from dicomizer.iod import optical_path as optical_path
from dicomizer.iod import specimen as specimen
from dicomizer.iod import vendor as vendor
from dicomizer.iod.context import VL_WSI_SOP_CLASS, InstanceSpec, SlideContext

__all__ = ["VL_WSI_SOP_CLASS", "InstanceSpec", "SlideContext", "build_dataset"]


def build_dataset(context: SlideContext, spec: InstanceSpec) -> Dataset:
    """The header dataset of one instance, with its file meta information."""
    ds = Dataset()
    common.sop_common(ds, context, spec)
    common.patient(ds, context)
    common.general_study(ds, context)
    common.series(ds, context)
    common.frame_of_reference(ds, context)
    common.equipment(ds, context)
    common.acquisition(ds, context)
    image.general_image(ds, context, spec)
    image.whole_slide_microscopy_image(ds, context, spec)
    image.image_pixel(ds, spec)
    image.multi_frame(ds, context, spec)
    specimen.specimen(ds, context)
    optical_path.optical_path(ds, context)
    vendor.vendor_properties(ds, context)
    if context.metadata.extra is not None:
        # Attributes from the --metadata file that the converter does not compute.
        ds.update(context.metadata.extra)
    return ds
