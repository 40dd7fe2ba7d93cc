"""UID validation (PS3.5 §9.1): dot-separated digit components, at most 64 characters.

Leading zeros in a component are forbidden by the standard but occur in real files; they are
accepted so that such archives can still be ingested. The check exists chiefly so that no UID
can smuggle path separators or query syntax into file paths and URLs.
"""

from __future__ import annotations

import re

from wsi.errors import InvalidInput

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


def is_valid_uid(value: str) -> bool:
    """True if ``value`` is a syntactically valid DICOM UID."""
    return len(value) <= 64 and bool(_UID.match(value))


def validate_uid(value: str, what: str = "UID") -> str:
    """Return ``value`` if it is a valid UID, else raise :class:`InvalidInput`.

    Real-world files carry trailing NUL/space padding; it is stripped first.
    """
    cleaned = value.strip("\x00 ")
    if not is_valid_uid(cleaned):
        raise InvalidInput(f"invalid {what}: {value[:80]!r}")
    return cleaned
