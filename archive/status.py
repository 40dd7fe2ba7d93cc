"""Error category → DICOM status, in one table (PS3.4 B.2.3 C-STORE, PS3.7 C, PS3.18 §10.5).

STOW-RS FailureReason (0008,1197) takes the same values as the C-STORE statuses, so both
protocols read this table.
"""

from __future__ import annotations

from wsi.errors import Conflict, InvalidInput, NotFound, Unavailable, Unsupported, WsiArchiveError


class DuplicateInstance(Conflict):
    """The SOP Instance UID is stored already with other content (and policy is reject)."""


class StudyMismatch(Conflict):
    """The instance's Study Instance UID differs from the one the request addressed."""


class SopClassMismatch(InvalidInput):
    """The data set does not match the SOP class it claims or was negotiated."""


FAILURE = {
    DuplicateInstance: 0x0111,  # PS3.7 Annex C "Duplicate SOP Instance"
    StudyMismatch: 0xA900,  # data set does not match what was requested to be stored
    SopClassMismatch: 0xA900,  # PS3.4 B.2.3 "Data Set does not match SOP Class"
    Unsupported: 0x0122,  # "Referenced SOP Class not supported"
    Unavailable: 0xA700,  # "Out of Resources"
    InvalidInput: 0xC000,  # "Cannot understand"
    Conflict: 0xA900,
    NotFound: 0xC000,
}
PROCESSING_FAILURE = 0x0110


def failure_status(error: BaseException) -> int:
    """The DICOM failure status that reports ``error``."""
    if isinstance(error, WsiArchiveError):
        for cls in type(error).__mro__:
            if cls in FAILURE:
                return FAILURE[cls]
    return PROCESSING_FAILURE
