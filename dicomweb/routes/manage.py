"""Health and deletion routes."""

from __future__ import annotations

import os
from typing import Any

from litestar import Response, delete, get

from archive.attributes import Level
from archive.query import Query
from dicomweb.routes.wado import INSTANCE, SERIES, STUDY
from dicomweb.services import Services
from dicomweb.urls import path_uids


@get("/healthz", summary="Liveness and readiness", include_in_schema=True)
async def healthz(services: Services) -> dict[str, Any]:
    """Answers when the service is up and its index reachable, naming the HTTP worker
    process that answered (``wsi serve`` runs several; see dicomweb/workers.py)."""
    await services.blocking.run(services.archive.find, Query(Level.STUDY, limit=1))
    return {"status": "ok", "process": os.getpid()}


async def _delete(
    services: Services, study: str, series: str | None = None, instance: str | None = None
) -> Response[None]:
    st, se, sop = path_uids(study, series, instance)
    assert st is not None
    await services.blocking.run(services.archive.delete, st, se, sop)
    return Response(None, status_code=204)


@delete(STUDY, status_code=204, summary="Delete a study")
async def delete_study(services: Services, study: str) -> Response[None]:
    """Remove a study's files and index rows."""
    return await _delete(services, study)


@delete(SERIES, status_code=204, summary="Delete a series")
async def delete_series(services: Services, study: str, series: str) -> Response[None]:
    """Remove a series' files and index rows."""
    return await _delete(services, study, series)


@delete(INSTANCE, status_code=204, summary="Delete an instance")
async def delete_instance(
    services: Services, study: str, series: str, instance: str
) -> Response[None]:
    """Remove an instance's file and index row."""
    return await _delete(services, study, series, instance)
