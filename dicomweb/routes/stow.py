"""STOW-RS (PS3.18 §10.5): streamed multipart/related application/dicom into the one ingest."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from litestar import Request, Response, post

from archive.ingest import StoredInstance
from archive.status import failure_status
from archive.storage import StagedFile
from dicomweb.errors import UnsupportedMediaType
from dicomweb.multipart import PartData, PartEnd, PartStart, iter_parts, parse_content_type
from dicomweb.services import Services
from dicomweb.urls import dicomweb_base, instance_url, path_uids, study_url
from wsi.errors import InvalidInput, WsiArchiveError

log = logging.getLogger(__name__)

_FLUSH_BYTES = 1024 * 1024
DICOM_JSON = "application/dicom+json"


class _PartWriter:
    """Collects one part's data into a staged file, writing in ≥1 MiB steps off the loop.

    Memory bound: at most ``_FLUSH_BYTES`` plus one network chunk of the part is buffered.
    """

    def __init__(self, services: Services, staged: StagedFile) -> None:
        self._services = services
        self.staged = staged
        self._buffer: list[bytes] = []
        self._buffered = 0

    async def add(self, data: bytes) -> None:
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= _FLUSH_BYTES:
            await self.flush()

    async def flush(self) -> None:
        if self._buffer:
            await self._services.blocking.run(self.staged.write, self.take_buffer())

    def take_buffer(self) -> bytes:
        chunk = b"".join(self._buffer)
        self._buffer, self._buffered = [], 0
        return chunk


def _check_request_type(request: Request) -> str:
    header = request.headers.get("content-type")
    if not header:
        raise UnsupportedMediaType("Content-Type is missing; expected multipart/related")
    media_type, params = parse_content_type(header)
    if media_type != "multipart/related":
        raise UnsupportedMediaType(f"expected multipart/related, not {media_type}")
    part_type = params.get("type", "application/dicom").lower()
    if part_type != "application/dicom":
        raise UnsupportedMediaType(
            f'only type="application/dicom" is supported for STOW-RS, not {part_type}'
        )
    boundary = params.get("boundary")
    if not boundary:
        raise InvalidInput("multipart/related Content-Type lacks a boundary")
    return boundary


def _sop_item(base: str, stored: StoredInstance) -> dict[str, Any]:
    return {
        "00081150": {"vr": "UI", "Value": [stored.sop_class_uid]},
        "00081155": {"vr": "UI", "Value": [stored.sop_instance_uid]},
        "00081190": {
            "vr": "UR",
            "Value": [
                instance_url(base, stored.study_uid, stored.series_uid, stored.sop_instance_uid)
            ],
        },
    }


def _failed_item(error: WsiArchiveError) -> dict[str, Any]:
    sop_class, sop_uid = error.sop or ("", "")
    item: dict[str, Any] = {
        "00081150": {"vr": "UI", "Value": [sop_class]} if sop_class else {"vr": "UI"},
        "00081155": {"vr": "UI", "Value": [sop_uid]} if sop_uid else {"vr": "UI"},
        "00081197": {"vr": "US", "Value": [failure_status(error)]},
    }
    # PS3.18 has no attribute for a reason text; TextValue (0040,A160) carries it so that a
    # person reading the response learns why, beside the coded FailureReason.
    item["0040A160"] = {"vr": "UT", "Value": [error.reason]}
    return item


_IN_FLIGHT = 4


def _done(value: dict[str, Any]) -> asyncio.Task[StoredInstance | dict[str, Any]]:
    async def immediate() -> StoredInstance | dict[str, Any]:
        return value

    return asyncio.create_task(immediate())


def _finish_and_ingest(services: Services, writer: _PartWriter, study: str | None,
                       tail: bytes) -> StoredInstance:
    writer.staged.write(tail)
    writer.staged.finish()
    return services.archive.ingest(writer.staged, study)


async def _ingest(services: Services, writer: _PartWriter, study: str | None,
                  in_flight: asyncio.Semaphore) -> StoredInstance | dict[str, Any]:
    """One part's last bytes, fsync and ingest in one worker-thread hop."""
    try:
        return await services.blocking.run(
            _finish_and_ingest, services, writer, study, writer.take_buffer()
        )
    except WsiArchiveError as exc:
        log.info("STOW-RS part rejected: %s", exc.reason)
        return _failed_item(exc)
    finally:
        in_flight.release()


@post(
    ["/studies", "/studies/{study:str}"],
    request_max_body_size=None,
    status_code=200,
    summary="STOW-RS: store instances",
)
async def store_instances(
    request: Request, services: Services, study: str | None = None
) -> Response[dict[str, Any]]:
    """Store DICOM Part 10 instances sent as multipart/related; type="application/dicom"."""
    (study,) = path_uids(study)
    boundary = _check_request_type(request)
    base = dicomweb_base(request)
    outcomes: list[asyncio.Task[StoredInstance | dict[str, Any]]] = []
    # Parts are ingested while the next ones are received (fsync and parsing overlap with
    # the network); at most _IN_FLIGHT at once, so a fast client is slowed, not buffered.
    in_flight = asyncio.Semaphore(_IN_FLIGHT)
    writer: _PartWriter | None = None
    try:
        async for event in iter_parts(request.stream(), boundary):
            if isinstance(event, PartStart):
                writer = None
                part_type = event.headers.get("content-type", "application/dicom")
                if parse_content_type(part_type)[0] != "application/dicom":
                    outcomes.append(_done(_failed_item(InvalidInput(f"part is {part_type}"))))
                    continue
                writer = _PartWriter(services, await services.blocking.run(services.archive.stage))
            elif isinstance(event, PartData) and writer is not None:
                await writer.add(event.data)
            elif isinstance(event, PartEnd) and writer is not None:
                current, writer = writer, None
                await in_flight.acquire()
                outcomes.append(asyncio.create_task(_ingest(services, current, study, in_flight)))
    finally:
        if writer is not None:
            await services.blocking.run(writer.staged.discard)
        # Complete parts are stored even when the body breaks off later (each is whole).
        results = await asyncio.gather(*outcomes)
    stored = [r for r in results if isinstance(r, StoredInstance)]
    failed = [r for r in results if not isinstance(r, StoredInstance)]
    if not stored and not failed:
        raise InvalidInput("the request contained no DICOM parts")
    body: dict[str, Any] = {}
    if study or stored:
        body["00081190"] = {
            "vr": "UR", "Value": [study_url(base, study or stored[0].study_uid)]
        }
    if stored:
        body["00081199"] = {"vr": "SQ", "Value": [_sop_item(base, s) for s in stored]}
    if failed:
        body["00081198"] = {"vr": "SQ", "Value": failed}
    status = 200 if not failed else 202 if stored else 409
    return Response(body, status_code=status, media_type=DICOM_JSON)
