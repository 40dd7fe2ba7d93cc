"""Index tables, generated from the attribute registry (portable SQL: SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    func,
)

from archive.attributes import Level, at_level

metadata = MetaData()


def _attribute_columns(level: Level) -> list[Column]:
    columns: list[Column] = []
    for attribute in at_level(level):
        kind = BigInteger() if attribute.is_integer else String(1024)
        columns.append(Column(attribute.column, kind, nullable=True))
    return columns


patients = Table(
    "patients",
    metadata,
    Column("pk", Integer, primary_key=True),
    Column("patient_key", String(200), nullable=False, unique=True),
    *_attribute_columns(Level.PATIENT),
)

studies = Table(
    "studies",
    metadata,
    Column("pk", Integer, primary_key=True),
    Column("patient_pk", ForeignKey("patients.pk"), nullable=False, index=True),
    Column("created_at", DateTime(timezone=True), server_default=func.now()),
    *_attribute_columns(Level.STUDY),
)

series = Table(
    "series",
    metadata,
    Column("pk", Integer, primary_key=True),
    Column("study_pk", ForeignKey("studies.pk"), nullable=False, index=True),
    *_attribute_columns(Level.SERIES),
)

instances = Table(
    "instances",
    metadata,
    Column("pk", Integer, primary_key=True),
    Column("series_pk", ForeignKey("series.pk"), nullable=False, index=True),
    Column("transfer_syntax_uid", String(64), nullable=False),
    Column("file_path", String(255), nullable=False),
    Column("file_size", BigInteger, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("metadata_json", Text, nullable=False),
    Column("frame_table", LargeBinary, nullable=True),
    Column("created_at", DateTime(timezone=True), server_default=func.now()),
    *_attribute_columns(Level.INSTANCE),
)

Index("ix_patients_name", patients.c.patientname)
Index("ix_patients_id", patients.c.patientid)
Index("ux_studies_uid", studies.c.studyinstanceuid, unique=True)
Index("ix_studies_date", studies.c.studydate)
Index("ix_studies_accession", studies.c.accessionnumber)
Index("ux_series_uid", series.c.seriesinstanceuid, unique=True)
Index("ix_series_modality", series.c.modality)
Index("ux_instances_uid", instances.c.sopinstanceuid, unique=True)
Index("ix_instances_sop_class", instances.c.sopclassuid)

TABLES: dict[Level, Table] = {
    Level.PATIENT: patients,
    Level.STUDY: studies,
    Level.SERIES: series,
    Level.INSTANCE: instances,
}
