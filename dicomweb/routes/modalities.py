"""Remote DICOM modalities under /api (C-ECHO, C-STORE, C-FIND, C-MOVE as an SCU).

What Orthanc users do from its REST API every day: check a peer, send a study to it, query
it, and pull from it into this archive.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from litestar import get, post

from archive.dimse import scu
from dicomweb.services import Services
from wsi.errors import NotFound
from wsi.settings import RemoteModality


@dataclass(frozen=True)
class StoreRequest:
    """What to send: a study, or one series or instance of it."""

    study: str
    series: str | None = None
    instance: str | None = None


@dataclass(frozen=True)
class FindRequest:
    """A C-FIND: level, matching keys, extra return keys, information model."""

    level: str = "STUDY"
    query: dict[str, str] = field(default_factory=dict)
    return_keys: list[str] = field(default_factory=list)
    model: str = "STUDY"


@dataclass(frozen=True)
class MoveRequest:
    """A C-MOVE from the peer; the destination defaults to this archive's AE title."""

    uids: list[str]
    level: str = "STUDY"
    parents: dict[str, str] = field(default_factory=dict)
    destination: str | None = None
    model: str = "STUDY"


def _modality(services: Services, name: str) -> RemoteModality:
    for modality in services.settings.modalities:
        if modality.ae_title == name:
            return modality
    raise NotFound(f"no configured modality with AE title {name!r}")


@get("/api/modalities", summary="Configured remote modalities", tags=["Modalities"])
async def list_modalities(services: Services) -> list[dict[str, Any]]:
    """The DICOM peers this archive knows (setting ``modalities``)."""
    return [asdict(m) for m in services.settings.modalities]


@post("/api/modalities/{name:str}/echo", status_code=200, tags=["Modalities"])
async def echo_modality(services: Services, name: str) -> dict[str, Any]:
    """C-ECHO a configured modality."""
    status = await services.blocking.run(
        scu.echo, _modality(services, name), services.settings.ae_title
    )
    return {"status": status}


@post("/api/modalities/{name:str}/store", status_code=200, tags=["Modalities"])
async def store_to_modality(services: Services, name: str, data: StoreRequest) -> dict[str, int]:
    """C-STORE a study, series or instance of this archive to a configured modality."""
    modality = _modality(services, name)
    records = await services.blocking.run(
        services.archive.instances, data.study, data.series, data.instance
    )
    counts = await services.blocking.run(
        scu.send, modality, [r.path for r in records], services.settings.ae_title
    )
    return asdict(counts)


@post("/api/modalities/{name:str}/find", status_code=200, tags=["Modalities"])
async def find_on_modality(services: Services, name: str, data: FindRequest) -> list[dict]:
    """C-FIND on a configured modality; matches in the DICOM JSON model."""
    return await services.blocking.run(
        scu.query, _modality(services, name), data.level, data.query, data.return_keys,
        data.model, services.settings.ae_title,
    )


@post("/api/modalities/{name:str}/move", status_code=200, tags=["Modalities"])
async def move_from_modality(services: Services, name: str, data: MoveRequest) -> dict[str, int]:
    """C-MOVE from a configured modality (into this archive unless a destination is given)."""
    counts = await services.blocking.run(
        scu.retrieve_move, _modality(services, name), data.level, data.uids,
        data.destination or services.settings.ae_title, data.model, data.parents,
        services.settings.ae_title,
    )
    return asdict(counts)


ROUTES = [list_modalities, echo_modality, store_to_modality, find_on_modality, move_from_modality]
