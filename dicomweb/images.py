"""Image responses: output format negotiation, strong ETags and 304 Not Modified."""

from __future__ import annotations

from dataclasses import dataclass

from litestar import Request, Response

from archive.slide_images import EncodedImage
from dicomweb.errors import NotAcceptable
from dicomweb.media import parse_accept
from wsi.errors import InvalidInput
from wsi.imaging import MEDIA_TYPES, OutputFormat

IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "public, max-age=300"
DAY = "public, max-age=86400"
_ALIASES: dict[str, OutputFormat] = {
    "jpeg": "jpeg", "jpg": "jpeg", "png": "png", "webp": "webp",
}


def output_format(request: Request) -> OutputFormat:
    """``?format=`` if given, else JPEG whenever Accept allows it, else PNG or WebP.

    JPEG is preferred over the client's order because stored JPEG frames are then sent
    without decoding; browsers send ``image/*`` or ``*/*`` with image requests.
    """
    asked = request.query_params.get("format")
    if asked:
        if asked.lower() not in _ALIASES:
            raise InvalidInput(f"format must be jpeg, png or webp, not {asked!r}")
        return _ALIASES[asked.lower()]
    fmt = accepted_format(request.headers.get("accept"))
    if fmt is None:
        raise NotAcceptable("images are available as image/jpeg, image/png and image/webp")
    return fmt


def accepted_format(accept: str | None) -> OutputFormat | None:
    """JPEG whenever ``accept`` allows it, else PNG or WebP, else None."""
    ranges = parse_accept(accept)
    for fmt in ("jpeg", "png", "webp"):
        if any(r.matches(MEDIA_TYPES[fmt]) for r in ranges):
            return fmt  # type: ignore[return-value]
    return None


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match against an (unquoted) entity tag, weak comparison (RFC 9110 §13.1.2)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*":
            return True
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate.strip('"') == etag:
            return True
    return False


@dataclass(frozen=True)
class ImageReply:
    """What a worker thread hands back: an image, or only its tag for a 304."""

    etag: str
    image: EncodedImage | None


def image_response(
    reply: ImageReply, cache_control: str, vary_accept: bool = True,
    extra_headers: dict[str, str] | None = None,
) -> Response[bytes]:
    """200 with the image, or 304 when the client already has it."""
    headers = {"ETag": f'"{reply.etag}"', "Cache-Control": cache_control, **(extra_headers or {})}
    if vary_accept:
        headers["Vary"] = "Accept"
    if reply.image is None:
        return Response(b"", status_code=304, headers=headers)
    return Response(reply.image.data, media_type=reply.image.media_type, headers=headers)
