"""Specimen module (PS3.3 C.7.6.22): one slide container holding one specimen."""

from __future__ import annotations

from pydicom.dataset import Dataset

from dicomizer.iod.codes import microscope_slide
from dicomizer.iod.context import SlideContext


def specimen(ds: Dataset, context: SlideContext) -> None:
    """Container identifier (shared by every instance of the slide) and its specimen."""
    ds.ContainerIdentifier = context.container_id
    ds.IssuerOfTheContainerIdentifierSequence = []
    ds.ContainerTypeCodeSequence = [microscope_slide()]
    item = Dataset()
    item.SpecimenIdentifier = context.specimen_id
    item.SpecimenUID = context.specimen_uid
    item.IssuerOfTheSpecimenIdentifierSequence = []
    if context.metadata.specimen_description:
        item.SpecimenShortDescription = context.metadata.specimen_description[:64]
    item.SpecimenPreparationSequence = []
    ds.SpecimenDescriptionSequence = [item]
