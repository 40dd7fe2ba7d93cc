"""The one error root of WSI Archive.

Every failure a user can cause or meet is a :class:`WsiArchiveError` of one category.
Each protocol (HTTP in ``dicomweb.errors``, DIMSE in ``archive.dimse.status``) maps the
categories to its own statuses in one table.
"""

from __future__ import annotations


class WsiArchiveError(Exception):
    """Base of all expected errors; ``reason`` is safe to show to a client."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.sop: tuple[str, str] | None = None
        """(SOP Class UID, SOP Instance UID) of the instance concerned, once known."""


class InvalidInput(WsiArchiveError):
    """The request or data is malformed (HTTP 400, DIMSE 0xC000)."""


class NotFound(WsiArchiveError):
    """The addressed resource does not exist (HTTP 404)."""


class Conflict(WsiArchiveError):
    """The request conflicts with what is stored (HTTP 409, DIMSE 0xA900 family)."""


class Unsupported(WsiArchiveError):
    """The request is understood but cannot be served (HTTP 406/415, DIMSE 0xA900/0x0122)."""


class Unavailable(WsiArchiveError):
    """Out of resources or a dependency is down (HTTP 503, DIMSE 0xA700)."""
