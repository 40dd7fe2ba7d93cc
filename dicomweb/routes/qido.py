"""QIDO-RS (PS3.18 §10.6): search studies, series and instances."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get

from archive.attributes import Level
from archive.index.finder import resolve_key
from archive.query import Filter, Query
from dicomweb.services import Services
from dicomweb.urls import dicomweb_base, instance_url, path_uids, series_url, study_url
from wsi.errors import InvalidInput

DICOM_JSON = "application/dicom+json"
_CONTROL = {"includefield", "limit", "offset", "fuzzymatching", "orderby", "count"}
MAX_LIMIT = 10_000


def _int(value: str, name: str) -> int:
    try:
        number = int(value)
    except ValueError as exc:
        raise InvalidInput(f"{name} must be an integer, not {value!r}") from exc
    if number < 0:
        raise InvalidInput(f"{name} must not be negative")
    return number


def parse_query(
    request: Request, level: Level, study: str | None = None, series: str | None = None
) -> tuple[Query, list[str]]:
    """Turn QIDO-RS query parameters into a :class:`Query`; also return ignored keys."""
    filters: list[Filter] = []
    include: list[str] = []
    include_all = False
    limit: int | None = None
    offset = 0
    fuzzy = False
    ignored: list[str] = []
    for key, value in request.query_params.multi_items():
        name = key.lower()
        if name == "includefield":
            for field in value.split(","):
                field = field.strip()
                if field == "all":
                    include_all = True
                elif field:
                    include.append(resolve_key(field))
        elif name == "limit":
            limit = _int(value, "limit")
        elif name == "offset":
            offset = _int(value, "offset")
        elif name == "fuzzymatching":
            fuzzy = value.lower() == "true"
        elif name in _CONTROL:
            ignored.append(key)
        elif "." in key:
            ignored.append(key)  # sequence matching (PS3.18 §8.3.4.1) is not supported
        else:
            filters.append(Filter(resolve_key(key), value))
    if limit is None or limit > MAX_LIMIT:
        limit = MAX_LIMIT
    query = Query(level, tuple(filters), tuple(include), include_all, limit, offset, fuzzy,
                  study, series)
    return query, ignored


async def _search(
    request: Request, services: Services, level: Level,
    study: str | None = None, series: str | None = None,
) -> Response[Any]:
    study, series = path_uids(study, series)
    query, ignored = parse_query(request, level, study, series)
    result = await services.blocking.run(services.archive.find, query)
    base = dicomweb_base(request)
    for match in result.matches:
        st = match.get("0020000D", {}).get("Value", [""])[0]
        if level == Level.STUDY:
            url = study_url(base, st)
        elif level == Level.SERIES:
            url = series_url(base, st, match["0020000E"]["Value"][0])
        else:
            url = instance_url(
                base, st, match["0020000E"]["Value"][0], match["00080018"]["Value"][0]
            )
        match["00081190"] = {"vr": "UR", "Value": [url]}
    headers = {}
    unsupported = [*result.unsupported, *ignored]
    if unsupported:
        headers["Warning"] = (
            f'299 wsi-archive "The following parameters are not supported for matching '
            f'and were ignored: {", ".join(unsupported)}"'
        )
    return Response(result.matches, media_type=DICOM_JSON, headers=headers)


@get("/studies", summary="QIDO-RS: search studies")
async def search_studies(request: Request, services: Services) -> Response[Any]:
    """Search for studies."""
    return await _search(request, services, Level.STUDY)


@get(["/series", "/studies/{study:str}/series"], summary="QIDO-RS: search series")
async def search_series(
    request: Request, services: Services, study: str | None = None
) -> Response[Any]:
    """Search for series, in all studies or in one."""
    return await _search(request, services, Level.SERIES, study)


@get(
    ["/instances", "/studies/{study:str}/instances",
     "/studies/{study:str}/series/{series:str}/instances"],
    summary="QIDO-RS: search instances",
)
async def search_instances(
    request: Request, services: Services, study: str | None = None, series: str | None = None
) -> Response[Any]:
    """Search for instances, in all studies, one study or one series."""
    return await _search(request, services, Level.INSTANCE, study, series)


ROUTES = [search_studies, search_series, search_instances]
