"""SQLAlchemy tables of a project: objects, the node tree, memberships, users, events."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (
    DDL, JSON, Boolean, DateTime, Float, ForeignKey, Index, Integer, LargeBinary, String, Text,
    UniqueConstraint,
)
from sqlalchemy import event as sa_event
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Base(DeclarativeBase):
    pass


class Meta(Base):
    """Key/value settings of the project; `schema_version` lives here."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[object] = mapped_column(JSON)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="annotator")  # admin|annotator|viewer
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    # in every session cookie of this user; bumping it ends all of them (logout, new password)
    session_gen: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class ImportRun(Base):
    """One `morphocluster import` call and its report."""

    __tablename__ = "imports"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    format: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    n_added: Mapped[int] = mapped_column(Integer, default=0)
    n_skipped: Mapped[int] = mapped_column(Integer, default=0)
    n_failed: Mapped[int] = mapped_column(Integer, default=0)
    report: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class Object(Base):
    """One plankton image. `object_id` is the user's id; `id` is internal."""

    __tablename__ = "objects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    object_id: Mapped[str] = mapped_column(String(255), unique=True)
    path: Mapped[str] = mapped_column(Text)  # relative to the project's images/ folder
    width: Mapped[int | None] = mapped_column(Integer, nullable=True)
    height: Mapped[int | None] = mapped_column(Integer, nullable=True)
    meta: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    imported_label: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    imported_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    import_id: Mapped[int | None] = mapped_column(ForeignKey("imports.id"), nullable=True)


class Node(Base):
    """A node of the cluster tree: a seed cluster, a grown class or an umbrella."""

    __tablename__ = "nodes"
    # an undo deletes the nodes it created; their ids must not come back, because events,
    # links and other people's screens still name them (SQLite would reuse the highest id)
    __table_args__ = {"sqlite_autoincrement": True}
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("nodes.id"), nullable=True, index=True)
    name: Mapped[str | None] = mapped_column(String(255), nullable=True, index=True)
    # candidate: proposed by clustering; approved: validated by a human; dissolved: given back
    status: Mapped[str] = mapped_column(String(16), default="candidate", index=True)
    round: Mapped[int | None] = mapped_column(Integer, nullable=True)
    params: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    n_members: Mapped[int] = mapped_column(Integer, default=0)
    members_version: Mapped[int] = mapped_column(Integer, default=0)  # bumped on every change
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    claimed_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    claimed_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)


class Membership(Base):
    """Object in node; the primary key on the object keeps each object in at most one node."""

    __tablename__ = "memberships"
    object_pk: Mapped[int] = mapped_column(ForeignKey("objects.id"), primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"), index=True)
    # validated: a human saw it; predicted: accepted without being shown; cluster: proposed only
    status: Mapped[str] = mapped_column(String(16), default="cluster")
    added_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    added_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    distance: Mapped[float | None] = mapped_column(Float, nullable=True)


class Rejection(Base):
    """An object a human said does not belong to a node; it never comes back for it."""

    __tablename__ = "rejections"
    __table_args__ = (UniqueConstraint("node_id", "object_pk"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"), index=True)
    object_pk: Mapped[int] = mapped_column(ForeignKey("objects.id"), index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class NodeCache(Base):
    """Statistics of a node computed for one `members_version` (centroid, prototypes, order)."""

    __tablename__ = "node_cache"
    node_id: Mapped[int] = mapped_column(ForeignKey("nodes.id"), primary_key=True)
    members_version: Mapped[int] = mapped_column(Integer)
    feature_set: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)  # numpy .npz bytes
    computed_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class Event(Base):
    """Append-only log of every decision; undo writes a new event that points back."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_user_time", "user_id", "id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    action: Mapped[str] = mapped_column(String(32), index=True)
    payload: Mapped[dict] = mapped_column(JSON)
    undone_by: Mapped[int | None] = mapped_column(ForeignKey("events.id"), nullable=True)


class Job(Base):
    """A background job (features, index, cluster): one running at a time per project."""

    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="queued")  # queued|running|done|failed
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


# Indexes on expressions, which differ by dialect (store.migrate's step 2 makes the same ones):
# - a case-insensitive prefix of an object id (find) walks an index, not the objects table;
# - "has this node been grown" looks the node up among the events instead of reading them all.
DIALECT_INDEXES = {
    "sqlite": {
        "objects": ["CREATE INDEX ix_objects_object_id_nocase ON objects (object_id COLLATE NOCASE)"],
        "events": ["CREATE INDEX ix_events_node ON events (json_extract(payload, '$.node'), action)"],
    },
    "postgresql": {
        "objects": ["CREATE INDEX ix_objects_object_id_lower ON objects "
                    "(lower(object_id) text_pattern_ops)"],
        "events": ["CREATE INDEX ix_events_node ON events ((payload ->> 'node'), action)"],
    },
}
for _dialect, _tables in DIALECT_INDEXES.items():
    for _name, _ddl in _tables.items():
        for _sql in _ddl:
            sa_event.listen(Base.metadata.tables[_name], "after_create",
                            DDL(_sql).execute_if(dialect=_dialect))
