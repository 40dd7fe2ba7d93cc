"""The query model shared by QIDO-RS and C-FIND."""

from __future__ import annotations

from dataclasses import dataclass, field

from archive.attributes import Level


@dataclass(frozen=True)
class Filter:
    """One matching key as the client sent it (keyword resolved, value unparsed)."""

    keyword: str
    value: str


@dataclass(frozen=True)
class Query:
    """A query at one level, optionally scoped to a study and/or series."""

    level: Level
    filters: tuple[Filter, ...] = ()
    include: tuple[str, ...] = ()
    """Keywords requested with includefield (or C-FIND return keys)."""
    include_all: bool = False
    limit: int | None = None
    offset: int = 0
    fuzzy: bool = False
    study_uid: str | None = None
    series_uid: str | None = None


@dataclass(frozen=True)
class FindResult:
    """Matches in the DICOM JSON model (PS3.18 F.2) and keys that could not be matched."""

    matches: list[dict[str, dict]] = field(default_factory=list)
    unsupported: tuple[str, ...] = ()
