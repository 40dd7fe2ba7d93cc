"""The hot paths: slide tiles and single WADO-RS frames answered on the event loop, no I/O wait.

Why it exists: a viewer asks for hundreds of tiles (or frames, for DICOMweb viewers such as
Slim) per screen. Through Litestar each costs ~0.5 ms of event-loop CPU (middlewares,
dependency injection, signature parsing, response building) plus a worker-thread hop, which
caps one process near 1,000 requests/s. This ASGI layer in front of the Litestar app answers
the common cases itself:

- ``GET /wsi/series/{uid}/tiles/{level}/{col}/{row}`` with no query but the slide version
  ``v`` (so the default focal plane and optical path) and an Accept allowing ``image/jpeg``,
  when the stored JPEG is one a browser shows as it is (:func:`wsi.browser_jpeg.for_browser`);
- ``GET /dicom-web/studies/{st}/series/{se}/instances/{sop}/frames/{n}`` for one frame with
  no query, when Accept takes the frame as stored (PS3.18 §8.7.3.5.3–4, the same
  :func:`negotiate_frames` the route uses);

and only if the instance record, the slide and the frame table are cached (the archive
answers from memory) and the frame's bytes are in the page cache: ``preadv2`` with
``RWF_NOWAIT`` (Linux >= 4.14) copies them without blocking, or fails with EAGAIN when it
would have to wait for the disk.

Every other request, including one whose caches are cold, goes to the Litestar app
unchanged (routes/tiles.py, routes/frames.py), which does the blocking work in a worker
thread and so warms the caches. The rules (404s, formats, transcoding, 304s, headers) are
defined there; this layer gives the same bytes and headers for the cases it takes (tests
compare both).
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import cast

from litestar.config.cors import CORSConfig
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    HTTPScope,
    Message,
    Receive,
    Scope,
    Send,
)

from archive.slide_images import FrameSpan
from dicomweb import multipart
from dicomweb.frames_negotiation import FrameEncoding, negotiate_frames
from dicomweb.images import IMMUTABLE, accepted_format, etag_matches
from dicomweb.routes.frames import FRAME_CACHE_CONTROL
from dicomweb.services import Services
from dicomweb.slide_descriptor import WSI_PREFIX
from dicomweb.urls import DICOMWEB_PREFIX
from wsi.browser_jpeg import for_browser
from wsi.errors import WsiArchiveError

log = logging.getLogger(__name__)

_UID = r"([0-9.]{1,64})"
_TILE_PATH = re.compile(
    re.escape(WSI_PREFIX) + rf"/{_UID}/tiles/(\d{{1,3}})/(\d{{1,7}})/(\d{{1,7}})"
)
_FRAME_PATH = re.compile(
    re.escape(DICOMWEB_PREFIX) + rf"/studies/{_UID}/series/{_UID}/instances/{_UID}"
    r"/frames/(\d{1,9})"
)
# The descriptor's tile URLs carry the slide version (``?v=``) to bust browser caches after
# an ingest; any other parameter (z, path, format) is for the Litestar route.
_TILE_QUERY = re.compile(rb"(v=[0-9A-Za-z._-]{1,64})?")
_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)
_MAX_REMEMBERED_HEADERS = 64
_SWEEP_SECONDS = 2.0
"""How often open files are checked against deletions while no request comes."""

Headers = list[tuple[bytes, bytes]]


class _Request:
    """The request headers the hot paths look at."""

    __slots__ = ("accept", "if_none_match", "origin", "has_cookie")

    def __init__(self, scope: HTTPScope) -> None:
        self.accept: bytes | None = None
        self.if_none_match: bytes | None = None
        self.origin: bytes | None = None
        self.has_cookie = False
        for name, value in scope["headers"]:
            if name == b"accept":
                self.accept = value
            elif name == b"if-none-match":
                self.if_none_match = value
            elif name == b"origin":
                self.origin = value
            elif name == b"cookie":
                self.has_cookie = True


class _OpenFiles:
    """Open descriptors of recently served instance files, used by the event loop only.

    Keyed by path *and* content hash: a file replaced under the same path (overwrite on
    conflict) is another entry, and an unlinked file stays readable while it is open.
    Opening is the one blocking step, so it runs in a worker thread, once per file.

    Files are let go of when instances are deleted or replaced (by any process), or their
    space stays in use: checked at each request and, while files are open, every
    :data:`_SWEEP_SECONDS` on the event loop, since this worker may get no request for long.
    """

    def __init__(self, services: Services, capacity: int = 128) -> None:
        self._services = services
        self._capacity = capacity
        self._fds: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._removals = services.archive.removals
        self._sweep_scheduled = False

    def _let_go_if_removed(self) -> None:
        removals = self._services.archive.removals
        if self._removals != removals:
            self._removals = removals
            self.close()

    def _sweep(self) -> None:
        self._sweep_scheduled = False
        self._let_go_if_removed()
        self._schedule_sweep()

    def _schedule_sweep(self) -> None:
        if self._fds and not self._sweep_scheduled:
            asyncio.get_running_loop().call_later(_SWEEP_SECONDS, self._sweep)
            self._sweep_scheduled = True

    async def read_if_cached(self, span: FrameSpan) -> bytes | None:
        """The span's bytes if the page cache holds them all, else None."""
        self._let_go_if_removed()
        fd = await self._get(span)
        return None if fd is None else _read_if_cached(fd, span.offset, span.length)

    async def _get(self, span: FrameSpan) -> int | None:
        key = (str(span.path), span.content_hash)
        fd = self._fds.get(key)
        if fd is not None:
            self._fds.move_to_end(key)
            return fd
        try:
            fd = await self._services.blocking.run(_open_expecting, key[0], span.file_size)
        except OSError:
            return None
        if fd is None:
            return None
        if key in self._fds:  # another request opened it meanwhile
            os.close(fd)
            return self._fds[key]
        self._fds[key] = fd
        while len(self._fds) > self._capacity:
            _, old = self._fds.popitem(last=False)
            os.close(old)
        self._schedule_sweep()
        return fd

    def close(self) -> None:
        while self._fds:
            _, fd = self._fds.popitem()
            os.close(fd)


def _open_expecting(path: str, size: int) -> int | None:
    """Open ``path`` if it is still the file of that size (not replaced since the lookup)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    if os.fstat(fd).st_size != size:
        os.close(fd)
        return None
    return fd


def _read_if_cached(fd: int, offset: int, length: int) -> bytes | None:
    """The bytes if the page cache holds all of them, else None (never waits on the disk)."""
    assert _RWF_NOWAIT is not None
    buffer = bytearray(length)
    try:
        got = os.preadv(fd, [buffer], offset, _RWF_NOWAIT)
    except OSError:  # EAGAIN: not cached; EOPNOTSUPP: the filesystem cannot say
        return None
    return bytes(buffer) if got == length else None


async def _respond(send: Send, status: int, headers: Headers, body: bytes) -> None:
    start: HTTPResponseStartEvent = {
        "type": "http.response.start", "status": status, "headers": headers
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)


class FastPath:
    """ASGI app: answers cached tile and frame GETs itself, hands everything else to ``app``."""

    def __init__(self, app: ASGIApp, services: Services, cors: CORSConfig) -> None:
        self._app = app
        self._services = services
        self._cors = cors
        self._files = _OpenFiles(services)
        self._jpeg_ok: dict[bytes, bool] = {}
        self._frame_encodings: dict[tuple[bytes, str], FrameEncoding | None] = {}
        self._cors_headers: dict[tuple[bytes, bool], tuple[Headers, bool]] = {}
        self.served = 0
        """Requests answered here (not by the app): for tests and logs."""
        self._enabled = _RWF_NOWAIT is not None
        if not self._enabled:
            log.info("fast path off: this platform has no preadv2(RWF_NOWAIT)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (self._enabled and scope["type"] == "http"
                and scope["method"] == "GET"):  # type: ignore[typeddict-item]
            answer = self._route(cast(HTTPScope, scope))
            if answer is not None and await answer(send):
                self.served += 1
                return
        elif scope["type"] == "lifespan":
            await self._app(scope, receive, self._closing_on_shutdown(send))
            return
        await self._app(scope, receive, send)

    def _route(self, scope: HTTPScope) -> Callable[[Send], Awaitable[bool]] | None:
        path = scope["path"]
        if path.startswith(WSI_PREFIX) and _TILE_QUERY.fullmatch(scope["query_string"]):
            tile = _TILE_PATH.fullmatch(path)
            if tile is not None:
                return lambda send: self._tile(tile, _Request(scope), send)
        elif path.startswith(DICOMWEB_PREFIX) and not scope["query_string"]:
            frame = _FRAME_PATH.fullmatch(path)
            if frame is not None:
                return lambda send: self._frame(frame, _Request(scope), send)
        return None

    def _closing_on_shutdown(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                self._files.close()
            await send(message)
        return wrapped

    # ---- tiles (routes/tiles.py) ---------------------------------------------------------
    async def _tile(self, match: re.Match[str], request: _Request, send: Send) -> bool:
        if not self._allows_jpeg(request.accept):
            return False
        series_uid, level, col, row = match.groups()
        tile = self._services.archive.stored_tile(series_uid, int(level), int(col), int(row))
        if tile is None:
            return False
        headers: Headers = [
            (b"etag", f'"{tile.etag}"'.encode()),
            (b"cache-control", IMMUTABLE.encode()),
            *self._vary_and_cors(request, b"Accept"),
        ]
        if request.if_none_match is not None and etag_matches(
                request.if_none_match.decode("latin-1"), tile.etag):
            await _respond(send, 304, headers, b"")
            return True
        data = await self._files.read_if_cached(tile.span)
        body = None if data is None else for_browser(data, tile.photometric_interpretation)
        if body is None:
            return False
        headers += [(b"content-type", b"image/jpeg"),
                    (b"content-length", str(len(body)).encode())]
        await _respond(send, 200, headers, body)
        return True

    def _allows_jpeg(self, accept: bytes | None) -> bool:
        key = accept or b""
        known = self._jpeg_ok.get(key)
        if known is None:
            known = accepted_format(accept.decode("latin-1") if accept else None) == "jpeg"
            if len(self._jpeg_ok) < _MAX_REMEMBERED_HEADERS:
                self._jpeg_ok[key] = known
        return known

    # ---- frames (routes/frames.py) -------------------------------------------------------
    async def _frame(self, match: re.Match[str], request: _Request, send: Send) -> bool:
        study_uid, series_uid, sop_uid, number_text = match.groups()
        archive = self._services.archive
        record = archive.cached_instance(study_uid, series_uid, sop_uid)
        if record is None:
            return False
        encoding = self._frame_encoding(request.accept, record.transfer_syntax_uid)
        if encoding is None or encoding.decode:
            return False
        number = int(number_text)
        span = archive.cached_frame_span(record, number)
        if span is None:
            return False
        data = await self._files.read_if_cached(span)
        if data is None:
            return False
        if encoding.multipart:
            boundary = multipart.new_boundary()
            body = (multipart.part_head(boundary, encoding.part_content_type) + data + b"\r\n"
                    + multipart.closing(boundary))
            content_type = (multipart.content_type_header(boundary, encoding.media_type)
                            + f"; transfer-syntax={encoding.transfer_syntax_uid}")
        else:
            body, content_type = data, encoding.part_content_type
        headers: Headers = [
            (b"etag", f'"{record.etag}-{number}"'.encode()),
            (b"cache-control", FRAME_CACHE_CONTROL.encode()),
            *self._vary_and_cors(request, None),
            (b"content-type", content_type.encode("latin-1")),
            (b"content-length", str(len(body)).encode()),
        ]
        await _respond(send, 200, headers, body)
        return True

    def _frame_encoding(self, accept: bytes | None, stored: str) -> FrameEncoding | None:
        key = (accept or b"", stored)
        if key in self._frame_encodings:
            return self._frame_encodings[key]
        try:
            encoding: FrameEncoding | None = negotiate_frames(
                accept.decode("latin-1") if accept else None, stored, 1)
        except WsiArchiveError:  # a 406: the route says so
            encoding = None
        if len(self._frame_encodings) < _MAX_REMEMBERED_HEADERS:
            self._frame_encodings[key] = encoding
        return encoding

    # ---- CORS ----------------------------------------------------------------------------
    def _vary_and_cors(self, request: _Request, vary: bytes | None) -> Headers:
        """``Vary`` and what Litestar's CORS middleware adds to a simple response."""
        if request.origin is None:
            return [] if vary is None else [(b"vary", vary)]
        headers, per_origin = self._cors_for(request.origin, request.has_cookie)
        names = [v for v in (vary, b"Origin" if per_origin else None) if v is not None]
        return headers + ([(b"vary", b", ".join(names))] if names else [])

    def _cors_for(self, origin: bytes, has_cookie: bool) -> tuple[Headers, bool]:
        key = (origin, has_cookie)
        known = self._cors_headers.get(key)
        if known is not None:
            return known
        config, text = self._cors, origin.decode("latin-1")
        headers = {name.lower(): value for name, value in config.simple_headers.items()}
        per_origin = (config.is_allow_all_origins and has_cookie) or (
            not config.is_allow_all_origins and config.is_origin_allowed(text))
        if per_origin:
            headers["access-control-allow-origin"] = text
        headers["access-control-allow-headers"] = ", ".join(sorted(set(config.allow_headers)))
        headers["access-control-allow-methods"] = ", ".join(sorted(set(config.allow_methods)))
        known = ([(name.encode(), value.encode("latin-1")) for name, value in headers.items()],
                 per_origin)
        if len(self._cors_headers) < _MAX_REMEMBERED_HEADERS:
            self._cors_headers[key] = known
        return known
