"""URLs as the client sees them (scheme and host it called, honouring proxy headers)."""

from __future__ import annotations

from litestar import Request

from wsi.dicom.uids import validate_uid

DICOMWEB_PREFIX = "/dicom-web"


def origin(request: Request) -> str:
    """``scheme://host[:port]`` the client used, from Forwarded/X-Forwarded-* or Host."""
    headers = request.headers
    proto = headers.get("x-forwarded-proto")
    host = headers.get("x-forwarded-host")
    forwarded = headers.get("forwarded")
    if forwarded:
        for pair in forwarded.split(",")[0].split(";"):
            name, _, value = pair.strip().partition("=")
            if name.lower() == "proto":
                proto = value.strip('"')
            elif name.lower() == "host":
                host = value.strip('"')
    proxied = bool(host or proto)
    proto = proto or request.url.scheme
    host = host or headers.get("host") or request.url.netloc
    server = request.scope.get("server")
    has_port = ":" in host.rsplit("]", 1)[-1]
    if not proxied and not has_port and server and server[1] not in (None, 80, 443):
        # Some clients (dicomweb-client sets Host to the bare host name) omit the port; when
        # no proxy is involved, the port the client reached is the one this server bound.
        host = f"{host}:{server[1]}"
    return f"{proto}://{host}"


def dicomweb_base(request: Request) -> str:
    """The DICOMweb root URL the client called."""
    return origin(request) + DICOMWEB_PREFIX


def study_url(base: str, study: str) -> str:
    """RetrieveURL of a study."""
    return f"{base}/studies/{study}"


def series_url(base: str, study: str, series: str) -> str:
    """RetrieveURL of a series."""
    return f"{base}/studies/{study}/series/{series}"


def instance_url(base: str, study: str, series: str, instance: str) -> str:
    """RetrieveURL of an instance."""
    return f"{base}/studies/{study}/series/{series}/instances/{instance}"


def path_uids(*values: str | None) -> list[str | None]:
    """Validate the UIDs taken from a URL path (so ``..`` and friends fail with 400)."""
    return [None if v is None else validate_uid(v, "UID in path") for v in values]
