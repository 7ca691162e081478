"""Capture the SQL a piece of code runs and ask the database how it would run each statement.

Used by tests/test_query_plans.py and benchmarks/db_bench.py to show that no page reads a whole
large table: `full_scans` names each statement whose plan scans `objects`, `memberships`,
`events` or `rejections` from end to end (or sorts one without an index).
"""

from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator

from sqlalchemy import event
from sqlalchemy.engine import Engine

# tables that grow with the number of objects or decisions
LARGE = ("objects", "memberships", "events", "rejections")


@contextmanager
def capture(engine: Engine) -> Iterator[list[tuple[str, object]]]:
    """Yield a list that fills with (statement, parameters) of every statement run meanwhile."""
    seen: list[tuple[str, object]] = []

    def _record(conn, cursor, statement, parameters, context, executemany):
        if not executemany:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", _record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", _record)


def explain(engine: Engine, statement: str, parameters) -> list[str]:
    """Return the plan of one statement as lines of text (SQLite or PostgreSQL)."""
    dialect = engine.dialect.name
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        cur = raw.cursor()
        try:
            if dialect == "sqlite":
                cur.execute("EXPLAIN QUERY PLAN " + statement, parameters or ())
                return [row[3] for row in cur.fetchall()]
            if dialect == "postgresql":
                cur.execute("SET LOCAL enable_seqscan = off")
                cur.execute("EXPLAIN " + statement, parameters or None)
                return [row[0] for row in cur.fetchall()]
        finally:
            cur.close()
            raw.rollback()
    raise ValueError(f"no EXPLAIN for the {dialect} dialect")


_SQLITE_SCAN = re.compile(r"^SCAN (\w+)(?: AS \w+)?(.*)$")
_SQLITE_SORT = re.compile(r"^USE TEMP B-TREE FOR (ORDER BY|GROUP BY|DISTINCT)")
_PG_SCAN = re.compile(r"Seq Scan on (\w+)")


def scanned(dialect: str, plan: list[str], tables=LARGE) -> list[str]:
    """Return the large tables that `plan` reads from end to end (an index scan in full too)."""
    out = []
    for line in plan:
        line = line.strip().lstrip("->").strip()
        m = _SQLITE_SCAN.match(line) if dialect == "sqlite" else _PG_SCAN.search(line)
        if m and m.group(1) in tables:
            out.append(line)
    return out


def full_scans(engine: Engine, statements, tables=LARGE) -> list[dict]:
    """Return {sql, plan, scans} for each captured statement that reads a large table whole.

    A SQLite `SCAN t` (with or without an index) counts, except one walk of a table in its
    index order with no filter, join or offset that a LIMIT stops (the newest events).
    """
    dialect = engine.dialect.name
    bad, done = [], set()
    for sql, params in statements:
        if not sql.lstrip().upper().startswith(("SELECT", "WITH", "UPDATE", "DELETE")):
            continue
        key = (sql, repr(params))
        if key in done:
            continue
        done.add(key)
        plan = explain(engine, sql, params)
        scans = scanned(dialect, plan, tables)
        if dialect == "sqlite" and scans and _bounded_walk(sql, params, plan):
            scans = []
        if scans:
            bad.append({"sql": sql, "params": params, "plan": plan, "scans": scans})
    return bad


def _bounded_walk(sql: str, params, plan: list[str]) -> bool:
    """Is this a walk in index (or rowid) order with no filter, that a LIMIT stops (SQLite)?"""
    one_scan = sum(line.startswith("SCAN ") for line in plan) == 1
    sql = " ".join(sql.split())
    # SQLAlchemy writes "LIMIT ? OFFSET ?" with an offset of 0 on SQLite: no offset
    if re.search(r"LIMIT \? OFFSET \?$", sql) and params and params[-1] == 0:
        sql = sql[:-len(" OFFSET ?")]
    return (one_scan and re.search(r"\bLIMIT\b", sql, re.I) is not None
            and re.search(r"\b(WHERE|OFFSET|JOIN)\b", sql, re.I) is None
            and not any(_SQLITE_SORT.match(line) for line in plan))
