"""Streaming ``multipart/related`` reading and writing (RFC 2046, PS3.18 §8.6 and §10.5).

The reader is a push parser: feed it body chunks as they arrive and it returns events, never
holding more than a boundary's length of part data. The writer helpers build a body as
``part_head + data + part_tail`` for each part followed by ``closing``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from typing import TypeAlias

from wsi.errors import InvalidInput

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_MEDIA_TYPE = re.compile(rf"\s*({_TOKEN})/({_TOKEN})\s*")
# Unquoted values are looser than RFC 9110 tokens because clients commonly send
# ``type=application/dicom`` and boundaries with ``=`` or ``/`` without quotes.
_PARAM = re.compile(rf'\s*({_TOKEN})\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s;"]+))\s*')
_EMPTY_PARAM = re.compile(r"\s*(?=;|\Z)")
_TOKEN_ONLY = re.compile(rf"{_TOKEN}\Z")
_UNESCAPE = re.compile(r"\\(.)")


def parse_content_type(value: str) -> tuple[str, dict[str, str]]:
    """Split a Content-Type value into its lowercased media type and its parameters.

    Parameter names are lowercased and quoted values unquoted. Raises ``InvalidInput`` on
    a malformed value or a repeated parameter.
    """
    match = _MEDIA_TYPE.match(value)
    if match is None:
        raise InvalidInput(f"malformed Content-Type {value!r}")
    media_type = f"{match[1]}/{match[2]}".lower()
    params: dict[str, str] = {}
    pos = match.end()
    while pos < len(value):
        if value[pos] != ";":
            raise InvalidInput(f"malformed Content-Type {value!r}")
        pos += 1
        empty = _EMPTY_PARAM.match(value, pos)
        if empty is not None:  # tolerate empty parameters such as a trailing ";"
            pos = empty.end()
            continue
        param = _PARAM.match(value, pos)
        if param is None:
            raise InvalidInput(f"malformed parameter in Content-Type {value!r}")
        name = param[1].lower()
        if name in params:
            raise InvalidInput(f"repeated parameter {name!r} in Content-Type {value!r}")
        quoted = param[2]
        params[name] = param[3] if quoted is None else _UNESCAPE.sub(r"\1", quoted)
        pos = param.end()
    return media_type, params


@dataclass(frozen=True, slots=True)
class PartStart:
    """A part begins; header names are lowercased, repeated headers joined by ``", "``."""

    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class PartData:
    """A non-empty piece of the current part's body."""

    data: bytes


@dataclass(frozen=True, slots=True)
class PartEnd:
    """The current part's body is complete."""


Event: TypeAlias = PartStart | PartData | PartEnd

_PREAMBLE, _DELIMITER, _HEADERS, _BODY, _DONE = range(5)


class MultipartReader:
    """Incremental ``multipart/related`` parser.

    ``feed`` each chunk, then ``close`` at the end of input. Work is linear in the input
    size. Memory bound: between calls at most ``len(delimiter) - 1`` bytes of preamble or
    part data (the delimiter being ``CRLF--boundary``, so at most 73 bytes) stay unemitted;
    while a header block is read, at most ``max_header_bytes`` are held. ``retained_bytes``
    reports the current figure. The reader must not be reused after raising ``InvalidInput``.
    """

    def __init__(self, boundary: str, max_header_bytes: int = 16384) -> None:
        if not 0 < len(boundary) <= 70 or not boundary.isascii() or not boundary.isprintable():
            raise InvalidInput(f"invalid multipart boundary {boundary!r}")
        self._delimiter = b"\r\n--" + boundary.encode("ascii")
        self._max_header_bytes = max_header_bytes
        # A virtual CRLF lets the first delimiter sit at the very start of the body.
        self._buf = b"\r\n"
        self._state = _PREAMBLE
        self._padded = False  # transport padding already skipped after the delimiter
        self._blank_crlf = False  # the body search starts at the header block's final CRLF
        self._header_lines: list[bytes] = []
        self._header_bytes = 0

    @property
    def retained_bytes(self) -> int:
        """Bytes of input held back, awaiting more input to be interpreted."""
        return len(self._buf)

    def feed(self, chunk: bytes) -> list[Event]:
        """Consume the next chunk of the body and return the events it completes."""
        events: list[Event] = []
        chunk = bytes(chunk)
        if self._state == _BODY and not self._blank_crlf and self._feed_body(chunk, events):
            return events
        buf = self._buf + chunk
        pos = 0
        delim = self._delimiter
        while True:
            if self._state in (_PREAMBLE, _BODY):
                idx = buf.find(delim, pos)
                # Keep a possible partial delimiter at the end as the look-behind.
                end = idx if idx >= 0 else max(pos, len(buf) - len(delim) + 1)
                if self._blank_crlf and end > pos:
                    # No delimiter starts at the blank line's CRLF, so it is not body data.
                    pos, self._blank_crlf = pos + 2, False
                    end = max(end, pos)
                if self._state == _BODY and end > pos:
                    events.append(PartData(buf[pos:end]))
                pos = end
                if idx < 0:
                    break
                if self._state == _BODY:
                    events.append(PartEnd())
                pos += len(delim)
                self._state, self._padded, self._blank_crlf = _DELIMITER, False, False
            elif self._state == _DELIMITER:
                if not self._padded and buf.startswith(b"--", pos):
                    self._state = _DONE
                    continue
                while pos < len(buf) and buf[pos] in b" \t":
                    pos += 1
                    self._padded = True
                if len(buf) - pos < 2 and not buf.startswith(b"\n", pos):
                    break  # cannot decide yet between "--", padding and line end
                if buf.startswith(b"\r\n", pos) or buf.startswith(b"\n", pos):
                    pos += 1 if buf[pos] == 0x0A else 2
                    self._state = _HEADERS
                else:
                    raise InvalidInput("malformed multipart delimiter line")
            elif self._state == _HEADERS:
                limit = self._max_header_bytes - self._header_bytes
                eol = buf.find(b"\n", pos, pos + limit)
                # Bytes this line needs, counting its "\n" even if it has not arrived yet.
                if (eol if eol >= 0 else len(buf)) + 1 - pos > limit:
                    raise InvalidInput(
                        f"multipart part headers exceed {self._max_header_bytes} bytes"
                    )
                if eol < 0:
                    break
                line = buf[pos:eol]
                self._header_bytes += eol + 1 - pos
                if line == b"\r":
                    # RFC 2046 lets this CRLF also begin the next delimiter: an empty body.
                    self._blank_crlf = True
                else:
                    pos = eol + 1
                if line.removesuffix(b"\r"):
                    self._header_lines.append(line.removesuffix(b"\r"))
                else:
                    events.append(PartStart(self._parse_headers()))
                    self._state = _BODY
            else:
                pos = len(buf)  # the epilogue is ignored
                break
        self._buf = buf[pos:]
        return events

    def _feed_body(self, chunk: bytes, events: list[Event]) -> bool:
        """The common case within a part: a chunk without a delimiter goes out as it came.

        Returns False, with the look-behind emitted or left as it was, when ``chunk`` needs
        the general path (a delimiter begins in it or in the look-behind). Passing chunks on
        uncopied matters: two copies of every byte were most of this parser's time.
        """
        delim = self._delimiter
        if self._buf:
            # A delimiter beginning in the look-behind ends within the chunk's first bytes.
            if len(chunk) < len(delim) - 1 or delim in self._buf + chunk[: len(delim) - 1]:
                return False
            events.append(PartData(self._buf))
            self._buf = b""
        if delim in chunk:
            return False
        keep = _partial_delimiter(chunk, delim)
        if keep:
            events.append(PartData(chunk if keep == len(chunk) else chunk[:keep]))
        self._buf = chunk[keep:]
        return True

    def close(self) -> list[Event]:
        """Signal the end of input; raises ``InvalidInput`` unless the body was complete."""
        if self._state == _DONE:
            return []
        problem = {
            _PREAMBLE: "no boundary delimiter found",
            _DELIMITER: "input ends within a delimiter line",
            _HEADERS: "part headers are not terminated by a blank line",
            _BODY: "closing delimiter not found",
        }[self._state]
        raise InvalidInput(f"multipart body is truncated: {problem}")

    def _parse_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        name = ""
        for raw in self._header_lines:
            line = raw.decode("latin-1")
            if line[0] in " \t":  # obsolete line folding
                if not name:
                    raise InvalidInput("multipart part headers begin with a continuation line")
                headers[name] += " " + line.strip()
                continue
            name, colon, value = line.partition(":")
            name = name.strip().lower()
            if not colon or not _TOKEN_ONLY.match(name):
                raise InvalidInput(f"malformed multipart part header {line[:80]!r}")
            value = value.strip()
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        self._header_lines, self._header_bytes = [], 0
        return headers


def _partial_delimiter(chunk: bytes, delim: bytes) -> int:
    """Where a possible start of ``delim`` at the end of ``chunk`` begins (``len(chunk)`` if
    none): only a CR in the last ``len(delim) - 1`` bytes can begin one."""
    start = chunk.find(b"\r", max(0, len(chunk) - len(delim) + 1))
    while start >= 0:
        if delim.startswith(chunk[start:]):
            return start
        start = chunk.find(b"\r", start + 1)
    return len(chunk)


async def iter_parts(
    chunks: AsyncIterable[bytes], boundary: str, max_header_bytes: int = 16384
) -> AsyncIterator[Event]:
    """Parse a multipart body arriving as ``chunks`` and yield its events."""
    reader = MultipartReader(boundary, max_header_bytes)
    async for chunk in chunks:
        for event in reader.feed(chunk):
            yield event
    for event in reader.close():
        yield event


def new_boundary() -> str:
    """Return a fresh random boundary (32 hex digits)."""
    return uuid.uuid4().hex


def _check_header_text(text: str) -> None:
    if "\r" in text or "\n" in text:
        raise ValueError(f"line break in multipart header text {text!r}")


def part_head(
    boundary: str, content_type: str, extra_headers: dict[str, str] | None = None
) -> bytes:
    """Return a part's delimiter line and headers up to and including the blank line.

    A body is ``part_head + data + part_tail()`` for every part, then ``closing``; the
    CRLF from ``part_tail`` is the one that begins the next delimiter.
    """
    lines = [f"--{boundary}", f"Content-Type: {content_type}"]
    lines += [f"{name}: {value}" for name, value in (extra_headers or {}).items()]
    for line in lines:
        _check_header_text(line)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def part_tail() -> bytes:
    """Return the bytes that follow each part's data."""
    return b"\r\n"


def closing(boundary: str) -> bytes:
    """Return the close delimiter that ends the body, after the last ``part_tail``."""
    return f"--{boundary}--\r\n".encode("ascii")


def content_type_header(boundary: str, part_type: str) -> str:
    """Return the outer Content-Type, e.g. ``multipart/related; type="application/dicom"; ...``.

    ``part_type`` is the parts' bare media type; part parameters such as ``transfer-syntax``
    belong in each part's own Content-Type (see ``part_head``).
    """
    _check_header_text(boundary)
    quoted = boundary if _TOKEN_ONLY.match(boundary) else f'"{boundary}"'
    return f'multipart/related; type="{part_type}"; boundary={quoted}'
