"""Index writes: upsert the hierarchy for one instance, delete with pruning of empty parents.

The statements used once per stored instance are built once at import: SQLAlchemy then finds
their compiled form in its cache without generating a cache key from a fresh statement tree,
which was a visible share of the ingest CPU. Everything here is dialect-neutral Core.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Insert, bindparam, delete, func, insert, select

from archive.attributes import Level, at_level
from archive.index.schema import instances as instances_table
from archive.index.schema import patients, series, studies
from archive.status import StudyMismatch


def patient_key(values: dict[str, Any]) -> str:
    """Identity of a patient: Patient ID qualified by its issuer (PS3.3 C.7.1.1)."""
    return f"{values.get('patientid') or ''}\x1f{values.get('issuerofpatientid') or ''}"[:200]


def _level_values(level: Level, values: dict[str, Any]) -> dict[str, Any]:
    return {a.column: values.get(a.column) for a in at_level(level)}


def _insert(conn: Connection, stmt: Insert) -> int:
    key = conn.execute(stmt).inserted_primary_key
    assert key is not None
    return int(key[0])


def upsert_parents(conn: Connection, values: dict[str, Any]) -> int:
    """Find or create patient, study and series rows; return the series pk."""
    study_pk = conn.scalar(
        select(studies.c.pk).where(studies.c.studyinstanceuid == values["studyinstanceuid"])
    )
    if study_pk is None:
        key = patient_key(values)
        patient_pk = conn.scalar(select(patients.c.pk).where(patients.c.patient_key == key))
        if patient_pk is None:
            patient_pk = _insert(
                conn,
                insert(patients).values(patient_key=key, **_level_values(Level.PATIENT, values)),
            )
        study_pk = _insert(
            conn,
            insert(studies).values(patient_pk=patient_pk, **_level_values(Level.STUDY, values)),
        )
    row = conn.execute(
        select(series.c.pk, series.c.study_pk).where(
            series.c.seriesinstanceuid == values["seriesinstanceuid"]
        )
    ).first()
    if row is None:
        return _insert(
            conn, insert(series).values(study_pk=study_pk, **_level_values(Level.SERIES, values))
        )
    if row.study_pk != study_pk:
        raise StudyMismatch(
            f"series {values['seriesinstanceuid']} already belongs to another study"
        )
    return int(row.pk)


INSTANCE_COLUMNS: tuple[str, ...] = tuple(
    c.key for c in instances_table.c if c.key not in ("pk", "created_at")
)
"""The columns an ingest writes (``pk`` and ``created_at`` come from the database)."""

_INSERT_INSTANCE = insert(instances_table)
_EXISTING = select(
    instances_table.c.sopinstanceuid,
    instances_table.c.pk,
    instances_table.c.sha256,
    instances_table.c.file_path,
).where(instances_table.c.sopinstanceuid.in_(bindparam("uids", expanding=True)))
# Below SQLite's smallest default limit of bound parameters (999).
_IN_CHUNK = 500


def instance_row(series_pk: int, values: dict[str, Any]) -> dict[str, Any]:
    """The instance row for ``values`` (attributes of all levels plus storage columns)."""
    row = {c: values.get(c) for c in INSTANCE_COLUMNS}
    row["series_pk"] = series_pk
    return row


def insert_instance(conn: Connection, series_pk: int, values: dict[str, Any]) -> None:
    """Insert an instance row (the instance attributes plus storage columns)."""
    insert_instances(conn, [instance_row(series_pk, values)])


def insert_instances(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Insert rows made by :func:`instance_row` in one executemany."""
    if rows:
        conn.execute(_INSERT_INSTANCE, list(rows))


def existing_instances(conn: Connection, sop_uids: Sequence[str]) -> dict[str, Any]:
    """Stored rows (``pk``, ``sha256``, ``file_path``) by SOP Instance UID, for those stored."""
    found: dict[str, Any] = {}
    for start in range(0, len(sop_uids), _IN_CHUNK):
        chunk = list(sop_uids[start : start + _IN_CHUNK])
        for row in conn.execute(_EXISTING, {"uids": chunk}):
            found[row.sopinstanceuid] = row
    return found


def delete_instances(conn: Connection, instance_pks: list[int]) -> None:
    """Delete instance rows and any series, study and patient left empty."""
    if not instance_pks:
        return
    series_pks = set(
        conn.scalars(
            select(instances_table.c.series_pk).where(instances_table.c.pk.in_(instance_pks))
        )
    )
    conn.execute(delete(instances_table).where(instances_table.c.pk.in_(instance_pks)))
    for series_pk in series_pks:
        _prune_series(conn, series_pk)


def _prune_series(conn: Connection, series_pk: int) -> None:
    remaining = conn.scalar(
        select(func.count()).where(instances_table.c.series_pk == series_pk)
    )
    if remaining:
        return
    study_pk = conn.scalar(select(series.c.study_pk).where(series.c.pk == series_pk))
    conn.execute(delete(series).where(series.c.pk == series_pk))
    if conn.scalar(select(func.count()).where(series.c.study_pk == study_pk)):
        return
    patient_pk = conn.scalar(select(studies.c.patient_pk).where(studies.c.pk == study_pk))
    conn.execute(delete(studies).where(studies.c.pk == study_pk))
    if not conn.scalar(select(func.count()).where(studies.c.patient_pk == patient_pk)):
        conn.execute(delete(patients).where(patients.c.pk == patient_pk))


