"""Whole-slide core: geometry, DICOM primitives, codecs, settings, the error root and the CLI."""
