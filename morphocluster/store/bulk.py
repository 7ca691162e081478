"""Write millions of membership rows inside a session's transaction, past the ORM.

A clustering round at 10 M objects writes one row per clustered object. Through SQLAlchemy's
executemany each row costs a dict and a per-row bind step; here rows go to the driver as
tuples (SQLite) or through COPY (PostgreSQL), in chunks, so memory stays bounded.
"""

from __future__ import annotations

from datetime import datetime
from itertools import repeat

import numpy as np
from sqlalchemy import update

from .models import Membership, Node

CHUNK = 200_000
_COLUMNS = "object_pk, node_id, status, added_by, added_at"


def insert_memberships(session, pks: np.ndarray, node_ids: np.ndarray, status: str,
                       added_at: datetime, added_by: int | None = None) -> None:
    """Insert one membership per (pk, node id) pair in the session's transaction."""
    conn = session.connection()
    dialect = conn.dialect
    stamp = Membership.__table__.c.added_at.type.bind_processor(dialect)
    when = stamp(added_at) if stamp else added_at
    raw = conn.connection.driver_connection
    for a in range(0, len(pks), CHUNK):
        rows = zip(pks[a:a + CHUNK].tolist(), node_ids[a:a + CHUNK].tolist(),
                   repeat(status), repeat(added_by), repeat(when))
        if dialect.name == "postgresql":
            with raw.cursor() as cur, cur.copy(f"COPY memberships ({_COLUMNS}) FROM STDIN") as cp:
                for row in rows:
                    cp.write_row(row)
        else:
            raw.executemany(f"INSERT INTO memberships ({_COLUMNS}) VALUES (?, ?, ?, ?, ?)", rows)


def dissolve_nodes(session, node_ids: list[int]) -> None:
    """Empty the given nodes and mark them dissolved (their objects are free again)."""
    mt = Membership.__table__
    for a in range(0, len(node_ids), 10_000):
        part = node_ids[a:a + 10_000]
        session.execute(mt.delete().where(mt.c.node_id.in_(part)))
        session.execute(update(Node).where(Node.id.in_(part)).values(
            status="dissolved", n_members=0, members_version=Node.members_version + 1)
            .execution_options(synchronize_session=False))


def membership_arrays(session, node_range: tuple[int, int] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (object pks, node ids) of every membership, or of nodes lo..hi, as int64 arrays.

    Read through the driver's cursor a chunk at a time: 10 M rows as ORM rows would cost
    gigabytes and minutes.
    """
    sql = "SELECT object_pk, node_id FROM memberships"
    params: tuple = ()
    conn = session.connection()
    if node_range is not None:
        mark = "%s" if conn.dialect.name == "postgresql" else "?"
        sql += f" WHERE node_id BETWEEN {mark} AND {mark}"
        params = (int(node_range[0]), int(node_range[1]))
    cur = conn.connection.driver_connection.cursor()
    try:
        cur.execute(sql, params)
        parts = []
        while rows := cur.fetchmany(CHUNK):
            parts.append(np.array(rows, dtype=np.int64).reshape(-1, 2))
    finally:
        cur.close()
    both = np.concatenate(parts) if parts else np.zeros((0, 2), np.int64)
    return both[:, 0].copy(), both[:, 1].copy()
