"""The project database: tables, schema version, sessions and the event log."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from .models import (  # noqa: F401  (re-exported)
    Base, Event, ImportRun, Job, Membership, Meta, Node, NodeCache, Object, Rejection, User, utcnow,
)

SCHEMA_VERSION = 3  # older databases are upgraded by store.migrate


class SchemaError(RuntimeError):
    """The database was written by another version of morphocluster."""


class ConcurrentChange(RuntimeError):
    """Someone else changed the same rows at the same moment; the transaction was rolled back."""

    def __init__(self, detail: str = ""):
        super().__init__("someone else changed the same objects or node at the same moment; "
                         "nothing was changed: reload and decide again"
                         + (f" ({detail})" if detail else ""))


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys, a busy timeout and transactions that
    begin where SQLAlchemy begins them (the driver would begin only at the first write, so a
    decision's checks would read outside its transaction); PostgreSQL, repeatable read for
    writes (`begin_write`)."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            dbapi_conn.isolation_level = None  # BEGIN is ours (below)

        @event.listens_for(engine, "begin")
        def _begin(conn):
            # a write takes the write lock first, so two decisions at once run one after the
            # other and the second one's checks see the first one's result
            immediate = conn.get_execution_options().get("sqlite_immediate")
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine
    return create_engine(url, pool_pre_ping=True)


def begin_write(session: Session) -> None:
    """Begin the session's transaction as a write: SQLite takes its write lock now; PostgreSQL
    runs it in repeatable read, so that a concurrent change of the same rows fails it."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        session.connection(execution_options={"sqlite_immediate": True})
    elif dialect == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def concurrent_change(exc: Exception) -> ConcurrentChange | None:
    """Return a ConcurrentChange for a database error that two transactions at once cause."""
    from sqlalchemy.exc import DBAPIError

    if not isinstance(exc, DBAPIError):
        return None
    code = getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None)
    text = str(exc.orig)
    if code in ("40001", "40P01"):  # serialization failure, deadlock
        return ConcurrentChange(code)
    if code == "23505" and "memberships" in text:  # the same object put in two nodes at once
        return ConcurrentChange("an object was filed twice")
    if "database is locked" in text:  # SQLite: another write held the lock past the timeout
        return ConcurrentChange("the database stayed busy")
    return None


def create_schema(engine: Engine) -> None:
    """Create all tables and stamp the schema version."""
    Base.metadata.create_all(engine)
    with Session(engine) as s, s.begin():
        if s.get(Meta, "schema_version") is None:
            s.add(Meta(key="schema_version", value=SCHEMA_VERSION))


def check_schema(engine: Engine, where: str) -> None:
    """Upgrade an older project database to this version's schema (`migrate`, with a message);
    raise SchemaError for a newer one or one that is no project database."""
    from . import migrate

    try:
        with Session(engine) as s:
            row = s.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar()
    except Exception as exc:  # no meta table: not a project database at all
        raise SchemaError(f"{where}: not a morphocluster project database ({exc.__class__.__name__})")
    if row == SCHEMA_VERSION:
        return
    try:
        migrate.upgrade(engine, SCHEMA_VERSION, where)
    except migrate.MigrationError as exc:
        raise SchemaError(str(exc)) from exc


def log_event(session: Session, user_id: int | None, action: str, payload: dict) -> Event:
    """Append one decision to the event log, in the caller's transaction."""
    ev = Event(user_id=user_id, action=action, payload=payload)
    session.add(ev)
    session.flush()
    return ev


@contextmanager
def transaction(factory: sessionmaker) -> Iterator[Session]:
    """Yield a session inside one write transaction: commit on success, roll back on error
    (ConcurrentChange when another transaction changed the same rows at once)."""
    try:
        with factory() as s, s.begin():
            begin_write(s)
            yield s
    except Exception as exc:
        conflict = concurrent_change(exc)
        if conflict is not None:
            raise conflict from exc
        raise
