"""A streaming STOW-RS client (PS3.18 §10.5): Part 10 files as one multipart/related body.

The body is generated from the files in 1 MiB chunks, so memory stays at one chunk whatever
the series size; ``Content-Length`` is computed beforehand from the file sizes so servers that
refuse chunked uploads accept it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

from wsi.errors import InvalidInput, Unavailable

_CHUNK = 1 << 20
_FAILED_SOP_SEQUENCE = "00081198"


def _parts(paths: Sequence[Path], boundary: str) -> tuple[list[bytes], bytes]:
    head = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").encode()
    return [head] * len(paths), f"\r\n--{boundary}--\r\n".encode()


def _body(paths: Sequence[Path], heads: list[bytes], tail: bytes) -> Iterator[bytes]:
    for index, (path, head) in enumerate(zip(paths, heads, strict=True)):
        yield (b"\r\n" if index else b"") + head
        with path.open("rb") as fp:
            while chunk := fp.read(_CHUNK):
                yield chunk
    yield tail


def stow_files(url: str, paths: Sequence[Path], timeout: float = 300.0) -> int:
    """POST ``paths`` to the STOW-RS ``url`` (``…/studies`` is appended unless present).

    Returns the number of instances sent; raises :class:`Unavailable` when the server
    cannot be reached or reports failures.
    """
    import httpx

    target = url.rstrip("/")
    if not target.endswith("/studies"):
        target += "/studies"
    boundary = uuid.uuid4().hex
    heads, tail = _parts(paths, boundary)
    length = sum(len(h) for h in heads) + 2 * (len(paths) - 1) + len(tail)
    length += sum(Path(p).stat().st_size for p in paths)
    headers = {
        "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        "Accept": "application/dicom+json",
        "Content-Length": str(length),
    }
    try:
        response = httpx.post(target, content=_body([Path(p) for p in paths], heads, tail),
                              headers=headers, timeout=timeout)
    except httpx.HTTPError as exc:
        raise Unavailable(f"STOW-RS to {target} failed: {exc}") from None
    if response.status_code >= 400:
        reason = response.text[:200].replace("\n", " ")
        error = InvalidInput if response.status_code < 500 else Unavailable
        raise error(f"STOW-RS to {target}: HTTP {response.status_code} {reason}")
    try:
        failed = response.json().get(_FAILED_SOP_SEQUENCE, {}).get("Value", [])
    except ValueError:
        failed = []
    if failed:
        raise Unavailable(f"STOW-RS to {target}: {len(failed)} of {len(paths)} instance(s) "
                          "were refused")
    return len(paths)
