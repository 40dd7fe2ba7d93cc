"""HEAD is GET without the body (RFC 9110 §9.3.2), for every route.

Litestar routes only the methods a handler declares, so without this a HEAD on a tile, an
instance or a QIDO URL is a 405, although every general-purpose server must support HEAD.
The app sees a GET; its status line and headers (Content-Length included) go out as they
are and the body is dropped. A streamed body (a study) is stopped early: once the head is
out the app is told the client has gone (``http.disconnect``), which ends Litestar's
streaming responses, so a HEAD on a study does not read the study from disk.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar.types import ASGIApp, HTTPResponseBodyEvent, Message, Receive, Scope, Send


class HeadAsGet:
    """ASGI middleware: answers HEAD with the head of the GET response."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD":  # type: ignore[typeddict-item]
            await self._app(scope, receive, send)
            return
        head_sent = asyncio.Event()
        request_read = False

        async def receive_then_disconnect() -> Any:
            nonlocal request_read
            if not request_read:  # the (empty) request body, if the app asks for it
                request_read = True
                return await receive()
            await head_sent.wait()
            return {"type": "http.disconnect"}

        async def head_only(message: Message) -> None:
            if message["type"] != "http.response.body":
                await send(message)
            elif not head_sent.is_set():
                end: HTTPResponseBodyEvent = {
                    "type": "http.response.body", "body": b"", "more_body": False
                }
                await send(end)
                head_sent.set()

        as_get: Any = {**scope, "method": "GET"}
        await self._app(as_get, receive_then_disconnect, head_only)
