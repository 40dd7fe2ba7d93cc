"""IIIF Image API 3.0 under ``/iiif/3/{series_uid}`` (level 2, see :mod:`wsi.iiif`)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get
from litestar.response import Redirect

from dicomweb.images import DAY, REVALIDATE, ImageReply, etag_matches, image_response
from dicomweb.services import Services
from dicomweb.slide_descriptor import IIIF_PREFIX
from dicomweb.urls import origin
from wsi import iiif
from wsi.dicom.uids import validate_uid

IMAGE = IIIF_PREFIX + "/{series_uid:str}"
_LINK = f'<{iiif.PROFILE_URI}>;rel="profile"'
_LD_JSON = f'application/ld+json;profile="{iiif.CONTEXT}"'


def _uid(value: str) -> str:
    return validate_uid(value, "Series Instance UID")


@get(IMAGE, summary="IIIF: base URI redirects to info.json", tags=["IIIF"])
async def iiif_base(series_uid: str) -> Redirect:
    """§2.2: the base URI redirects (303) to the image information."""
    return Redirect(f"{IIIF_PREFIX}/{_uid(series_uid)}/info.json", status_code=303)


def _info(services: Services, series_uid: str, service_id: str) -> tuple[dict[str, Any], str]:
    slide = services.archive.slide(series_uid)
    return iiif.info(slide.pyramid, service_id), slide.version


@get(IMAGE + "/info.json", summary="IIIF: image information", tags=["IIIF"])
async def iiif_info(request: Request, services: Services, series_uid: str) -> Response[Any]:
    """The image information document of the slide's main pyramid (§5)."""
    uid = _uid(series_uid)
    service_id = f"{origin(request)}{IMAGE.replace('{series_uid:str}', uid)}"
    document, version = await services.blocking.run(_info, services, uid, service_id)
    accept = request.headers.get("accept") or ""
    media_type = _LD_JSON if "application/ld+json" in accept else "application/json"
    return Response(
        document, media_type=media_type,
        headers={"Link": _LINK, "Cache-Control": REVALIDATE, "ETag": f'"{version}"',
                 "Vary": "Accept"},
    )


def _image_reply(
    services: Services, series_uid: str, params: tuple[str, str, str, str],
    if_none_match: str | None,
) -> ImageReply:
    slide = services.archive.slide(series_uid)
    request = iiif.parse_request(*params, slide.pyramid.base.size)
    images = services.archive.images
    etag = images.iiif_etag(slide, request)
    if etag_matches(if_none_match, etag):
        return ImageReply(etag, None)
    return ImageReply(etag, images.iiif(slide, request))


@get(IMAGE + "/{region:str}/{size:str}/{rotation:str}/{quality_format:str}",
     summary="IIIF: image request", tags=["IIIF"])
async def iiif_image(
    request: Request, services: Services, series_uid: str, region: str, size: str,
    rotation: str, quality_format: str,
) -> Response[bytes]:
    """``{region}/{size}/{rotation}/{quality}.{format}`` (§4); aligned tiles as stored."""
    reply = await services.blocking.run(
        _image_reply, services, _uid(series_uid), (region, size, rotation, quality_format),
        request.headers.get("if-none-match"),
    )
    return image_response(reply, DAY, vary_accept=False, extra_headers={"Link": _LINK})


ROUTES: list[Any] = [iiif_base, iiif_info, iiif_image]
