"""WADO-RS frames and bulk data (PS3.18 §10.4.1.1.6–7): one positioned read per frame."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from litestar import Request, Response, get
from litestar.response import Stream

from archive.archive import InstanceRecord
from dicomweb import multipart
from dicomweb.errors import NotAcceptable
from dicomweb.frames_negotiation import OCTET, FrameEncoding, negotiate_frames
from dicomweb.media import parse_accept
from dicomweb.routes.wado import INSTANCE
from dicomweb.services import Services
from dicomweb.urls import path_uids
from wsi.codecs import native_bytes
from wsi.errors import InvalidInput

PIXEL_DATA = "7FE00010"
FRAME_CACHE_CONTROL = "private, max-age=86400"
_MAX_FRAMES_IN_MEMORY = 8


def parse_frame_list(text: str) -> list[int]:
    """``1,5,9`` → [1, 5, 9]; frame numbers are 1-based (PS3.18 §8.3.1)."""
    try:
        numbers = [int(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise InvalidInput(f"invalid frame list {text!r}") from exc
    if not numbers or min(numbers) < 1:
        raise InvalidInput(f"invalid frame list {text!r}: frame numbers start at 1")
    return numbers


def _frames(
    services: Services, record: InstanceRecord, numbers: list[int], encoding: FrameEncoding
) -> Iterator[bytes]:
    if encoding.decode:
        return (native_bytes(a) for a in services.archive.decoded_frames(record, numbers))
    return services.archive.read_frames(record, numbers)


def _multipart_body(frames: Iterator[bytes], encoding: FrameEncoding, boundary: str
                    ) -> Iterator[bytes]:
    for data in frames:
        yield multipart.part_head(boundary, encoding.part_content_type) + data + b"\r\n"
    yield multipart.closing(boundary)


@dataclass(frozen=True)
class _FrameReply:
    encoding: FrameEncoding
    record: InstanceRecord
    boundary: str
    body: bytes | None
    """The whole body when it is small (a few frames); None when it is to be streamed."""


def _prepare(
    services: Services, address: tuple[str, str, str], numbers: list[int], accept: str | None
) -> _FrameReply:
    """Lookup, negotiation and (for a few frames) the reads, in one worker-thread hop."""
    record = services.archive.instance(*address)
    encoding = negotiate_frames(accept, record.transfer_syntax_uid, len(numbers))
    boundary = multipart.new_boundary()
    body = None
    if not encoding.multipart:
        body = b"".join(_frames(services, record, numbers, encoding))
    elif len(numbers) <= _MAX_FRAMES_IN_MEMORY:
        frames = _frames(services, record, numbers, encoding)
        body = b"".join(_multipart_body(frames, encoding, boundary))
    return _FrameReply(encoding, record, boundary, body)


async def _send_frames(
    request: Request, services: Services, address: tuple[str, str, str], numbers: list[int]
) -> Response[bytes] | Stream:
    reply = await services.blocking.run(
        _prepare, services, address, numbers, request.headers.get("accept")
    )
    encoding, record = reply.encoding, reply.record
    headers = {"ETag": f'"{record.etag}-{",".join(map(str, numbers))}"',
               "Cache-Control": FRAME_CACHE_CONTROL}
    if not encoding.multipart:
        return Response(reply.body or b"", media_type=encoding.part_content_type, headers=headers)
    media_type = multipart.content_type_header(reply.boundary, encoding.media_type)
    media_type += f"; transfer-syntax={encoding.transfer_syntax_uid}"
    if reply.body is not None:
        return Response(reply.body, media_type=media_type, headers=headers)
    stream = _multipart_body(
        _frames(services, record, numbers, encoding), encoding, reply.boundary
    )
    return Stream(services.blocking.iterate(stream), media_type=media_type, headers=headers)


def _address(study: str, series: str, instance: str) -> tuple[str, str, str]:
    st, se, sop = path_uids(study, series, instance)
    assert st is not None and se is not None and sop is not None
    return st, se, sop


@get(INSTANCE + "/frames/{frames:str}", summary="WADO-RS: retrieve frames")
async def retrieve_frames(
    request: Request, services: Services, study: str, series: str, instance: str, frames: str
) -> Response[bytes] | Stream:
    """Frames of an instance, as stored or decoded, by Accept."""
    numbers = parse_frame_list(frames)
    return await _send_frames(request, services, _address(study, series, instance), numbers)


@get(INSTANCE + "/bulkdata/{path:path}", summary="WADO-RS: retrieve bulk data")
async def retrieve_bulkdata(
    request: Request, services: Services, study: str, series: str, instance: str, path: str
) -> Response[bytes] | Stream:
    """A BulkDataURI target: pixel data as frames, other values as octet-stream."""
    address = _address(study, series, instance)
    record = await services.blocking.run(services.archive.instance, *address)
    path = path.strip("/")
    if path.upper() == PIXEL_DATA:
        numbers = list(range(1, record.number_of_frames + 1))
        return await _send_frames(request, services, address, numbers)
    value = await services.blocking.run(services.archive.bulk_value, record, path)
    for media in parse_accept(request.headers.get("accept")):
        if media.type == "multipart/related" or media.type == "*/*":
            boundary = multipart.new_boundary()
            body = multipart.part_head(boundary, OCTET) + value + b"\r\n"
            body += multipart.closing(boundary)
            return Response(body, media_type=multipart.content_type_header(boundary, OCTET))
        if media.matches(OCTET):
            return Response(value, media_type=OCTET)
    raise NotAcceptable("bulk data is available as application/octet-stream")


ROUTES: list[Any] = [retrieve_frames, retrieve_bulkdata]
