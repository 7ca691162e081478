"""Schema migrations: ordered steps that bring a project database from version N to N+1.

A project opened with an older schema is upgraded in one transaction (DDL included, on SQLite
and PostgreSQL alike): either every step and the new version are written, or nothing is.

To change the schema: change the models, add a step `@step(N)` here that turns a version-N
database into what the models now create, bump `SCHEMA_VERSION` to N+1 and add the old schema
to the tests (tests/data/schema_vN_*.sql, tests/test_migrate.py).
A step names its columns itself rather than taking them from the models, which change later.
"""

from __future__ import annotations

import logging
from typing import Callable

from sqlalchemy import Column, Integer, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.schema import CreateColumn

from .models import Meta

log = logging.getLogger(__name__)

# from-version -> the step that turns a database of that version into the next one
STEPS: dict[int, Callable[[Connection], None]] = {}


class MigrationError(RuntimeError):
    """The database cannot be brought to this version's schema."""


def step(from_version: int):
    """Register a function as the step from `from_version` to `from_version + 1`."""

    def register(fn):
        if from_version in STEPS:
            raise ValueError(f"two migration steps from schema version {from_version}")
        STEPS[from_version] = fn
        return fn

    return register


def add_column(conn: Connection, table: str, column: Column) -> None:
    """Add `column` to `table`; a NOT NULL column needs a server_default for existing rows."""
    q = conn.dialect.identifier_preparer
    ddl = CreateColumn(column).compile(dialect=conn.dialect)
    conn.exec_driver_sql(f"ALTER TABLE {q.quote(table)} ADD COLUMN {ddl}")


@step(1)
def _user_session_generation(conn: Connection) -> None:
    """users.session_gen: a logout or a new password ends the user's other sessions"""
    add_column(conn, "users", Column("session_gen", Integer, nullable=False, server_default="0"))


@step(2)
def _indexes_for_large_projects(conn: Connection) -> None:
    """indexes on objects (id prefix, any case) and events (by node), so pages read no whole table"""
    ddl = {
        "sqlite": ["CREATE INDEX ix_objects_object_id_nocase ON objects (object_id COLLATE NOCASE)",
                   "CREATE INDEX ix_events_node ON events (json_extract(payload, '$.node'), action)"],
        "postgresql": ["CREATE INDEX ix_objects_object_id_lower ON objects "
                       "(lower(object_id) text_pattern_ops)",
                       "CREATE INDEX ix_events_node ON events ((payload ->> 'node'), action)"],
    }
    for sql in ddl.get(conn.dialect.name, []):
        conn.exec_driver_sql(sql)


def read_version(conn: Connection, lock: bool = False) -> object:
    """Return the stored schema version (None when unset); `lock` holds the row (PostgreSQL)."""
    query = select(Meta.value).where(Meta.key == "schema_version")
    return conn.execute(query.with_for_update() if lock else query).scalar()


def upgrade(engine: Engine, target: int, where: str) -> list[int]:
    """Bring the database to schema version `target`; return the versions passed through.

    The version is read again under the write lock, so that two processes opening the same old
    project at once upgrade it once. On SQLite, `engine` must come from `store.make_engine`
    (whose transactions hold DDL too; pysqlite would run each ALTER outside the transaction).
    """
    with engine.connect() as conn:
        conn.execution_options(sqlite_immediate=True)  # SQLite: take the write lock at BEGIN
        with conn.begin():
            version = read_version(conn, lock=True)
            if version == target:
                return []  # another process upgraded it meanwhile
            path = list(range(version, target)) if isinstance(version, int) else []
            if not path or any(v not in STEPS for v in path):
                raise MigrationError(
                    f"{where}: project schema version {version}, this morphocluster needs {target} "
                    f"and can upgrade from version {min(STEPS, default=target)} on; open it with the "
                    "version that made it, or export and re-import it")
            for v in path:
                try:
                    STEPS[v](conn)
                except SQLAlchemyError as exc:
                    raise MigrationError(
                        f"{where}: upgrading the project database from schema version {v} to "
                        f"{v + 1} failed; nothing was changed: {exc}") from exc
            conn.execute(update(Meta).where(Meta.key == "schema_version").values(value=target))
    for v in path:
        fn = STEPS[v]
        log.warning("%s: upgraded the project database from schema version %d to %d: %s",
                    where, v, v + 1, (fn.__doc__ or fn.__name__).strip())
    return path
