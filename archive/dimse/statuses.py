"""DIMSE statuses the handlers answer with (PS3.4 C.4.1.1.4, C.4.2.1.5, C.4.3.1.4; PS3.7 C).

Archive errors map to C-STORE statuses in :mod:`archive.status`; these are the Query/Retrieve
statuses that have no archive error behind them.
"""

from __future__ import annotations

from pydicom.dataset import Dataset

SUCCESS = 0x0000
PENDING = 0xFF00
PENDING_WARNING = 0xFF01
"""Matches are continuing, but one or more optional keys were not supported for matching."""
CANCEL = 0xFE00
IDENTIFIER_DOES_NOT_MATCH = 0xA900
"""C-FIND/C-MOVE/C-GET: identifier does not match SOP class."""
UNABLE_TO_PROCESS = 0xC000
MOVE_DESTINATION_UNKNOWN = 0xA801
OUT_OF_RESOURCES_SUBOPERATIONS = 0xA702

_ERROR_COMMENT_MAX = 64  # (0000,0902) Error Comment is LO


def status_dataset(status: int, comment: str) -> Dataset:
    """A status with an Error Comment, as handlers may return instead of a bare int."""
    ds = Dataset()
    ds.Status = status
    ds.ErrorComment = comment[:_ERROR_COMMENT_MAX]
    return ds
