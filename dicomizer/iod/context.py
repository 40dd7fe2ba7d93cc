"""The frozen descriptions the IOD builders work from."""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

from dicomizer.metadata import SlideMetadata
from wsi.readers.base import SlideProperties

VL_WSI_SOP_CLASS = "1.2.840.10008.5.1.4.1.1.77.1.6"
"""VL Whole Slide Microscopy Image Storage (PS3.4 B.5)."""


@dataclass(frozen=True)
class SlideContext:
    """What every instance of one converted slide shares."""

    study_uid: str
    series_uid: str
    frame_of_reference_uid: str
    pyramid_uid: str
    dimension_organization_uid: str
    specimen_uid: str
    acquisition_uid: str
    container_id: str
    specimen_id: str
    source_name: str
    acquired: datetime
    metadata: SlideMetadata
    properties: SlideProperties
    software_version: str


@dataclass(frozen=True)
class InstanceSpec:
    """One instance: a pyramid level or an associated image."""

    sop_uid: str
    instance_number: int
    image_type: tuple[str, str, str, str]
    width: int
    height: int
    tile_width: int
    tile_height: int
    transfer_syntax_uid: str
    photometric: str
    lossy_methods: tuple[str, ...]
    pixel_spacing_mm: tuple[float, float] | None
    """(row spacing, column spacing) in mm, PS3.3 C.7.6.16.2.1 order; ``None`` if unknown."""

    @property
    def kind(self) -> str:
        """Value 3 of Image Type: VOLUME, LABEL, OVERVIEW or THUMBNAIL."""
        return self.image_type[2]

    @property
    def tiles_across(self) -> int:
        """Tile columns."""
        return math.ceil(self.width / self.tile_width)

    @property
    def tiles_down(self) -> int:
        """Tile rows."""
        return math.ceil(self.height / self.tile_height)

    @property
    def number_of_frames(self) -> int:
        """Frames in TILED_FULL order: every tile of the matrix, row-major."""
        return self.tiles_across * self.tiles_down
