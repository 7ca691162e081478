"""No page reads a whole large table: the plan of every statement a page runs (EXPLAIN).

A real SQLite project (the web fixture: real images and features); each page is requested
through the Flask test client, its SQL captured and `EXPLAIN QUERY PLAN` asked for each
statement (store.plans). SQLite plans do not depend on the row count (no ANALYZE), so a small
project shows what a 10 M one would do; benchmarks/db_bench.py times them at 1 M and 10 M.
With MORPHOCLUSTER_TEST_PG_URL the same pages are checked on PostgreSQL (enable_seqscan off).
"""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, insert, select, text

from morphocluster.store import Event, Membership, Node, Object, log_event
from morphocluster.store.plans import capture, explain, full_scans
from test_web_fixtures import app, client_as, web_project, web_template  # noqa: F401
from test_web_workflow import approve

pytestmark = pytest.mark.usefixtures("shared_data")
PG_URL = os.environ.get("MORPHOCLUSTER_TEST_PG_URL")


def pages(p, info) -> list[str]:
    cand = info["nodes"]["copepod_calanoid"]
    pk = info["by_class"]["copepod_calanoid"][0]
    with p.session() as s:
        oid = s.get(Object, pk).object_id
    return ["/", f"/validate/{cand}", f"/validate/{cand}/members", "/validate/", "/grow/",
            "/suggest/", "/tree/", f"/tree/node/{cand}", f"/object/{pk}", "/jobs/", "/events",
            "/events?before=3", "/events?after=1", f"/object/find?q={oid}",
            "/object/find?q=COPEPOD_CAL", f"/object/find?q=%23{pk}", "/object/find?q=no-such-id"]


def requested(engine, client, url):
    with capture(engine) as seen:
        assert client.get(url).status_code in (200, 302), url
    return seen


def test_no_page_reads_a_whole_large_table(client_as, web_project):
    p, info = web_project
    c, token = client_as("ada")
    approve(c, token, info["nodes"]["chaetognath_sagitta"], name="arrow worm")  # events, an approved node
    for url in pages(p, info):
        requested(p.engine, c, url)  # cold: caches fill
        bad = full_scans(p.engine, requested(p.engine, c, url))
        assert not bad, (url, [(b["sql"], b["plan"]) for b in bad])


def test_home_counts_only_the_objects_added_since(client_as, web_project):
    p, info = web_project
    c, _ = client_as("ada")
    requested(p.engine, c, "/")
    with p.transaction() as s:
        some = s.get(Object, 1)
        s.add(Object(object_id="new/1", path=some.path))
    seen = requested(p.engine, c, "/")
    counts = [(sql, prm) for sql, prm in seen if "count(*)" in sql and "FROM objects" in sql]
    assert len(counts) == 1 and "objects.id > ?" in counts[0][0], counts  # the new rows only
    with p.session() as s:
        total = s.scalar(text("SELECT count(*) FROM objects"))
    assert f'id="n-objects">{total:,}<' in c.get("/").get_data(as_text=True)


def test_grown_nodes_are_looked_up_by_node_in_the_events(client_as, web_project):
    p, info = web_project
    c, token = client_as("ada")
    node = info["nodes"]["chaetognath_sagitta"]
    approve(c, token, node, name="arrow worm")
    with p.transaction() as s:  # a grow decision, as the grow screen logs it
        log_event(s, 1, "grow_accept", {"node": node, "objects": []})
    seen = requested(p.engine, c, "/")
    html = c.get("/").get_data(as_text=True)
    assert 'id="n-grown">1<' in html
    grown = [(sql, prm) for sql, prm in seen if "grow_accept" in repr(prm)]
    assert grown
    for sql, prm in grown:
        plan = explain(p.engine, sql, prm)
        assert any("USING INDEX ix_events_node" in line for line in plan), plan
        assert not any("TEMP B-TREE FOR DISTINCT" in line for line in plan), plan


def test_event_log_pages_by_event_id(client_as, web_project):
    p, _ = web_project
    c, _ = client_as("ada")
    with p.transaction() as s:
        s.execute(insert(Event), [{"user_id": 1, "action": "approve", "payload": {"node": i}}
                                  for i in range(250)])
        ids = sorted(s.scalars(select(Event.id)), reverse=True)
    first = c.get("/events").get_data(as_text=True)
    assert f"<td>{ids[0]}</td>" in first and f"<td>{ids[99]}</td>" in first
    assert f"<td>{ids[100]}</td>" not in first and f'href="?before={ids[99]}"' in first
    assert "?after=" not in first
    second = c.get(f"/events?before={ids[99]}").get_data(as_text=True)
    assert f"<td>{ids[100]}</td>" in second and f"<td>{ids[199]}</td>" in second
    assert f'href="?after={ids[100]}"' in second and f'href="?before={ids[199]}"' in second
    back = c.get(f"/events?after={ids[100]}").get_data(as_text=True)
    assert f"<td>{ids[0]}</td>" in back and f"<td>{ids[99]}</td>" in back and "?after=" not in back
    last = c.get(f"/events?before={ids[199]}").get_data(as_text=True)
    assert f"<td>{ids[-1]}</td>" in last and "?before=" not in last
    seen = requested(p.engine, c, f"/events?before={ids[199]}")
    plans = [explain(p.engine, sql, prm) for sql, prm in seen if "FROM events" in sql]
    assert plans and all("SEARCH events USING INTEGER PRIMARY KEY (rowid<?)" in pl for pl in plans)


def test_find_by_the_start_of_an_id_uses_the_index_and_a_middle_part_is_bounded(client_as, web_project):
    from morphocluster.labels import find_objects

    p, info = web_project
    c, _ = client_as("ann")
    pks = info["by_class"]["copepod_calanoid"]
    with capture(p.engine) as seen:
        hits, partial = find_objects(p, "COPEPOD_CAL", limit=5)
    assert len(hits) == 5 and not partial and all(pk in pks for pk, _ in hits)
    plan = explain(p.engine, *[x for x in seen if "LIKE" in x[0]][0])
    assert any("ix_objects_object_id_nocase" in line for line in plan), plan
    # a part in the middle: only the newest `scan` objects, and the page says so
    with p.session() as s:
        newest = s.scalar(select(Object.object_id).order_by(Object.id.desc()))
        oldest = s.scalar(select(Object.object_id).order_by(Object.id))
    middle = newest.split("/")[-1]
    assert find_objects(p, middle, scan=10)[0] == [(max(sum(info["by_class"].values(), [])), newest)]
    hits, partial = find_objects(p, oldest.split("/")[-1], scan=10)
    assert hits == [] and partial
    assert find_objects(p, oldest.split("/")[-1])[0]  # found with the default bound
    html = c.get("/object/find", query_string={"q": "zz-nothing"}).get_data(as_text=True)
    assert "No object id contains" in html and "among the newest" not in html  # all were searched


def test_upgraded_version_2_project_gets_the_indexes(tmp_path, caplog):
    import logging

    from test_migrate import v1_project

    from morphocluster.project import Project

    root = v1_project(tmp_path / "old")  # version 1, then both steps
    with caplog.at_level(logging.WARNING, logger="morphocluster.store.migrate"):
        p = Project.open(root)
    try:
        assert "from schema version 2 to 3" in caplog.text
        with p.engine.connect() as conn:
            names = set(conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type = 'index'").scalars())
        assert {"ix_objects_object_id_nocase", "ix_events_node"} <= names
    finally:
        p.close()


@pytest.mark.postgres
@pytest.mark.skipif(not PG_URL, reason="MORPHOCLUSTER_TEST_PG_URL not set")
def test_postgres_pages_read_no_whole_large_table(tmp_path):
    from morphocluster.project import Project
    from morphocluster.users import add_user
    from morphocluster.web import create_app
    from test_web_fixtures import PASSWORD, login

    schema = f"mc_plan_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    p = Project.create(tmp_path / "proj", database_url=f"{PG_URL}{sep}options=-csearch_path%3D{schema}")
    try:
        with p.engine.begin() as conn:
            conn.execute(insert(Object), [{"id": i, "object_id": f"obj{i:06d}", "path": "x.png"}
                                          for i in range(1, 5001)])
            conn.execute(insert(Node), [{"id": i, "status": "approved" if i < 3 else "candidate",
                                         "n_members": 1000, "members_version": 1}
                                        for i in range(1, 6)])
            conn.execute(insert(Membership), [{"object_pk": i, "node_id": 1 + (i - 1) // 1000}
                                              for i in range(1, 5001)])
            conn.execute(insert(Event), [{"action": "grow_accept", "payload": {"node": 1 + i % 5}}
                                         for i in range(300)])
        add_user(p, "ada", PASSWORD, "admin")
        c = create_app({"PROJECT": p, "TESTING": True}).test_client()
        login(c, "ada")
        for url in ("/", "/grow/", "/tree/", "/events", "/events?before=150", "/object/find?q=OBJ0001",
                    "/object/find?q=obj000123", "/jobs/"):
            requested(p.engine, c, url)
            bad = full_scans(p.engine, requested(p.engine, c, url))
            assert not bad, (url, [(b["sql"], b["plan"]) for b in bad])
    finally:
        p.close()
        with admin.begin() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
