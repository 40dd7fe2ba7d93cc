"""Coded entries used by the builders (PS3.16 / SNOMED CT)."""

from __future__ import annotations

from pydicom.dataset import Dataset


def code(value: str, scheme: str, meaning: str) -> Dataset:
    """A Code Sequence Macro item (PS3.3 Table 8.8-1)."""
    item = Dataset()
    item.CodeValue = value
    item.CodingSchemeDesignator = scheme
    item.CodeMeaning = meaning
    return item


def microscope_slide() -> Dataset:
    """SCT 433466003 "Microscope slide" (CID 8101 Container Type)."""
    return code("433466003", "SCT", "Microscope slide")


def brightfield() -> Dataset:
    """DCM 111744 "Brightfield illumination" (CID 8123)."""
    return code("111744", "DCM", "Brightfield illumination")


def full_spectrum() -> Dataset:
    """SCT 414298005 "Full Spectrum" (CID 8122 Microscopy Illuminator and Sensor Color)."""
    return code("414298005", "SCT", "Full Spectrum")
