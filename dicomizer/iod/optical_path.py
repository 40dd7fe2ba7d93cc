"""Optical Path module (PS3.3 C.8.12.5): one brightfield path with the colour profile."""

from __future__ import annotations

import functools

from pydicom.dataset import Dataset

from dicomizer.iod.codes import brightfield, full_spectrum
from dicomizer.iod.context import SlideContext


@functools.cache
def srgb_profile() -> bytes:
    """An sRGB ICC profile made by Pillow's littleCMS (used when the source has none)."""
    from PIL import ImageCms

    return bytes(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())


def optical_path(ds: Dataset, context: SlideContext) -> None:
    """The source's ICC profile if it has one, else sRGB (C.8.12.5.1.1: required for colour
    images); the objective power when the source states it."""
    ds.NumberOfOpticalPaths = 1
    item = Dataset()
    item.OpticalPathIdentifier = "1"
    item.IlluminationTypeCodeSequence = [brightfield()]
    item.IlluminationColorCodeSequence = [full_spectrum()]
    icc = context.properties.icc_profile
    item.ICCProfile = icc if icc else srgb_profile()
    if not icc:
        item.ColorSpace = "SRGB"
    if context.properties.objective_power:
        item.ObjectiveLensPower = context.properties.objective_power
    ds.OpticalPathSequence = [item]
    # Acquisition Context (C.7.6.14) is part of the IOD; nothing is known about it here.
    ds.AcquisitionContextSequence = []
