"""C-FIND/C-MOVE/C-GET identifiers ⇄ :class:`Query` (PS3.4 C.2.2 and C.4.1–C.4.3).

Each element with a value is a matching key, each empty element a return key; matching itself
is :mod:`archive.matching`, shared with QIDO-RS. Responses carry exactly the requested keys
(empty when the archive has no value) plus Query/Retrieve Level.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue

from archive.archive import Archive
from archive.attributes import BY_KEYWORD, UID_KEYS, Level
from archive.query import Filter, Query
from wsi.errors import InvalidInput

LEVELS = {
    "PATIENT": Level.PATIENT,
    "STUDY": Level.STUDY,
    "SERIES": Level.SERIES,
    "IMAGE": Level.INSTANCE,
}
LEVEL_NAMES = {level: name for name, level in LEVELS.items()}
_QUERY_RETRIEVE_LEVEL = 0x00080052
_SPECIFIC_CHARACTER_SET = 0x00080005
_UTF8 = "ISO_IR 192"
PAGE_SIZE = 500


@dataclass(frozen=True)
class ReturnKey:
    """One key of the request identifier, returned in every response."""

    tag: str
    """8 upper-case hex digits, as in the DICOM JSON model."""
    vr: str


@dataclass(frozen=True)
class FindRequest:
    """A parsed C-FIND identifier."""

    query: Query
    level_name: str
    keys: tuple[ReturnKey, ...]
    character_set: tuple[str, ...] = ()


def parse_level(identifier: Dataset, patient_root: bool) -> tuple[Level, str]:
    """The Query/Retrieve Level; InvalidInput when missing or not in the information model."""
    name = str(identifier.get("QueryRetrieveLevel", "") or "").strip().upper()
    level = LEVELS.get(name)
    if level is None:
        raise InvalidInput(f"invalid Query/Retrieve Level {name or '(none)'!r}")
    if level == Level.PATIENT and not patient_root:
        raise InvalidInput("the Study Root model has no PATIENT level")
    return level, name


def parse_find(identifier: Dataset, patient_root: bool) -> FindRequest:
    """Turn a C-FIND identifier into a query plus the keys to return."""
    level, level_name = parse_level(identifier, patient_root)
    filters: list[Filter] = []
    include: list[str] = []
    keys: list[ReturnKey] = []
    for element in identifier:
        if element.tag in (_QUERY_RETRIEVE_LEVEL, _SPECIFIC_CHARACTER_SET):
            continue
        if element.tag.group in (0x0000, 0x0002) or element.tag.is_private:
            continue
        keys.append(ReturnKey(f"{int(element.tag):08X}", str(element.VR)))
        keyword = element.keyword
        if not keyword:
            continue
        attribute = BY_KEYWORD.get(keyword)
        if attribute is None or attribute.level <= level:
            # Registry attributes below the level are not this entity's to return.
            include.append(keyword)
        value = _matching_value(element)
        if value:
            filters.append(Filter(keyword, value))
    charset = identifier.get("SpecificCharacterSet")
    character_set = tuple(charset) if isinstance(charset, MultiValue) else (
        (str(charset),) if charset else ()
    )
    query = Query(level, tuple(filters), tuple(include), limit=PAGE_SIZE)
    return FindRequest(query, level_name, tuple(keys), character_set)


def _matching_value(element: DataElement) -> str:
    """The element's value as a matching key string; empty for a pure return key."""
    if element.VR == "SQ" or element.is_empty:
        return ""  # sequence matching (PS3.4 C.2.2.2.6) is not supported: return key only
    value: Any = element.value
    if isinstance(value, bytes | bytearray):
        return ""
    if isinstance(value, MultiValue | list | tuple):
        return "\\".join(str(v) for v in value)
    return str(value)


def matches(archive: Archive, query: Query) -> Iterator[tuple[dict[str, dict], bool]]:
    """Every match of ``query`` page by page, with whether some keys were not matched on."""
    offset = 0
    while True:
        result = archive.find(replace(query, offset=offset))
        for match in result.matches:
            yield match, bool(result.unsupported)
        if query.limit is None or len(result.matches) < query.limit:
            return
        offset += query.limit


def response_identifier(
    match: dict[str, dict], request: FindRequest, known: dict[str, dict] | None = None
) -> Dataset:
    """A C-FIND response identifier: exactly the requested keys, then the level and charset.

    ``known`` holds values the server supplies itself (Retrieve AE Title, availability).
    """
    chosen: dict[str, dict] = {}
    for key in request.keys:
        element = (known or {}).get(key.tag) or match.get(key.tag)
        if element is None or "BulkDataURI" in element:
            element = {"vr": key.vr}
        chosen[key.tag] = element
    ds = Dataset.from_json(chosen, bulk_data_uri_handler=lambda *_: None)
    ds.QueryRetrieveLevel = request.level_name
    if _has_non_ascii(chosen):
        ds.SpecificCharacterSet = _UTF8
    elif request.character_set:
        ds.SpecificCharacterSet = list(request.character_set)
    return ds


def _has_non_ascii(value: Any) -> bool:
    if isinstance(value, str):
        return not value.isascii()
    if isinstance(value, dict):
        return any(_has_non_ascii(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_ascii(v) for v in value)
    return False


@dataclass(frozen=True)
class RetrieveRequest:
    """A parsed C-MOVE/C-GET identifier: the unique keys that select instances."""

    level: Level
    filters: tuple[Filter, ...]


def parse_retrieve(identifier: Dataset, patient_root: bool) -> RetrieveRequest:
    """The unique keys (PS3.4 C.4.2.2.1) of a retrieve; the level's own key is required."""
    level, _ = parse_level(identifier, patient_root)
    filters: list[Filter] = []
    for key_level, keyword in UID_KEYS.items():
        if key_level > level:
            break
        element = identifier.get(keyword)
        value = _matching_value(identifier[keyword]) if element is not None else ""
        if "*" in value or "?" in value:
            raise InvalidInput(f"{keyword} of a retrieve must not hold wild cards")
        if value:
            filters.append(Filter(keyword, value))
        elif key_level == level:
            raise InvalidInput(f"a {LEVEL_NAMES[level]} retrieve needs {keyword}")
    return RetrieveRequest(level, tuple(filters))
