"""Error category → HTTP status and JSON reason, in one place."""

from __future__ import annotations

import logging

from litestar import Request, Response
from litestar.exceptions import HTTPException

from wsi.errors import Conflict, InvalidInput, NotFound, Unavailable, Unsupported, WsiArchiveError
from wsi.iiif import FeatureNotImplemented

log = logging.getLogger(__name__)

HTTP_STATUS: dict[type[WsiArchiveError], int] = {
    InvalidInput: 400,
    NotFound: 404,
    Conflict: 409,
    Unsupported: 406,
    Unavailable: 503,
}


class NotAcceptable(Unsupported):
    """No representation the client accepts (HTTP 406)."""


class UnsupportedMediaType(Unsupported):
    """The request body has a content type this route does not take (HTTP 415)."""


HTTP_STATUS[UnsupportedMediaType] = 415
HTTP_STATUS[FeatureNotImplemented] = 501


def status_of(error: WsiArchiveError) -> int:
    """The HTTP status for an archive error, by its most specific category."""
    for cls in type(error).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 500


def archive_error_handler(_request: Request, error: WsiArchiveError) -> Response:
    """Answer an expected error with its status and reason."""
    return Response({"error": error.reason}, status_code=status_of(error))


def http_error_handler(_request: Request, error: HTTPException) -> Response:
    """Litestar's own errors (routing, validation) in the same JSON shape."""
    return Response({"error": error.detail}, status_code=error.status_code,
                    headers=getattr(error, "headers", None))


def unexpected_error_handler(request: Request, error: Exception) -> Response:
    """Anything unexpected: logged with its traceback, answered with a generic 500."""
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return Response({"error": "internal server error"}, status_code=500)


EXCEPTION_HANDLERS = {
    WsiArchiveError: archive_error_handler,
    HTTPException: http_error_handler,
    Exception: unexpected_error_handler,
}
