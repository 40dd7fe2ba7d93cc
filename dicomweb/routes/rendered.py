"""WADO-RS rendered resources and thumbnails (PS3.18 §10.4.1.1.3–4, §8.3.5)."""

from __future__ import annotations

import json
from typing import Any

from litestar import Request, Response, get

from archive.archive import InstanceRecord
from dicomweb.errors import NotAcceptable
from dicomweb.media import parse_accept
from dicomweb.routes.frames import parse_frame_list
from dicomweb.routes.wado import INSTANCE, SERIES, STUDY, records_of
from dicomweb.services import Services
from wsi.errors import InvalidInput
from wsi.rendering import RENDERED_TYPES, Presentation, RenderOptions, render

THUMBNAIL_SIZE = (200, 200)


def _number(data: dict[str, Any], tag: str) -> float | None:
    values = data.get(tag, {}).get("Value")
    return float(values[0]) if values else None


def presentation_of(metadata_text: str) -> Presentation:
    """Presentation facts from stored metadata (default windowing for CT and MR)."""
    data = json.loads(metadata_text)
    photometric = (data.get("00280004", {}).get("Value") or ["MONOCHROME2"])[0]
    return Presentation(
        photometric=photometric,
        rescale_slope=_number(data, "00281053") or 1.0,
        rescale_intercept=_number(data, "00281052") or 0.0,
        window_center=_number(data, "00281050"),
        window_width=_number(data, "00281051"),
    )


def _options(request: Request, thumbnail: bool) -> RenderOptions:
    media_type = None
    for media in parse_accept(request.headers.get("accept")):
        media_type = next((t for t in RENDERED_TYPES if media.matches(t)), None)
        if media_type:
            break
    if media_type is None:
        raise NotAcceptable(f"rendered images are available as {', '.join(RENDERED_TYPES)}")
    params = request.query_params
    try:
        quality = int(params.get("quality", 90))
        viewport = (
            tuple(int(v) for v in params["viewport"].split(",")[:2])
            if "viewport" in params else None
        )
        window = (
            tuple(float(v) for v in params["window"].split(",")[:2])
            if "window" in params else None
        )
    except ValueError as exc:
        raise InvalidInput(f"invalid rendering parameter: {exc}") from exc
    if thumbnail and viewport is None:
        viewport = THUMBNAIL_SIZE
    return RenderOptions(media_type, max(1, min(quality, 100)), viewport, window)  # type: ignore[arg-type]


def _render_record(
    services: Services, record: InstanceRecord, frame: int, options: RenderOptions
) -> bytes:
    array = next(services.archive.decoded_frames(record, [frame]))
    presentation = presentation_of(next(services.archive.metadata([record])))
    return render(array, presentation, options)


async def _rendered(
    request: Request, services: Services, thumbnail: bool, study: str,
    series: str | None = None, instance: str | None = None, frames: str | None = None,
) -> Response[bytes]:
    options = _options(request, thumbnail)
    records = await records_of(services, study, series, instance)
    # A study or series is represented by its middle instance, as viewers expect.
    record = records[len(records) // 2]
    frame = parse_frame_list(frames)[0] if frames else 1
    data = await services.blocking.run(_render_record, services, record, frame, options)
    return Response(
        data, media_type=options.media_type,
        headers={"Cache-Control": "private, max-age=86400"},
    )


@get([STUDY + "/rendered", STUDY + "/thumbnail"], summary="WADO-RS: rendered study")
async def rendered_study(request: Request, services: Services, study: str) -> Response[bytes]:
    """A representative rendered image of a study."""
    return await _rendered(request, services, request.url.path.endswith("thumbnail"), study)


@get([SERIES + "/rendered", SERIES + "/thumbnail"], summary="WADO-RS: rendered series")
async def rendered_series(
    request: Request, services: Services, study: str, series: str
) -> Response[bytes]:
    """A representative rendered image of a series."""
    thumbnail = request.url.path.endswith("thumbnail")
    return await _rendered(request, services, thumbnail, study, series)


@get([INSTANCE + "/rendered", INSTANCE + "/thumbnail"], summary="WADO-RS: rendered instance")
async def rendered_instance(
    request: Request, services: Services, study: str, series: str, instance: str
) -> Response[bytes]:
    """The rendered first frame of an instance."""
    thumbnail = request.url.path.endswith("thumbnail")
    return await _rendered(request, services, thumbnail, study, series, instance)


@get(
    [INSTANCE + "/frames/{frames:str}/rendered", INSTANCE + "/frames/{frames:str}/thumbnail"],
    summary="WADO-RS: rendered frame",
)
async def rendered_frame(
    request: Request, services: Services, study: str, series: str, instance: str, frames: str
) -> Response[bytes]:
    """One rendered frame."""
    thumbnail = request.url.path.endswith("thumbnail")
    return await _rendered(request, services, thumbnail, study, series, instance, frames)


ROUTES: list[Any] = [rendered_study, rendered_series, rendered_instance, rendered_frame]
