"""Index reads for QIDO-RS and C-FIND: one SQL query per page plus one per computed key."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from sqlalchemy import ColumnElement, Connection, Select, and_, distinct, exists, func, select

from archive.attributes import ATTRIBUTES, BY_KEYWORD, Attribute, Level, keyword_of
from archive.index.schema import TABLES, instances, patients, series, studies
from archive.matching import condition
from archive.query import FindResult, Query
from wsi.errors import InvalidInput

COMPUTED = {
    "ModalitiesInStudy": ("CS", Level.STUDY),
    "SOPClassesInStudy": ("UI", Level.STUDY),
    "NumberOfStudyRelatedSeries": ("IS", Level.STUDY),
    "NumberOfStudyRelatedInstances": ("IS", Level.STUDY),
    "NumberOfSeriesRelatedInstances": ("IS", Level.SERIES),
    "NumberOfPatientRelatedStudies": ("IS", Level.PATIENT),
    "AvailableTransferSyntaxUID": ("UI", Level.INSTANCE),
}
_INTEGER_VRS = {"IS", "US", "UL", "SS", "SL", "SV", "UV"}
_NUMBER_VRS = _INTEGER_VRS | {"DS", "FL", "FD"}


def _tag(keyword: str) -> str:
    tag = tag_for_keyword(keyword)
    assert tag is not None
    return f"{tag:08X}"


def json_element(vr: str, value: Any) -> dict[str, Any]:
    """One DICOM JSON element (PS3.18 F.2.2) from an index value."""
    if value is None or value == "":
        return {"vr": vr}
    if isinstance(value, list):
        parts = value
    elif isinstance(value, str):
        parts = value.split("\\")
    else:
        parts = [value]
    if vr == "PN":
        names = []
        for part in parts:
            groups = str(part).split("=")
            name = {"Alphabetic": groups[0]}
            if len(groups) > 1 and groups[1]:
                name["Ideographic"] = groups[1]
            if len(groups) > 2 and groups[2]:
                name["Phonetic"] = groups[2]
            names.append(name)
        return {"vr": vr, "Value": names}
    if vr in _INTEGER_VRS:
        return {"vr": vr, "Value": [int(p) for p in parts]}
    if vr in _NUMBER_VRS:
        return {"vr": vr, "Value": [float(p) for p in parts]}
    return {"vr": vr, "Value": [str(p) for p in parts]}


def _joined(level: Level) -> Any:
    """The level's table joined with all its ancestors."""
    clause: Any = patients
    if level >= Level.STUDY:
        clause = clause.join(studies, studies.c.patient_pk == patients.c.pk)
    if level >= Level.SERIES:
        clause = clause.join(series, series.c.study_pk == studies.c.pk)
    if level >= Level.INSTANCE:
        clause = clause.join(instances, instances.c.series_pk == series.c.pk)
    return clause


def _column(attribute: Attribute) -> ColumnElement[Any]:
    return TABLES[attribute.level].c[attribute.column]


def _computed_condition(keyword: str, value: str) -> ColumnElement[bool] | None:
    if keyword in ("ModalitiesInStudy", "SOPClassesInStudy"):
        target = BY_KEYWORD["Modality" if keyword == "ModalitiesInStudy" else "SOPClassUID"]
        cond = condition(target, _column(target), value)
        if cond is None:
            return None
        inner = select(series.c.pk).where(series.c.study_pk == studies.c.pk)
        if target.level == Level.INSTANCE:
            inner = inner.join(instances, instances.c.series_pk == series.c.pk)
        return exists(inner.where(cond))
    if keyword == "AvailableTransferSyntaxUID":
        uid_attr = Attribute("TransferSyntaxUID", "UI", Level.INSTANCE)
        return condition(uid_attr, instances.c.transfer_syntax_uid, value)
    return None


def build_select(query: Query) -> tuple[Select, list[str]]:
    """The SQL of one QIDO/C-FIND page and the keys that could not be used for matching."""
    level_table = TABLES[query.level]
    visible = [a for a in ATTRIBUTES if a.level <= query.level]
    stmt = select(level_table.c.pk, *(_column(a) for a in visible)).select_from(
        _joined(query.level)
    )
    if query.level == Level.INSTANCE:
        stmt = stmt.add_columns(instances.c.transfer_syntax_uid)
    conditions: list[ColumnElement[bool]] = []
    if query.study_uid is not None:
        conditions.append(studies.c.studyinstanceuid == query.study_uid)
    if query.series_uid is not None:
        conditions.append(series.c.seriesinstanceuid == query.series_uid)
    unsupported: list[str] = []
    for f in query.filters:
        attribute = BY_KEYWORD.get(f.keyword)
        if attribute is not None and attribute.level <= query.level:
            cond = condition(attribute, _column(attribute), f.value)
        elif f.keyword in COMPUTED and COMPUTED[f.keyword][1] == query.level:
            cond = _computed_condition(f.keyword, f.value)
            if cond is None and f.value and f.keyword not in ("ModalitiesInStudy",):
                unsupported.append(f.keyword)
        else:
            unsupported.append(f.keyword)
            continue
        if cond is not None:
            conditions.append(cond)
    if conditions:
        stmt = stmt.where(and_(*conditions))
    stmt = stmt.order_by(level_table.c.pk).offset(query.offset)
    if query.limit is not None:
        stmt = stmt.limit(query.limit)
    return stmt, unsupported


def find(conn: Connection, query: Query) -> FindResult:
    """Run a query; matches come back in the DICOM JSON model."""
    stmt, unsupported = build_select(query)
    rows = conn.execute(stmt).mappings().all()
    visible = [a for a in ATTRIBUTES if a.level <= query.level]
    pks = [row["pk"] for row in rows]
    computed = _computed_values(conn, query.level, pks)
    wanted_extra = _extra_keywords(query, visible)
    extras = _extra_values(conn, query.level, pks, wanted_extra, query.include_all)
    matches: list[dict[str, dict]] = []
    for row in rows:
        item: dict[str, dict] = {}
        for a in visible:
            if a.default_return or query.include_all or a.keyword in query.include:
                item[a.tag_hex] = json_element(a.vr, row[a.column])
        if query.level == Level.INSTANCE:
            item[_tag("AvailableTransferSyntaxUID")] = json_element(
                "UI", row["transfer_syntax_uid"]
            )
        item.update(computed.get(row["pk"], {}))
        for tag, element in extras.get(row["pk"], {}).items():
            item.setdefault(tag, element)
        matches.append(dict(sorted(item.items())))
    return FindResult(matches, tuple(unsupported))


def _extra_keywords(query: Query, visible: list[Attribute]) -> list[str]:
    known = {a.keyword for a in visible} | set(COMPUTED)
    return [k for k in query.include if k not in known]


def _computed_values(conn: Connection, level: Level, pks: list[int]) -> dict[int, dict]:
    out: dict[int, dict] = defaultdict(dict)
    if not pks:
        return out
    if level == Level.STUDY:
        rows = conn.execute(
            select(
                series.c.study_pk,
                func.count(distinct(series.c.pk)),
                func.count(instances.c.pk),
            )
            .select_from(series.join(instances, instances.c.series_pk == series.c.pk))
            .where(series.c.study_pk.in_(pks))
            .group_by(series.c.study_pk)
        ).all()
        for study_pk, n_series, n_instances in rows:
            out[study_pk][_tag("NumberOfStudyRelatedSeries")] = json_element("IS", n_series)
            out[study_pk][_tag("NumberOfStudyRelatedInstances")] = json_element("IS", n_instances)
        modalities: dict[int, set[str]] = defaultdict(set)
        sop_classes: dict[int, set[str]] = defaultdict(set)
        for study_pk, modality, sop_class in conn.execute(
            select(series.c.study_pk, series.c.modality, instances.c.sopclassuid)
            .select_from(series.join(instances, instances.c.series_pk == series.c.pk))
            .where(series.c.study_pk.in_(pks))
            .distinct()
        ):
            if modality:
                modalities[study_pk].add(modality)
            if sop_class:
                sop_classes[study_pk].add(sop_class)
        for pk in pks:
            out[pk][_tag("ModalitiesInStudy")] = json_element("CS", sorted(modalities[pk]))
            out[pk][_tag("SOPClassesInStudy")] = json_element("UI", sorted(sop_classes[pk]))
    elif level == Level.SERIES:
        for series_pk, n in conn.execute(
            select(instances.c.series_pk, func.count())
            .where(instances.c.series_pk.in_(pks))
            .group_by(instances.c.series_pk)
        ):
            out[series_pk][_tag("NumberOfSeriesRelatedInstances")] = json_element("IS", n)
    elif level == Level.PATIENT:
        for patient_pk, n in conn.execute(
            select(studies.c.patient_pk, func.count())
            .where(studies.c.patient_pk.in_(pks))
            .group_by(studies.c.patient_pk)
        ):
            out[patient_pk][_tag("NumberOfPatientRelatedStudies")] = json_element("IS", n)
    return out


def _extra_values(
    conn: Connection, level: Level, pks: list[int], keywords: list[str], include_all: bool
) -> dict[int, dict[str, dict]]:
    """Attributes outside the index, taken from the metadata of a representative instance."""
    if not pks or (not keywords and not (include_all and level == Level.INSTANCE)):
        return {}
    owner = {
        Level.INSTANCE: instances.c.pk,
        Level.SERIES: instances.c.series_pk,
        Level.STUDY: series.c.study_pk,
        Level.PATIENT: studies.c.patient_pk,
    }[level]
    stmt = (
        select(owner.label("owner"), func.min(instances.c.pk).label("instance_pk"))
        .select_from(_joined(Level.INSTANCE))
        .where(owner.in_(pks))
        .group_by(owner)
    )
    representative = {r.owner: r.instance_pk for r in conn.execute(stmt)}
    texts = dict(
        conn.execute(
            select(instances.c.pk, instances.c.metadata_json).where(
                instances.c.pk.in_(list(representative.values()))
            )
        ).all()
    )
    tags = [_tag(k) for k in keywords]
    out: dict[int, dict[str, dict]] = {}
    for owner_pk, instance_pk in representative.items():
        data = json.loads(texts[instance_pk])
        if include_all and level == Level.INSTANCE:
            picked = {t: e for t, e in data.items() if "BulkDataURI" not in e}
        else:
            picked = {}
        for tag in tags:
            picked[tag] = data.get(tag, {"vr": _vr_of(tag)})
        out[owner_pk] = picked
    return out


def _vr_of(tag: str) -> str:
    try:
        return str(dictionary_VR(int(tag, 16))).split(" ")[0]
    except KeyError:
        return "UN"


def resolve_key(key: str) -> str:
    """A keyword for a QIDO/C-FIND key given as keyword or tag; InvalidInput if unknown."""
    keyword = keyword_of(key)
    if keyword is None:
        raise InvalidInput(f"unknown attribute {key!r}")
    return keyword
