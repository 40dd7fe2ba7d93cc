"""Engine creation: SQLite in WAL mode by default, any SQLAlchemy URL otherwise."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event

from archive.index.schema import metadata


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets QIDO readers run while an ingest commits; NORMAL sync is durable in WAL mode
    # except for the last transactions on power loss, which is the usual trade-off.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def open_engine(url: str) -> Engine:
    """Create the engine and the tables if they do not exist yet."""
    engine = create_engine(url, pool_pre_ping=False)
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    metadata.create_all(engine)
    return engine
