"""Slide tiles for browsers: pyramid descriptor, tiles, label, overview and thumbnail.

Each request makes one worker-thread hop: slide lookup (cached), frame location, the
If-None-Match check and, unless the client has the tile already, one positioned read.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from dicomweb.images import (
    IMMUTABLE,
    REVALIDATE,
    ImageReply,
    etag_matches,
    image_response,
    output_format,
)
from dicomweb.services import Services
from dicomweb.slide_descriptor import WSI_PREFIX, describe
from dicomweb.urls import origin
from wsi.dicom.uids import validate_uid
from wsi.imaging import OutputFormat

SERIES = WSI_PREFIX + "/{series_uid:str}"


def _uid(value: str) -> str:
    return validate_uid(value, "Series Instance UID")


@get(SERIES, summary="Slide: pyramid descriptor", tags=["Slides"])
async def slide_descriptor(request: Request, services: Services, series_uid: str
                           ) -> Response[Any]:
    """Levels, tile size, pixel spacing, focal planes, optical paths, associated images."""
    slide = await services.blocking.run(services.archive.slide, _uid(series_uid))
    return Response(describe(slide, origin(request)), headers={"Cache-Control": "no-cache"})


def _tile_reply(
    services: Services, series_uid: str, level: int, col: int, row: int,
    z: int | None, path: str | None, fmt: OutputFormat, if_none_match: str | None,
) -> ImageReply:
    slide = services.archive.slide(series_uid)
    images = services.archive.images
    etag = images.tile_etag(slide, level, col, row, z, path, fmt)
    if etag_matches(if_none_match, etag):
        return ImageReply(etag, None)
    image = images.tile(slide, level, col, row, z, path, fmt)
    return ImageReply(image.etag, image)


@get(SERIES + "/tiles/{level:int}/{col:int}/{row:int}", summary="Slide: one tile",
     tags=["Slides"])
async def slide_tile(
    request: Request, services: Services, series_uid: str, level: int, col: int, row: int,
    z: int | None = None, path: str | None = None,
) -> Response[bytes]:
    """Tile (col, row) of a level (0 = full resolution): stored JPEG frames as they are.

    ``z`` is a focal plane index and ``path`` an optical path identifier (defaults: the
    first). Frames a browser cannot show are transcoded (JPEG, or PNG/WebP by ``format`` or
    Accept); tiles a sparse slide does not store are white.
    """
    fmt = output_format(request)
    reply = await services.blocking.run(
        _tile_reply, services, _uid(series_uid), level, col, row, z, path, fmt,
        request.headers.get("if-none-match"),
    )
    return image_response(reply, IMMUTABLE, vary_accept="format" not in request.query_params)


def _associated_reply(
    services: Services, series_uid: str, kind: str, fmt: OutputFormat, if_none_match: str | None
) -> ImageReply:
    slide = services.archive.slide(series_uid)
    image = services.archive.images.associated(slide, kind, fmt)
    if etag_matches(if_none_match, image.etag):
        return ImageReply(image.etag, None)
    return ImageReply(image.etag, image)


async def _associated(request: Request, services: Services, series_uid: str, kind: str
                      ) -> Response[bytes]:
    fmt = output_format(request)
    reply = await services.blocking.run(
        _associated_reply, services, _uid(series_uid), kind, fmt,
        request.headers.get("if-none-match"),
    )
    return image_response(reply, REVALIDATE, vary_accept="format" not in request.query_params)


@get(SERIES + "/label", summary="Slide: label image", tags=["Slides"])
async def slide_label(request: Request, services: Services, series_uid: str) -> Response[bytes]:
    """The LABEL image of the slide; 404 if it has none."""
    return await _associated(request, services, series_uid, "label")


@get(SERIES + "/overview", summary="Slide: overview (macro) image", tags=["Slides"])
async def slide_overview(request: Request, services: Services, series_uid: str
                         ) -> Response[bytes]:
    """The OVERVIEW image of the slide; 404 if it has none."""
    return await _associated(request, services, series_uid, "overview")


@get(SERIES + "/thumbnail", summary="Slide: thumbnail", tags=["Slides"])
async def slide_thumbnail(request: Request, services: Services, series_uid: str
                          ) -> Response[bytes]:
    """The THUMBNAIL image, or one made from a low-resolution level."""
    return await _associated(request, services, series_uid, "thumbnail")


ROUTES: list[Any] = [slide_descriptor, slide_tile, slide_label, slide_overview, slide_thumbnail]
