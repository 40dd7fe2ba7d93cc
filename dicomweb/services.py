"""What route handlers receive: the services built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass

from archive.archive import Archive
from dicomweb.blocking import Blocking
from dicomweb.jobs import ConversionJobs
from wsi.settings import Settings


@dataclass(frozen=True)
class Services:
    """The archive, the worker-thread bridge, the conversion jobs and the settings."""

    settings: Settings
    archive: Archive
    blocking: Blocking
    jobs: ConversionJobs | None = None
