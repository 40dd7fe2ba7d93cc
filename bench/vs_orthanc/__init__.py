"""Benchmark of this archive's DICOMweb service against Orthanc (see ../README.md)."""
