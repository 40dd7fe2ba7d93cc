"""Slide readers and :func:`open_slide`, which picks the best reader for a file.

``READERS`` is the registry: name → reader class, best first. Every reader is constructed the
same way, ``cls(path)``; :func:`open_slide` tries, in order, each reader whose ``accepts``
says yes and keeps the first that opens the file. A reader that finds the file damaged
(:class:`InvalidInput`) ends the search; one that does not support it (:class:`Unsupported`)
hands over to the next.
"""

from __future__ import annotations

from pathlib import Path

from wsi.errors import InvalidInput, Unsupported
from wsi.readers.base import (
    AssociatedImage,
    Level,
    SlideProperties,
    SlideReader,
    StoredTiles,
)
from wsi.readers.openslide import OpenSlideReader
from wsi.readers.tiff import TiffReader

READERS: dict[str, type[SlideReader]] = {
    TiffReader.name: TiffReader,
    OpenSlideReader.name: OpenSlideReader,
}

__all__ = [
    "READERS", "AssociatedImage", "Level", "SlideProperties", "SlideReader", "StoredTiles",
    "open_slide",
]


def open_slide(path: Path | str, reader: str | None = None) -> SlideReader:
    """Open ``path`` with the named reader, or with the first reader that can.

    Raises :class:`InvalidInput` for a missing, empty, truncated or corrupt file and
    :class:`Unsupported` for a file no reader understands, each with a one-line reason.
    """
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"{path}: no such file")
    with path.open("rb") as fp:
        head = fp.read(512)
    if not head:
        raise InvalidInput(f"{path.name}: file is empty")
    if reader is not None:
        if reader not in READERS:
            raise InvalidInput(f"unknown reader {reader!r} (choose from {', '.join(READERS)})")
        return READERS[reader](path)
    unsupported: Unsupported | None = None
    # Asked one at a time: a later reader's check can be costly (OpenSlide's loads its library).
    for cls in (cls for cls in READERS.values() if cls.accepts(path, head)):
        try:
            return cls(path)
        except Unsupported as exc:
            # This reader does not handle this variant: the next one may.
            unsupported = unsupported or exc
        # InvalidInput (truncated, corrupt) is final: a more lenient reader would convert a
        # damaged file into a damaged series.
    raise unsupported or Unsupported(f"{path.name}: not a slide format this archive reads")
