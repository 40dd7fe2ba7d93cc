"""The rows of one pyramid level while they are produced: bands of ``tile`` rows.

Producers (decoding tasks, the box filter of the level above) write row ranges straight into
the bands through :meth:`BandCanvas.views`; the owner marks rows complete, strictly in order,
with :meth:`BandCanvas.complete`, which hands out every band that became complete (to be
split into tiles and encoded) and keeps them readable through :meth:`BandCanvas.rows` until
:meth:`BandCanvas.release` says the level below no longer needs them.

Memory bound: the bands from the oldest unreleased row to the newest row handed out for
writing, each ``tile`` x ``width`` x 3 bytes (the last band of the level only as high as the
level). Tasks that still hold a released band (encoding) keep it alive until they finish.
"""

from __future__ import annotations

import numpy as np

Views = list[tuple[int, np.ndarray]]
"""(offset of the first row in the requested range, a view of the rows of one band)."""


class BandCanvas:
    """The bands of one level, allocated when first written and dropped when released."""

    def __init__(self, width: int, height: int, tile: int) -> None:
        self.width, self.height, self.tile = width, height, tile
        self._bands: dict[int, np.ndarray] = {}
        self._count = -(-height // tile)
        self._complete = 0
        self._handed = 0
        self._released = 0

    @property
    def completed_rows(self) -> int:
        """Rows ``[0, completed_rows)`` are complete."""
        return self._complete

    def _end(self, index: int) -> int:
        return min((index + 1) * self.tile, self.height)

    def _band(self, index: int) -> np.ndarray:
        band = self._bands.get(index)
        if band is None:
            if self._end(index) <= self._released:
                raise ValueError(f"band {index} was already released")
            rows = min(self.tile, self.height - index * self.tile)
            band = self._bands[index] = np.empty((rows, self.width, 3), dtype=np.uint8)
        return band

    def views(self, y0: int, y1: int) -> Views:
        """Writable views of rows ``[y0, y1)``, one per band they fall in."""
        if not 0 <= y0 <= y1 <= self.height:
            raise ValueError(f"rows {y0}-{y1} outside a level of {self.height} rows")
        found = []
        y = y0
        while y < y1:
            index, start = divmod(y, self.tile)
            take = min(self.tile - start, y1 - y)
            found.append((y - y0, self._band(index)[start : start + take]))
            y += take
        return found

    def complete(self, y: int) -> list[tuple[int, np.ndarray]]:
        """Mark rows ``[0, y)`` complete; return the bands (index, pixels) that now are."""
        if y < self._complete or y > self.height:
            raise ValueError(f"rows complete up to {y}, after {self._complete}")
        self._complete = y
        done = []
        while self._handed < self._count and self._end(self._handed) <= y:
            done.append((self._handed, self._band(self._handed)))
            self._handed += 1
        return done

    def rows(self, y0: int, y1: int) -> np.ndarray:
        """Complete rows ``[y0, y1)``: a view within one band, else a copy across bands."""
        if y1 > self._complete or y0 < self._released:
            raise ValueError(f"rows {y0}-{y1} are not complete or already released")
        parts = [view for _, view in self.views(y0, y1)]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def release(self, y: int) -> None:
        """Drop the bands that lie wholly above row ``y``."""
        self._released = max(self._released, y)
        for index in [i for i in self._bands if self._end(i) <= self._released]:
            del self._bands[index]


def scatter(views: Views, block: np.ndarray, x: int = 0, y: int = 0) -> None:
    """Copy ``block`` into ``views`` (from :meth:`BandCanvas.views`) with its top left at
    column ``x`` and at row ``y`` of the viewed range; what falls outside is dropped."""
    for offset, view in views:
        first = max(offset, y)
        last = min(offset + view.shape[0], y + block.shape[0])
        width = min(block.shape[1], view.shape[1] - x)
        if width > 0 and first < last:
            view[first - offset : last - offset, x : x + width] = \
                block[first - y : last - y, :width]
