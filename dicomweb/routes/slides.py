"""Slide uploads for server-side conversion: POST /api/slides → 202 + job, GET /api/jobs/{id}.

The upload is streamed to disk as it arrives (multipart/form-data with a ``file`` field, as
browsers send it, or a raw body with ``?filename=``); nothing of it is held in memory.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

from litestar import Request, Response, get, post

from dicomizer.metadata import SlideMetadata
from dicomizer.options import ConversionOptions
from dicomweb.errors import UnsupportedMediaType
from dicomweb.jobs import ConversionJobs
from dicomweb.multipart import PartData, PartEnd, PartStart, iter_parts, parse_content_type
from dicomweb.services import Services
from wsi.errors import InvalidInput, Unavailable

_METADATA_FIELDS = {f.name for f in dataclasses.fields(SlideMetadata) if f.name != "extra"}
_MAX_FIELD_BYTES = 4096
_WRITE_BYTES = 1024 * 1024
_DISPOSITION_PARAM = re.compile(r';\s*([\w*-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))')


def _disposition(value: str) -> dict[str, str]:
    return {m[1].lower(): m[2] if m[2] is not None else m[3]
            for m in _DISPOSITION_PARAM.finditer(value)}


class _UploadFile:
    """The upload on disk, written off the event loop in ≥1 MiB steps (that much buffered)."""

    def __init__(self, services: Services, path: Path) -> None:
        self._services = services
        self.path = path
        self.size = 0
        self._buffer: list[bytes] = []
        self._buffered = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("xb")

    async def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.size > self._services.settings.max_upload_bytes:
            raise InvalidInput("upload larger than the configured limit")
        self._buffer.append(data)
        self._buffered += len(data)
        if self._buffered >= _WRITE_BYTES:
            await self.flush()

    async def flush(self) -> None:
        chunk = b"".join(self._buffer)
        self._buffer, self._buffered = [], 0
        await self._services.blocking.run(self._file.write, chunk)

    async def close(self) -> None:
        await self.flush()
        await self._services.blocking.run(self._file.close)


def _jobs(services: Services) -> ConversionJobs:
    if services.jobs is None:
        raise Unavailable("server-side conversion is not enabled")
    return services.jobs


async def _receive_form(request: Request, services: Services, jobs: ConversionJobs,
                        boundary: str) -> tuple[str, Path, dict[str, str]]:
    fields: dict[str, str] = {}
    job_id: str | None = None
    upload: _UploadFile | None = None
    field_name: str | None = None
    field_value = bytearray()
    async for event in iter_parts(request.stream(), boundary):
        if isinstance(event, PartStart):
            params = _disposition(event.headers.get("content-disposition", ""))
            if "filename" in params and upload is None:
                job_id, path = await services.blocking.run(jobs.new_upload,
                                                           params["filename"])
                upload = _UploadFile(services, path)
                field_name = None
            else:
                field_name = params.get("name")
                field_value.clear()
        elif isinstance(event, PartData):
            if field_name is None and upload is not None:
                await upload.write(event.data)
            elif field_name is not None:
                field_value += event.data
                if len(field_value) > _MAX_FIELD_BYTES:
                    raise InvalidInput(f"form field {field_name!r} is too long")
        elif isinstance(event, PartEnd) and field_name is not None:
            fields[field_name] = field_value.decode("utf-8", "replace")
            field_name = None
    if upload is None or job_id is None:
        raise InvalidInput('the form has no file part (a field "file" with a filename)')
    await upload.close()
    return job_id, upload.path, fields


async def _receive_raw(request: Request, services: Services, jobs: ConversionJobs
                       ) -> tuple[str, Path, dict[str, str]]:
    filename = request.query_params.get("filename")
    if not filename:
        raise InvalidInput("a raw upload needs ?filename=NAME (the extension tells the format)")
    job_id, path = await services.blocking.run(jobs.new_upload, filename)
    upload = _UploadFile(services, path)
    async for chunk in request.stream():
        await upload.write(chunk)
    await upload.close()
    fields = {k: v for k, v in request.query_params.items() if k != "filename"}
    return job_id, path, fields


def _options(fields: dict[str, str]) -> ConversionOptions:
    unknown = set(fields) - _METADATA_FIELDS
    if unknown:
        raise InvalidInput(f"unknown fields: {', '.join(sorted(unknown))}; "
                           f"known: {', '.join(sorted(_METADATA_FIELDS))}")
    values: dict[str, Any] = {k: v for k, v in fields.items() if v != ""}
    if "series_number" in values:
        try:
            values["series_number"] = int(values["series_number"])
        except ValueError as exc:
            raise InvalidInput("series_number must be an integer") from exc
    return ConversionOptions(metadata=SlideMetadata(**values))


@post("/api/slides", request_max_body_size=None, status_code=202, tags=["Slides"],
      summary="Upload a vendor slide for conversion into a DICOM series")
async def upload_slide(request: Request, services: Services) -> Response[dict[str, Any]]:
    """Stream the upload to disk, then queue its conversion; answers 202 with the job."""
    jobs = _jobs(services)
    media_type, params = parse_content_type(
        request.headers.get("content-type", "application/octet-stream"))
    job_id: str | None = None
    try:
        if media_type == "multipart/form-data":
            if "boundary" not in params:
                raise InvalidInput("multipart/form-data without a boundary")
            job_id, path, fields = await _receive_form(request, services, jobs,
                                                       params["boundary"])
        elif media_type == "application/octet-stream":
            job_id, path, fields = await _receive_raw(request, services, jobs)
        else:
            raise UnsupportedMediaType(
                f"send multipart/form-data or application/octet-stream, not {media_type}")
        options = _options(fields)
    except BaseException:
        if job_id is not None:
            await services.blocking.run(jobs.discard_upload, job_id)
        raise
    # Writes the job's status and owner files: off the event loop.
    status = await services.blocking.run(jobs.submit, job_id, path, options)
    return Response(dataclasses.asdict(status), status_code=202,
                    headers={"Location": f"/api/jobs/{job_id}"})


@get("/api/jobs/{job_id:str}", tags=["Slides"], summary="State of a conversion job")
async def job_status(services: Services, job_id: str) -> dict[str, Any]:
    """queued → running → storing → done (with the series) or failed (with a reason)."""
    return dataclasses.asdict(await services.blocking.run(_jobs(services).status, job_id))


@get("/api/jobs", tags=["Slides"], summary="All conversion jobs")
async def list_jobs(services: Services) -> list[dict[str, Any]]:
    """Every job with a status file (any worker's, kept a week after it ended), oldest first."""
    return [dataclasses.asdict(s) for s in await services.blocking.run(_jobs(services).all)]


ROUTES = [upload_slide, job_status, list_jobs]
