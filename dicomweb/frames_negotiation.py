"""Which representation of frames to send for an Accept header (PS3.18 §8.7.3.5.3–4)."""

from __future__ import annotations

from dataclasses import dataclass

from dicomweb.errors import NotAcceptable
from dicomweb.media import parse_accept
from wsi.codecs import EXPLICIT_VR_BE, EXPLICIT_VR_LE, NATIVE, media_type_of

OCTET = "application/octet-stream"


@dataclass(frozen=True)
class FrameEncoding:
    """How frames go out: as stored, or decoded to native little-endian pixels."""

    multipart: bool
    media_type: str
    transfer_syntax_uid: str
    decode: bool

    @property
    def part_content_type(self) -> str:
        """Content-Type of each part (or of the single-part body)."""
        return f"{self.media_type}; transfer-syntax={self.transfer_syntax_uid}"


def _passthrough(multipart: bool, media_type: str, stored: str) -> FrameEncoding:
    return FrameEncoding(multipart, media_type, stored, decode=False)


def _native(multipart: bool, stored: str) -> FrameEncoding:
    # Native little-endian frames are already Explicit VR LE pixel data: no decode needed.
    decode = stored not in NATIVE or stored == EXPLICIT_VR_BE
    return FrameEncoding(multipart, OCTET, EXPLICIT_VR_LE, decode=decode)


def negotiate_frames(accept: str | None, stored: str, frame_count: int) -> FrameEncoding:
    """Pick the first acceptable representation, in the client's order of preference.

    ``*/*`` gets the frames as stored (the fastest path, and what viewers want); an explicit
    ``application/octet-stream`` without ``transfer-syntax=*`` gets decoded pixels, as the
    standard's default requires.
    """
    stored_media = media_type_of(stored)
    for media in parse_accept(accept):
        multipart = media.type.startswith("multipart/")
        if multipart:
            if media.type not in ("multipart/related", "multipart/*"):
                continue
            part_type = media.params.get("type", OCTET).lower()
        elif frame_count == 1 or media.type == "*/*":
            part_type = media.type
        else:
            continue
        wanted = media.params.get("transfer-syntax")
        if part_type == "*/*":
            return _passthrough(True, stored_media, stored)
        if part_type == OCTET:
            if wanted == "*" or (wanted == stored and stored_media == OCTET):
                return _passthrough(multipart, OCTET, stored)
            if wanted in (None, EXPLICIT_VR_LE):
                return _native(multipart, stored)
            continue
        if part_type == stored_media and wanted in (None, "*", stored):
            return _passthrough(multipart, stored_media, stored)
    raise NotAcceptable(
        f"frames are stored as {stored_media} (transfer syntax {stored}); acceptable are "
        f'multipart/related; type="{stored_media}", '
        'type="application/octet-stream"; transfer-syntax=* and decoded '
        'type="application/octet-stream"'
    )


