"""Tests for dicomweb.multipart: the streaming multipart/related reader and writer helpers."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Iterable
from email import policy
from email.message import Message
from email.parser import BytesParser
from typing import Any

import pytest
from dicomweb_client import DICOMwebClient

from dicomweb.multipart import (
    Event,
    MultipartReader,
    PartData,
    PartEnd,
    PartStart,
    closing,
    content_type_header,
    iter_parts,
    new_boundary,
    parse_content_type,
    part_head,
    part_tail,
)
from wsi.errors import InvalidInput

BOUNDARY = "b0undary-xyz"
Part = tuple[dict[str, str], bytes]


def build(parts: Iterable[tuple[str, bytes]], boundary: str = BOUNDARY) -> bytes:
    body = b"".join(part_head(boundary, ct) + data + part_tail() for ct, data in parts)
    return body + closing(boundary)


def collect(events: Iterable[Event]) -> list[Part]:
    """Assemble events into parts, checking the event grammar on the way."""
    parts: list[Part] = []
    current: list[bytes] | None = None
    headers: dict[str, str] = {}
    for event in events:
        if isinstance(event, PartStart):
            assert current is None, "PartStart inside a part"
            current, headers = [], event.headers
        elif isinstance(event, PartData):
            assert current is not None, "PartData outside a part"
            assert event.data, "empty PartData"
            current.append(event.data)
        else:
            assert isinstance(event, PartEnd)
            assert current is not None, "PartEnd outside a part"
            parts.append((headers, b"".join(current)))
            current = None
    assert current is None, "unterminated part"
    return parts


def parse(chunks: Iterable[bytes], boundary: str = BOUNDARY, **kwargs: Any) -> list[Part]:
    reader = MultipartReader(boundary, **kwargs)
    events: list[Event] = []
    for chunk in chunks:
        events += reader.feed(chunk)
    events += reader.close()
    return collect(events)


def random_chunks(body: bytes, rng: random.Random, max_size: int) -> list[bytes]:
    chunks, pos = [], 0
    while pos < len(body):
        size = rng.randint(0, max_size)  # empty chunks must be harmless too
        chunks.append(body[pos : pos + size])
        pos += size
    return chunks


def tricky_parts(boundary: str = BOUNDARY) -> list[tuple[str, bytes]]:
    delim = b"\r\n--" + boundary.encode()
    return [
        ("application/dicom", b"plain"),
        ("application/dicom", b""),
        ("application/octet-stream", delim[:-1] + b"\r\n" + delim[:-2] + b"-" + delim[:3]),
        ("application/dicom", b"-" + boundary.encode()),
        ("application/dicom", b"\r--" + boundary.encode()),
        ("text/plain", b"\r\n\r\n\r\r\n\n--\r\n-"),
        ("application/dicom", bytes(range(256)) * 3),
        ("application/dicom", b"\r\n"),
        ("application/dicom", b"ends with partial" + delim[:-1]),
    ]


def email_parts(message: Message) -> list[Message]:
    payload = message.get_payload()
    assert isinstance(payload, list)
    assert all(isinstance(part, Message) for part in payload)
    return [part for part in payload if isinstance(part, Message)]


def expected(parts: list[tuple[str, bytes]]) -> list[Part]:
    return [({"content-type": ct}, data) for ct, data in parts]


# --- parse_content_type -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "media_type", "params"),
    [
        (
            'multipart/related; type="application/dicom"; boundary=abc',
            "multipart/related",
            {"type": "application/dicom", "boundary": "abc"},
        ),
        ("Multipart/Related;Boundary=ABC", "multipart/related", {"boundary": "ABC"}),
        ("application/dicom", "application/dicom", {}),
        ("  application/json  ", "application/json", {}),
        ("a/b; type=application/dicom", "a/b", {"type": "application/dicom"}),
        ("a/b; boundary=----=_Part_0_1", "a/b", {"boundary": "----=_Part_0_1"}),
        ('a/b; x="q\\"u\\\\o;te"', "a/b", {"x": 'q"u\\o;te'}),
        ('a/b; x=""', "a/b", {"x": ""}),
        ("a/b;", "a/b", {}),
        ("a/b; ; c=d ;", "a/b", {"c": "d"}),
        ("a/b; c = d", "a/b", {"c": "d"}),
        (
            "application/dicom; transfer-syntax=1.2.840.10008.1.2.4.50",
            "application/dicom",
            {"transfer-syntax": "1.2.840.10008.1.2.4.50"},
        ),
    ],
)
def test_parse_content_type(value: str, media_type: str, params: dict[str, str]) -> None:
    assert parse_content_type(value) == (media_type, params)


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "multipart",
        "multipart/",
        "/related",
        "multipart/related boundary=x",
        "a/b; boundary",
        "a/b; boundary=",
        'a/b; boundary="unterminated',
        'a/b; boundary="x"y',
        "a/b; =x",
        "a/b; b=1; B=2",
        "a b/c",
    ],
)
def test_parse_content_type_rejects_garbage(value: str) -> None:
    with pytest.raises(InvalidInput):
        parse_content_type(value)


# --- writer helpers -----------------------------------------------------------------------


def test_new_boundary_is_random_and_valid() -> None:
    boundaries = {new_boundary() for _ in range(100)}
    assert len(boundaries) == 100
    for boundary in boundaries:
        MultipartReader(boundary)  # accepted as a boundary
        assert boundary.isalnum() and len(boundary) <= 70


def test_content_type_header_round_trips() -> None:
    boundary = new_boundary()
    value = content_type_header(boundary, "application/dicom")
    assert value == f'multipart/related; type="application/dicom"; boundary={boundary}'
    assert parse_content_type(value) == (
        "multipart/related",
        {"type": "application/dicom", "boundary": boundary},
    )


def test_content_type_header_quotes_non_token_boundary() -> None:
    value = content_type_header("a=b/c d", "image/jpeg")
    assert value.endswith('boundary="a=b/c d"')
    assert parse_content_type(value)[1]["boundary"] == "a=b/c d"


def test_part_head_layout() -> None:
    head = part_head("B", "application/dicom; transfer-syntax=1.2", {"Content-Location": "/x"})
    assert head == (
        b"--B\r\nContent-Type: application/dicom; transfer-syntax=1.2\r\n"
        b"Content-Location: /x\r\n\r\n"
    )
    assert part_tail() == b"\r\n"
    assert closing("B") == b"--B--\r\n"


@pytest.mark.parametrize(
    ("content_type", "extra"),
    [("a/b\r\nX-Evil: 1", None), ("a/b", {"X": "1\n2"}), ("a/b", {"X\r": "1"})],
)
def test_part_head_rejects_header_injection(
    content_type: str, extra: dict[str, str] | None
) -> None:
    with pytest.raises(ValueError):
        part_head("B", content_type, extra)


# --- reader: round trips ------------------------------------------------------------------


def test_round_trip_single_chunk() -> None:
    parts = tricky_parts()
    assert parse([build(parts)]) == expected(parts)


def test_round_trip_one_byte_chunks() -> None:
    parts = tricky_parts()
    body = build(parts)
    assert parse(body[i : i + 1] for i in range(len(body))) == expected(parts)


@pytest.mark.parametrize("seed", range(200))
def test_round_trip_random_chunks(seed: int) -> None:
    rng = random.Random(seed)
    boundary = rng.choice([BOUNDARY, new_boundary(), "x", "a" * 70, "'()+_,-./:=? q"])
    parts = tricky_parts(boundary)
    rng.shuffle(parts)
    parts = parts[: rng.randint(1, len(parts))]
    body = build(parts, boundary)
    chunks = random_chunks(body, rng, rng.choice([1, 3, 17, 100, 4096]))
    assert parse(chunks, boundary) == expected(parts)


def test_round_trip_every_two_way_split() -> None:
    parts = tricky_parts()
    body = build(parts)
    for i in range(len(body) + 1):
        assert parse([body[:i], body[i:]]) == expected(parts), i


def test_no_parts() -> None:
    assert parse([b"--" + BOUNDARY.encode() + b"--"]) == []


def test_part_without_headers() -> None:
    body = b"--B\r\n\r\npayload\r\n--B\r\n\r\n\r\n--B--"
    assert parse([body], "B") == [({}, b"payload"), ({}, b"")]


def test_delimiter_right_after_headers_means_empty_body() -> None:
    """The blank line's CRLF doubles as the delimiter's CRLF, as RFC 2046 and email read it."""
    body = b"--B\r\nX: 1\r\n\r\n--B\r\n\r\n--B\r\nX: 3\r\n\r\n\r\n--B\r\n\r\n\r\n\r\n--B--"
    want = [({"x": "1"}, b""), ({}, b""), ({"x": "3"}, b""), ({}, b"\r\n")]
    for i in range(len(body) + 1):
        assert parse([body[:i], body[i:]], "B") == want
    assert parse([body[i : i + 1] for i in range(len(body))], "B") == want
    message = BytesParser(policy=policy.HTTP).parsebytes(
        b'Content-Type: multipart/related; boundary="B"\r\n\r\n' + body
    )
    assert [p.get_payload(decode=True) for p in email_parts(message)] == [d for _, d in want]


def test_preamble_and_epilogue_are_ignored() -> None:
    parts = [("application/dicom", b"data")]
    body = (
        b"This is a preamble. --B is not a delimiter mid-line\r\n"
        + build(parts, "B")
        + b"epilogue\r\n--B\r\ngarbage after close"
    )
    for size in (1, 5, len(body)):
        chunks = [body[i : i + size] for i in range(0, len(body), size)]
        assert parse(chunks, "B") == expected(parts)


def test_transport_padding_after_delimiters() -> None:
    body = (
        b"--B \t \r\nContent-Type: a/b\r\n\r\none"
        b"\r\n--B\t\r\nContent-Type: a/c\r\n\r\ntwo"
        b"\r\n--B--  \r\n"
    )
    for i in range(len(body) + 1):
        assert parse([body[:i], body[i:]], "B") == [
            ({"content-type": "a/b"}, b"one"),
            ({"content-type": "a/c"}, b"two"),
        ]


def test_long_transport_padding_is_not_retained() -> None:
    reader = MultipartReader("B")
    reader.feed(b"--B")
    for _ in range(1000):
        reader.feed(b" " * 1000)
        assert reader.retained_bytes <= 1
    events = reader.feed(b"\r\nX: y\r\n\r\nz\r\n--B--") + reader.close()
    assert collect(events) == [({"x": "y"}, b"z")]


def test_bare_lf_headers_folding_and_repeats() -> None:
    body = (
        b"--B\nContent-Type: a/b\nX-Long: one\n  two\r\n\tthree\n"
        b"X-Rep: 1\r\nx-rep: 2\nCONTENT-LOCATION:/p \n\npayload\r\n--B--"
    )
    assert parse([body], "B") == [
        (
            {
                "content-type": "a/b",
                "x-long": "one two three",
                "x-rep": "1, 2",
                "content-location": "/p",
            },
            b"payload",
        )
    ]


def test_dicomweb_client_request_body_parses() -> None:
    """dicomweb-client's STOW bodies start with CRLF and end without a final CRLF."""
    content = [b"\x00DICM" * 10, b"", b"\r\n--" + b"x" * 10]
    body = DICOMwebClient._encode_multipart_message(
        content, f'multipart/related; type="application/dicom"; boundary={BOUNDARY}'
    )
    assert [data for _, data in parse([body])] == content


# --- reader: errors -----------------------------------------------------------------------


def test_truncated_body_at_every_point() -> None:
    body = build(tricky_parts())
    complete = body.rindex(b"--\r\n") + 2  # the close delimiter ends before its line break
    for i in range(complete):
        reader = MultipartReader(BOUNDARY)
        reader.feed(body[:i])
        with pytest.raises(InvalidInput, match="multipart body is truncated: "):
            reader.close()
    for i in range(complete, len(body) + 1):
        assert parse([body[:i]]) == expected(tricky_parts())


def test_no_delimiter_at_all() -> None:
    reader = MultipartReader(BOUNDARY)
    assert reader.feed(b"just some bytes\r\n--not the boundary\r\n" * 100) == []
    assert reader.retained_bytes < len(BOUNDARY) + 4
    with pytest.raises(InvalidInput, match="no boundary delimiter found"):
        reader.close()


def test_headers_without_terminator() -> None:
    with pytest.raises(InvalidInput, match="not terminated by a blank line"):
        parse([b"--B\r\nContent-Type: a/b\r\n"], "B")


def test_body_without_close_delimiter() -> None:
    with pytest.raises(InvalidInput, match="closing delimiter not found"):
        parse([b"--B\r\nContent-Type: a/b\r\n\r\ndata\r\n--"], "B")
    with pytest.raises(InvalidInput, match="ends within a delimiter line"):
        parse([b"--B\r\nContent-Type: a/b\r\n\r\ndata\r\n--B-"], "B")


@pytest.mark.parametrize(
    "body",
    [
        b"--Bx\r\n\r\n\r\n--B--",  # the boundary followed by other characters
        b"--B\r\n\r\ndata\r\n--B -- \r\n",  # padding before the "--" of the close delimiter
        b"--B-\r\n",
        b"--B\r\nno colon here\r\n\r\ndata\r\n--B--",
        b"--B\r\n: no name\r\n\r\ndata\r\n--B--",
        b"--B\r\nbad name: x\r\n\r\ndata\r\n--B--",
        b"--B\r\n folded first\r\n\r\ndata\r\n--B--",
    ],
)
def test_malformed_bodies(body: bytes) -> None:
    for i in range(len(body) + 1):
        with pytest.raises(InvalidInput):
            parse([body[:i], body[i:]], "B")


def test_header_size_limit() -> None:
    head = b"--B\r\n"
    block = b"X-A: " + b"a" * 80 + b"\r\n\r\n"
    body = head + block + b"data\r\n--B--"
    assert parse([body], "B", max_header_bytes=len(block)) == [({"x-a": "a" * 80}, b"data")]
    with pytest.raises(InvalidInput, match=f"headers exceed {len(block) - 1} bytes"):
        parse([body], "B", max_header_bytes=len(block) - 1)
    many = head + b"X: y\r\n" * 100 + b"\r\ndata\r\n--B--"
    with pytest.raises(InvalidInput, match="headers exceed"):
        parse([many[i : i + 7] for i in range(0, len(many), 7)], "B", max_header_bytes=300)


def test_unterminated_huge_header_fails_early() -> None:
    reader = MultipartReader("B", max_header_bytes=1024)
    reader.feed(b"--B\r\nX: ")
    with pytest.raises(InvalidInput, match="headers exceed"):
        for _ in range(100):
            reader.feed(b"a" * 100)
            assert reader.retained_bytes <= 1024


@pytest.mark.parametrize("boundary", ["", "a" * 71, "b\u00e9", "a\r\nb", "a\x00"])
def test_invalid_boundary(boundary: str) -> None:
    with pytest.raises(InvalidInput):
        MultipartReader(boundary)


# --- reader: performance and memory -------------------------------------------------------


def test_large_part_is_linear_and_bounded() -> None:
    boundary = new_boundary()
    delim = b"\r\n--" + boundary.encode()
    # Near-delimiters throughout make the look-behind and find() do real work.
    pattern = (b"\x00" * 4000 + delim[:-1] + b"\r\n--" + b"\xff" * 4000)[:8192]
    data = pattern * (50 * 1024 * 1024 // len(pattern))
    body = part_head(boundary, "application/dicom") + data + part_tail() + closing(boundary)
    chunk = 64 * 1024

    reader = MultipartReader(boundary)
    received = 0
    max_retained = 0
    start = time.perf_counter()
    for pos in range(0, len(body), chunk):
        for event in reader.feed(body[pos : pos + chunk]):
            if isinstance(event, PartData):
                received += len(event.data)
        max_retained = max(max_retained, reader.retained_bytes)
    reader.close()
    elapsed = time.perf_counter() - start

    assert received == len(data)
    assert max_retained < len(delim)
    assert elapsed < 2.0, f"50 MB took {elapsed:.2f} s"


def test_many_parts_in_one_chunk_is_linear() -> None:
    parts = [("application/dicom", b"x" * (i % 50)) for i in range(20_000)]
    body = build(parts)
    start = time.perf_counter()
    result = parse([body])
    assert time.perf_counter() - start < 2.0
    assert result == expected(parts)


# --- async convenience --------------------------------------------------------------------


def test_iter_parts() -> None:
    parts = tricky_parts()
    body = build(parts)

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), 7):
            yield body[i : i + 7]

    async def run() -> list[Event]:
        return [event async for event in iter_parts(chunks(), BOUNDARY)]

    assert collect(asyncio.run(run())) == expected(parts)


def test_iter_parts_truncated() -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b"--B\r\n\r\npartial"

    async def run() -> list[Event]:
        return [event async for event in iter_parts(chunks(), "B")]

    with pytest.raises(InvalidInput, match="truncated"):
        asyncio.run(run())


# --- interoperability with other parsers --------------------------------------------------


def test_email_parser_accepts_writer_output() -> None:
    boundary = new_boundary()
    # email also ends lines at a bare CR, so it would see a delimiter in "\r--boundary".
    parts = [p for p in tricky_parts(boundary) if b"\r--" not in p[1]]
    outer = f"Content-Type: {content_type_header(boundary, 'application/dicom')}\r\n"
    message = BytesParser(policy=policy.HTTP).parsebytes(
        outer.encode() + b"MIME-Version: 1.0\r\n\r\n" + build(parts, boundary)
    )
    assert message.is_multipart()
    assert not message.defects
    assert [(p.get_content_type(), p.get_payload(decode=True)) for p in email_parts(message)] == (
        parts
    )


class _FakeResponse:
    def __init__(self, content_type: str, body: bytes) -> None:
        self.headers = {"content-type": content_type}
        self.content = body

    def iter_content(self, chunk_size: int) -> Iterable[bytes]:
        return (self.content[i : i + chunk_size] for i in range(0, len(self.content), chunk_size))

    def __enter__(self) -> _FakeResponse:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


@pytest.mark.parametrize("stream", [False, True])
def test_dicomweb_client_decodes_writer_output(stream: bool) -> None:
    boundary = new_boundary()
    parts = tricky_parts(boundary)
    response = _FakeResponse(
        content_type_header(boundary, "application/dicom"), build(parts, boundary)
    )
    client = object.__new__(DICOMwebClient)  # only the decoder is exercised
    client._chunk_size = 5
    decoded = list(client._decode_multipart_message(response, stream=stream))  # type: ignore[arg-type]
    assert decoded == [data for _, data in parts]
