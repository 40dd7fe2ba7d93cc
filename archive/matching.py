"""THE matcher: PS3.4 C.2.2.2 matching rules as SQL conditions, used by QIDO-RS and C-FIND.

Supported: universal (empty value), empty-value matching (``""``, PS3.4 C.2.2.2.7), single
value, wild card ``*``/``?`` (C.2.2.2.4), UID list (C.2.2.2.2), range matching for DA, TM and
DT (C.2.2.2.5), and multi-valued attributes matching any of their values. Person names match
case-insensitively, as PS3.4 C.2.2.2.1 allows and as users of other archives expect.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, String, and_, cast, func, literal, or_, true

from archive.attributes import Attribute
from wsi.errors import InvalidInput

Col = ColumnElement

_RANGE_VRS = {"DA", "TM", "DT"}
_ESCAPE = "\\"


def _like_pattern(value: str) -> str:
    escaped = value.replace(_ESCAPE, _ESCAPE * 2).replace("%", r"\%").replace("_", r"\_")
    return escaped.replace("*", "%").replace("?", "_")


def _normalise_time(value: str) -> str:
    """Drop colons of the ACR-NEMA time form so that string ranges compare correctly."""
    return value.replace(":", "")


def _range(column: Col, vr: str, value: str) -> ColumnElement[bool]:
    low, _, high = value.partition("-")
    low, high = low.strip(), high.strip()
    if vr == "TM":
        low, high = _normalise_time(low), _normalise_time(high)
    if not low and not high:
        raise InvalidInput(f"empty range {value!r}")
    conditions: list[ColumnElement[bool]] = [column.is_not(None), column != ""]
    if low:
        conditions.append(column >= low)
    if high:
        # A high bound of a date/time matches everything within it: 20200101 includes any
        # time that day, and 10 includes 10:59:59 (prefix semantics of C.2.2.2.5).
        conditions.append(column <= high + "\uffff" if vr != "DA" else column <= high)
    return and_(*conditions)


def condition(attribute: Attribute, column: Col, value: str) -> ColumnElement[bool] | None:
    """The SQL condition for ``attribute`` matching ``value``; None for universal matching."""
    if value == "":
        return None
    if value == '""':
        return or_(column.is_(None), cast(column, String) == "")
    if attribute.vr == "UI" and ("\\" in value or "," in value):
        uids = [u for u in value.replace(",", "\\").split("\\") if u]
        return column.in_(uids)
    if attribute.is_integer:
        try:
            return column == int(value)
        except ValueError as exc:
            raise InvalidInput(f"{attribute.keyword} must be an integer, not {value!r}") from exc
    if attribute.vr in _RANGE_VRS and "-" in value and not _is_dt_offset(value):
        return _range(column, attribute.vr, value)
    if attribute.vr == "TM":
        value = _normalise_time(value)
    target: Col = column
    pattern = value
    wildcard = ("*" in value or "?" in value) and attribute.vr != "UI"
    if attribute.vr == "PN":
        target, pattern = func.lower(column), value.lower()
    if attribute.multi:
        # Stored as V1\V2\V3: wrap in separators and look for \value\ anywhere.
        wrapped = literal("\\") + target + literal("\\")
        like = "%\\\\" + _like_pattern(pattern) + "\\\\%"
        return wrapped.like(like, escape=_ESCAPE)
    if wildcard:
        if pattern.strip("*") == "":
            return true()
        return target.like(_like_pattern(pattern), escape=_ESCAPE)
    return target == pattern


def _is_dt_offset(value: str) -> bool:
    """A single DT with a negative UTC offset (e.g. 20200101120000-0500) is not a range."""
    head, sep, tail = value.rpartition("-")
    return bool(sep) and len(head) >= 8 and len(tail) == 4 and tail.isdigit() and "-" not in head
