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

SCHEMA_VERSION = 1


class SchemaError(RuntimeError):
    """The database was written by another version of morphocluster."""


def make_engine(url: str) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Create all tables and stamp the schema version."""
    Base.metadata.create_all(engine)
    with Session(engine) as s, s.begin():
        if s.get(Meta, "schema_version") is None:
            s.add(Meta(key="schema_version", value=SCHEMA_VERSION))


def check_schema(engine: Engine, where: str) -> None:
    """Raise SchemaError unless the database has this version's schema."""
    try:
        with Session(engine) as s:
            row = s.execute(select(Meta.value).where(Meta.key == "schema_version")).scalar()
    except Exception as exc:  # no meta table: not a project database at all
        raise SchemaError(f"{where}: not a morphocluster project database ({exc.__class__.__name__})")
    if row != SCHEMA_VERSION:
        raise SchemaError(
            f"{where}: project schema version {row}, this morphocluster needs {SCHEMA_VERSION}; "
            "open it with the version that made it, or export and re-import it"
        )


def log_event(session: Session, user_id: int | None, action: str, payload: dict) -> Event:
    """Append one decision to the event log, in the caller's transaction."""
    ev = Event(user_id=user_id, action=action, payload=payload)
    session.add(ev)
    session.flush()
    return ev


@contextmanager
def transaction(factory: sessionmaker) -> Iterator[Session]:
    """Yield a session inside one transaction: commit on success, roll back on error."""
    with factory() as s, s.begin():
        yield s
