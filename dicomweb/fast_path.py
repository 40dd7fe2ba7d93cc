"""The hot path of slide tiles: plain tile GETs answered on the event loop, never waiting on I/O.

Why it exists: a viewer asks for hundreds of tiles per screen. Through Litestar a tile costs
~0.5 ms of event-loop CPU (middlewares, dependency injection, signature parsing, response
building) plus a worker-thread hop, which caps one process near 1,000 tiles/s. This ASGI
wrapper in front of the Litestar app answers the common case itself:

- ``GET /wsi/series/{uid}/tiles/{level}/{col}/{row}`` with no query but the slide version
  ``v`` (so the default focal plane and optical path) and an Accept allowing ``image/jpeg``;
- the slide and its frame table are cached (:meth:`Archive.stored_tile` answers from memory);
- the frame's bytes are in the page cache: ``preadv2`` with ``RWF_NOWAIT`` (Linux >= 4.14)
  copies them without blocking, or fails with EAGAIN when it would have to wait for the disk;
- the stored JPEG is one a browser shows as it is (:func:`wsi.browser_jpeg.for_browser`).

Every other request, including a tile whose slide, frame table or bytes are not in memory
yet, goes to the Litestar app unchanged (routes/tiles.py), which does the blocking work in a
worker thread and so warms the caches. The rules (404s, formats, transcoding, 304s, headers)
are defined there; this path gives the same bytes and headers for the cases it takes.
"""

from __future__ import annotations

import logging
import os
import re
from collections import OrderedDict
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

from archive.slide_images import StoredTile
from dicomweb.images import IMMUTABLE, accepted_format, etag_matches
from dicomweb.services import Services
from dicomweb.slide_descriptor import WSI_PREFIX
from wsi.browser_jpeg import for_browser

log = logging.getLogger(__name__)

_TILE_PATH = re.compile(
    re.escape(WSI_PREFIX) + r"/([0-9.]{1,64})/tiles/(\d{1,3})/(\d{1,7})/(\d{1,7})"
)
# The descriptor's tile URLs carry the slide version (``?v=``) to bust browser caches after
# an ingest; any other parameter (z, path, format) is for the Litestar route.
_PLAIN_QUERY = re.compile(rb"(v=[0-9A-Za-z._-]{1,64})?")
_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)
_MAX_REMEMBERED_HEADERS = 64


class _OpenFiles:
    """Open descriptors of recently served instance files, used by the event loop only.

    Keyed by path *and* content hash: a file replaced under the same path (overwrite on
    conflict) is another entry, and an unlinked file stays readable while it is open.
    Opening is the one blocking step, so it runs in a worker thread, once per file.
    """

    def __init__(self, services: Services, capacity: int = 128) -> None:
        self._services = services
        self._capacity = capacity
        self._fds: OrderedDict[tuple[str, str], int] = OrderedDict()

    async def get(self, tile: StoredTile) -> int | None:
        key = (str(tile.path), tile.content_hash)
        fd = self._fds.get(key)
        if fd is not None:
            self._fds.move_to_end(key)
            return fd
        try:
            fd = await self._services.blocking.run(_open_expecting, key[0], tile.file_size)
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


async def _respond(send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
                   ) -> None:
    start: HTTPResponseStartEvent = {
        "type": "http.response.start", "status": status, "headers": headers
    }
    await send(start)
    end: HTTPResponseBodyEvent = {"type": "http.response.body", "body": body, "more_body": False}
    await send(end)


class TileFastPath:
    """ASGI app: answers plain cached tile GETs itself, hands everything else to ``app``."""

    def __init__(self, app: ASGIApp, services: Services, cors: CORSConfig) -> None:
        self._app = app
        self._services = services
        self._cors = cors
        self._files = _OpenFiles(services)
        self._jpeg_ok: dict[bytes, bool] = {}
        self._cors_headers: dict[tuple[bytes, bool], list[tuple[bytes, bytes]]] = {}
        self.served = 0
        """Tiles answered here (not by the app): for tests and logs."""
        self._enabled = _RWF_NOWAIT is not None
        if not self._enabled:
            log.info("tile fast path off: this platform has no preadv2(RWF_NOWAIT)")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            self._enabled
            and scope["type"] == "http"
            and scope["method"] == "GET"  # type: ignore[typeddict-item]
            and _PLAIN_QUERY.fullmatch(scope["query_string"])
        ):
            match = _TILE_PATH.fullmatch(scope["path"])
            if match is not None and await self._answer(match, cast(HTTPScope, scope), send):
                self.served += 1
                return
        elif scope["type"] == "lifespan":
            await self._app(scope, receive, self._closing_on_shutdown(send))
            return
        await self._app(scope, receive, send)

    def _closing_on_shutdown(self, send: Send) -> Send:
        async def wrapped(message: Message) -> None:
            if message["type"] == "lifespan.shutdown.complete":
                self._files.close()
            await send(message)
        return wrapped

    async def _answer(self, match: re.Match[str], scope: HTTPScope, send: Send) -> bool:
        accept = if_none_match = origin = None
        has_cookie = False
        for name, value in scope["headers"]:
            if name == b"accept":
                accept = value
            elif name == b"if-none-match":
                if_none_match = value
            elif name == b"origin":
                origin = value
            elif name == b"cookie":
                has_cookie = True
        if not self._allows_jpeg(accept):
            return False
        series_uid, level, col, row = match.groups()
        tile = self._services.archive.stored_tile(series_uid, int(level), int(col), int(row))
        if tile is None:
            return False
        headers = [
            (b"etag", f'"{tile.etag}"'.encode()),
            (b"cache-control", IMMUTABLE.encode()),
        ]
        if origin is not None:
            headers += self._cors_for(origin, has_cookie)
        else:
            headers.append((b"vary", b"Accept"))
        if if_none_match is not None and etag_matches(if_none_match.decode("latin-1"), tile.etag):
            await _respond(send, 304, headers, b"")
            return True
        fd = await self._files.get(tile)
        if fd is None:
            return False
        data = _read_if_cached(fd, tile.offset, tile.length)
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

    def _cors_for(self, origin: bytes, has_cookie: bool) -> list[tuple[bytes, bytes]]:
        """The headers Litestar's CORS middleware adds to a simple (non-preflight) response."""
        key = (origin, has_cookie)
        known = self._cors_headers.get(key)
        if known is not None:
            return known
        config, text = self._cors, origin.decode("latin-1")
        headers = {name.lower(): value for name, value in config.simple_headers.items()}
        vary = "Accept"
        if (config.is_allow_all_origins and has_cookie) or (
            not config.is_allow_all_origins and config.is_origin_allowed(text)
        ):
            headers["access-control-allow-origin"] = text
            vary = "Accept, Origin"
        headers["access-control-allow-headers"] = ", ".join(sorted(set(config.allow_headers)))
        headers["access-control-allow-methods"] = ", ".join(sorted(set(config.allow_methods)))
        headers["vary"] = vary
        known = [(name.encode(), value.encode("latin-1")) for name, value in headers.items()]
        if len(self._cors_headers) < _MAX_REMEMBERED_HEADERS:
            self._cors_headers[key] = known
        return known
