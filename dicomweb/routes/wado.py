"""WADO-RS (PS3.18 §10.4): instances, metadata and bulk data, streamed from disk."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

from litestar import Request, get
from litestar.response import Stream

from archive.archive import InstanceRecord
from archive.metadata import BULK_PLACEHOLDER
from archive.transcoding import can_decompress
from dicomweb import multipart
from dicomweb.errors import NotAcceptable
from dicomweb.media import parse_accept
from dicomweb.services import Services
from dicomweb.urls import dicomweb_base, instance_url, path_uids
from wsi.codecs import EXPLICIT_VR_LE

_CHUNK = 1024 * 1024
DICOM_JSON = "application/dicom+json"

STUDY = "/studies/{study:str}"
SERIES = STUDY + "/series/{series:str}"
INSTANCE = SERIES + "/instances/{instance:str}"


def _file_pieces(path: Path) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            yield chunk


def _chunks(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """Pieces joined into chunks of about 1 MiB (each chunk is one worker-thread hop)."""
    pending: list[bytes] = []
    size = 0
    for piece in pieces:
        pending.append(piece)
        size += len(piece)
        if size >= _CHUNK:
            yield pending[0] if len(pending) == 1 else b"".join(pending)
            pending, size = [], 0
    if pending:
        yield b"".join(pending)


def _parts_body(parts: list[tuple[str, Callable[[], Iterator[bytes]]]], boundary: str
                ) -> Iterator[bytes]:
    """The multipart body: each part's content streamed from its producer (bounded memory)."""
    def pieces() -> Iterator[bytes]:
        for part_type, produce in parts:
            yield multipart.part_head(boundary, part_type)
            yield from produce()
            yield multipart.part_tail()
        yield multipart.closing(boundary)
    return _chunks(pieces())


async def records_of(
    services: Services, study: str, series: str | None = None, instance: str | None = None
) -> list[InstanceRecord]:
    """The instances a study, series or instance URL addresses (UIDs validated first)."""
    st, se, sop = path_uids(study, series, instance)
    assert st is not None
    return await services.blocking.run(services.archive.instances, st, se, sop)


def _negotiate_instances(accept: str | None, records: list[InstanceRecord]) -> list[bool]:
    """Which instances to decompress so that the client accepts them all (PS3.18 §8.7.3.5.2).

    ``transfer-syntax=*``, or no transfer syntax named, sends every instance as stored (what
    Orthanc does too: retrieval stays a plain file stream); naming the stored syntax does the
    same; naming Explicit VR Little Endian decompresses the instances stored otherwise
    (:mod:`archive.transcoding`). Anything else is a 406.
    """
    stored = {r.transfer_syntax_uid for r in records}
    for media in parse_accept(accept):
        if media.type in ("*/*", "multipart/*") or (
            media.type == "multipart/related"
            and media.params.get("type", "application/dicom") in ("application/dicom", "*/*")
        ) or media.type == "application/dicom":
            wanted = media.params.get("transfer-syntax", "*")
            if wanted == "*" or stored == {wanted}:
                return [False] * len(records)
            if wanted == EXPLICIT_VR_LE and all(
                    ts == EXPLICIT_VR_LE or can_decompress(ts) for ts in stored):
                return [r.transfer_syntax_uid != EXPLICIT_VR_LE for r in records]
    raise NotAcceptable(
        "instances are available as multipart/related; type=\"application/dicom\" in their "
        f"stored transfer syntax ({', '.join(sorted(stored))}) or, where they can be decoded, "
        f"in Explicit VR Little Endian ({EXPLICIT_VR_LE})"
    )


async def _retrieve(
    request: Request, services: Services, study: str,
    series: str | None = None, instance: str | None = None,
) -> Stream:
    records = await records_of(services, study, series, instance)
    decompress = _negotiate_instances(request.headers.get("accept"), records)
    archive = services.archive
    parts: list[tuple[str, Callable[[], Iterator[bytes]]]] = []
    for record, unpack in zip(records, decompress, strict=True):
        if unpack:
            parts.append((f"application/dicom; transfer-syntax={EXPLICIT_VR_LE}",
                          functools.partial(archive.decompressed, record)))
        else:
            parts.append((f"application/dicom; transfer-syntax={record.transfer_syntax_uid}",
                          functools.partial(_file_pieces, record.path)))
    boundary = multipart.new_boundary()
    return Stream(
        services.blocking.iterate(_parts_body(parts, boundary)),
        media_type=multipart.content_type_header(boundary, "application/dicom"),
        headers={"Content-Disposition": "inline"},
    )


@get(STUDY, summary="WADO-RS: retrieve a study")
async def retrieve_study(request: Request, services: Services, study: str) -> Stream:
    """All instances of a study as multipart/related application/dicom."""
    return await _retrieve(request, services, study)


@get(SERIES, summary="WADO-RS: retrieve a series")
async def retrieve_series(
    request: Request, services: Services, study: str, series: str
) -> Stream:
    """All instances of a series as multipart/related application/dicom."""
    return await _retrieve(request, services, study, series)


@get(INSTANCE, summary="WADO-RS: retrieve an instance")
async def retrieve_instance(
    request: Request, services: Services, study: str, series: str, instance: str
) -> Stream:
    """One instance as multipart/related application/dicom."""
    return await _retrieve(request, services, study, series, instance)


def _metadata_texts(services: Services, records: list[InstanceRecord]) -> list[str]:
    return list(services.archive.metadata(records))


async def _metadata_body(
    services: Services, base: str, records: list[InstanceRecord]
) -> AsyncIterator[bytes]:
    """A JSON array of the instances' metadata, in pages of 500 instances."""
    yield b"["
    for start in range(0, len(records), 500):
        page = records[start : start + 500]
        texts = await services.blocking.run(_metadata_texts, services, page)
        pieces = []
        for i, (record, text) in enumerate(zip(page, texts, strict=True)):
            url = instance_url(base, record.study_uid, record.series_uid, record.sop_instance_uid)
            prefix = "," if start + i else ""
            pieces.append(prefix + text.replace(BULK_PLACEHOLDER, url + "/bulkdata/"))
        yield "".join(pieces).encode()
    yield b"]"


async def _metadata(
    request: Request, services: Services, study: str,
    series: str | None = None, instance: str | None = None,
) -> Stream:
    records = await records_of(services, study, series, instance)
    for media in parse_accept(request.headers.get("accept")):
        if media.matches(DICOM_JSON) or media.matches("application/json"):
            break
    else:
        raise NotAcceptable("metadata is available as application/dicom+json only")
    return Stream(_metadata_body(services, dicomweb_base(request), records), media_type=DICOM_JSON)


@get(STUDY + "/metadata", summary="WADO-RS: study metadata")
async def study_metadata(request: Request, services: Services, study: str) -> Stream:
    """Metadata of every instance in a study."""
    return await _metadata(request, services, study)


@get(SERIES + "/metadata", summary="WADO-RS: series metadata")
async def series_metadata(
    request: Request, services: Services, study: str, series: str
) -> Stream:
    """Metadata of every instance in a series."""
    return await _metadata(request, services, study, series)


@get(INSTANCE + "/metadata", summary="WADO-RS: instance metadata")
async def instance_metadata(
    request: Request, services: Services, study: str, series: str, instance: str
) -> Stream:
    """Metadata of one instance."""
    return await _metadata(request, services, study, series, instance)


ROUTES: list[Any] = [
    retrieve_study, retrieve_series, retrieve_instance,
    study_metadata, series_metadata, instance_metadata,
]
