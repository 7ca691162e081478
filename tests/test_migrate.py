"""Projects made by an older version open upgraded (store.migrate), on SQLite and PostgreSQL.

The old databases are written with plain SQL (tests/data/schema_v1_*.sql, the DDL version 1's
models compiled to), not by today's code with a column taken away.
"""

from __future__ import annotations

import json
import logging
import os
import re
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from werkzeug.security import generate_password_hash

from morphocluster.project import CONFIG_NAME, Project, ProjectError
from morphocluster.store import SCHEMA_VERSION, Meta, make_engine, migrate
from morphocluster.users import authenticate, set_password

DATA = Path(__file__).parent / "data"
PG_URL = os.environ.get("MORPHOCLUSTER_TEST_PG_URL")
PASSWORD = "old-password"


def write_v1(url: str) -> None:
    """Write a version-1 database at `url`: the schema, a user, an object and an event."""
    dialect = url.split(":", 1)[0].split("+", 1)[0]
    sql = (DATA / f"schema_v1_{dialect}.sql").read_text()
    sql = "\n".join(line for line in sql.splitlines() if not line.startswith("--"))
    engine = create_engine(url)
    with engine.begin() as c:
        for statement in filter(str.strip, sql.split(";\n")):
            c.exec_driver_sql(statement)
        c.execute(text("INSERT INTO users (username, password_hash, role, created_at) "
                       "VALUES ('ann', :h, 'admin', '2024-05-01 10:00:00')"),
                  {"h": generate_password_hash(PASSWORD)})
        c.execute(text("INSERT INTO objects (object_id, path) VALUES ('o1', 'o1.png')"))
        c.execute(text("INSERT INTO events (user_id, created_at, action, payload) "
                       "VALUES (1, '2024-05-01 10:05:00', 'approve', '{\"node\": 1}')"))
    engine.dispose()


def v1_project(root: Path, url: str | None = None) -> Path:
    """Make the folder of a version-1 project (its database at `url`, or project.sqlite)."""
    root.mkdir()
    write_v1(url or f"sqlite:///{root / 'project.sqlite'}")
    for d in ("images", "features", "index", "cache"):
        (root / d).mkdir()
    config = {"format": 1, "database_url": url, "active_features": None}
    (root / CONFIG_NAME).write_text(json.dumps(config))
    return root


def columns(engine) -> dict:
    """Return {table: {column: (type, nullable)}} and the indexes, as the database has them."""
    insp = inspect(engine)
    out = {}
    for table in insp.get_table_names():
        cols = {c["name"]: (str(c["type"]), c["nullable"]) for c in insp.get_columns(table)}
        idx = sorted((i["name"], tuple(i["column_names"])) for i in insp.get_indexes(table))
        out[table] = (cols, idx)
    return out


def _web_login(project, name, password):
    from morphocluster.web import create_app

    c = create_app({"PROJECT": project, "TESTING": True}).test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").get_data(as_text=True)).group(1)
    resp = c.post("/login", data={"username": name, "password": password, "csrf_token": token})
    return resp.status_code, c


def check_upgraded(project: Project, fresh: Project, caplog) -> None:
    assert "upgraded the project database from schema version 1 to 2" in caplog.text
    assert str(project.root) in caplog.text
    with project.session() as s:
        assert s.get(Meta, "schema_version").value == SCHEMA_VERSION
    assert columns(project.engine) == columns(fresh.engine)  # as if made by this version
    assert authenticate(project, "ann", PASSWORD)["role"] == "admin"
    status, client = _web_login(project, "ann", PASSWORD)
    assert status == 302 and client.get("/").status_code == 200
    set_password(project, "ann", "new-password")  # bumps the new column: the session ends
    assert client.get("/").status_code == 302
    assert _web_login(project, "ann", "new-password")[0] == 302


def test_version_1_project_opens_upgraded(tmp_path, caplog):
    root = v1_project(tmp_path / "old")
    fresh = Project.create(tmp_path / "fresh")
    with caplog.at_level(logging.WARNING, logger="morphocluster.store.migrate"):
        project = Project.open(root)
    try:
        check_upgraded(project, fresh, caplog)
    finally:
        project.close()
        fresh.close()
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="morphocluster.store.migrate"):
        Project.open(root).close()
    assert "upgraded" not in caplog.text  # once only


def test_newer_or_unknown_versions_are_refused(tmp_path):
    root = v1_project(tmp_path / "p")
    engine = create_engine(f"sqlite:///{root / 'project.sqlite'}")
    for version in (SCHEMA_VERSION + 1, 0, "x"):
        with engine.begin() as c:
            c.execute(text("UPDATE meta SET value = :v WHERE key = 'schema_version'"),
                      {"v": json.dumps(version)})
        with pytest.raises(ProjectError, match=f"schema version {version}, this morphocluster needs "
                                               f"{SCHEMA_VERSION}"):
            Project.open(root)
    engine.dispose()


def test_a_failing_step_leaves_the_old_database_as_it_was(tmp_path, monkeypatch):
    root = v1_project(tmp_path / "p")
    url = f"sqlite:///{root / 'project.sqlite'}"

    def broken(conn):  # a later step whose SQL fails: the first step's DDL is undone too
        conn.exec_driver_sql("ALTER TABLE no_such_table ADD COLUMN x INTEGER")

    monkeypatch.setitem(migrate.STEPS, SCHEMA_VERSION, broken)
    engine = make_engine(url)  # the project's engine: on SQLite, DDL inside the transaction
    before = columns(engine)
    with pytest.raises(migrate.MigrationError, match=f"from schema version {SCHEMA_VERSION} to "
                                                     f"{SCHEMA_VERSION + 1} failed; nothing was changed"):
        migrate.upgrade(engine, SCHEMA_VERSION + 1, str(root))
    assert columns(engine) == before and "session_gen" not in before["users"][0]
    with engine.connect() as c:
        assert migrate.read_version(c) == 1
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="MORPHOCLUSTER_TEST_PG_URL not set")
def test_version_1_project_on_postgres_opens_upgraded(tmp_path, caplog):
    admin = create_engine(PG_URL)
    schemas = [f"mc_test_{uuid.uuid4().hex[:10]}" for _ in range(2)]
    with admin.begin() as c:
        for schema in schemas:
            c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    old_url, fresh_url = (f"{PG_URL}{sep}options=-csearch_path%3D{s}" for s in schemas)
    project = fresh = None
    try:
        root = v1_project(tmp_path / "old", old_url)
        fresh = Project.create(tmp_path / "fresh", database_url=fresh_url)
        with caplog.at_level(logging.WARNING, logger="morphocluster.store.migrate"):
            project = Project.open(root)
        assert project.engine.dialect.name == "postgresql"
        check_upgraded(project, fresh, caplog)
    finally:
        for p in (project, fresh):
            if p is not None:
                p.close()
        with admin.begin() as c:
            for schema in schemas:
                c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
