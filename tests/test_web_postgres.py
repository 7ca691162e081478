"""The web UI on a PostgreSQL project: claim, remove, approve, grow, counts, undo, event log."""

from __future__ import annotations

import os
import re
import shutil
import uuid

import pytest
from sqlalchemy import create_engine, select, text

from test_web_fixtures import PASSWORD, csrf_of

PG_URL = os.environ.get("MORPHOCLUSTER_TEST_PG_URL")
pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("shared_data"),
              pytest.mark.skipif(not PG_URL, reason="MORPHOCLUSTER_TEST_PG_URL not set")]

CLASSES = ("chaetognath_sagitta", "copepod_calanoid")


@pytest.fixture
def pg_web_project(tmp_path, shared_data):
    from morphocluster.features.extract import extract_features
    from morphocluster.importers import import_sources
    from morphocluster.project import Project
    from morphocluster.store import Membership, Node, Object
    from morphocluster.users import add_user

    schema = f"mc_web_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    src = tmp_path / "src"
    for c in CLASSES:
        (src / c).mkdir(parents=True)
        for f in sorted((shared_data / "planktonset-dev" / c).iterdir())[:12]:
            shutil.copy2(f, src / c / f.name)
    p = Project.create(tmp_path / "proj", database_url=f"{PG_URL}{sep}options=-csearch_path%3D{schema}")
    try:
        import_sources(p, [src], labels_from_folders=True, progress=False)
        extract_features(p, "pixels", progress=False, num_workers=0)
        with p.transaction() as s:
            pks = list(s.scalars(select(Object.id).order_by(Object.id)))
            node = Node(status="candidate", round=1, n_members=10, members_version=1)
            s.add(node)
            s.flush()
            s.add_all(Membership(object_pk=pk, node_id=node.id, status="cluster") for pk in pks[:10])
        add_user(p, "ann", PASSWORD, "annotator")
        add_user(p, "ada", PASSWORD, "admin")
        yield p, node.id
    finally:
        p.close()
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def _login(c, user):
    token = csrf_of(c.get("/login").get_data(as_text=True))
    c.post("/login", data={"username": user, "password": PASSWORD, "csrf_token": token})
    return csrf_of(c.get("/").get_data(as_text=True))


def test_web_on_postgres(pg_web_project):
    from morphocluster.web import create_app

    p, node_id = pg_web_project
    assert p.engine.dialect.name == "postgresql"
    app = create_app({"PROJECT": p})
    c = app.test_client()
    token = _login(c, "ann")
    h = {"X-CSRFToken": token, "HX-Request": "true"}
    assert c.get("/validate/").headers["Location"] == f"/validate/{node_id}"
    html = c.get(f"/validate/{node_id}").get_data(as_text=True)
    pks = [int(x) for x in re.findall(r'data-pk="(\d+)"', html)]
    assert len(pks) == 10 and c.get(f"/thumb/{pks[0]}").status_code == 200
    version = re.search(r'name="members_version" value="(\d+)"', html).group(1)
    resp = c.post(f"/validate/{node_id}/remove", headers=h, data={"pks": str(pks[-1]), "members_version": version})
    assert "Removed 1 object" in resp.get_data(as_text=True)
    version = re.search(r'name="members_version" value="(\d+)"', resp.get_data(as_text=True)).group(1)
    assert c.post(f"/validate/{node_id}/approve", headers=h,
                  data={"members_version": version, "name": "sagitta"}).status_code == 204
    html = c.get(f"/grow/{node_id}").get_data(as_text=True)
    ranked = [int(x) for x in re.findall(r'data-pk="(\d+)"', html)]
    assert pks[-1] not in ranked  # rejected for this node
    version = re.search(r'name="members_version" value="(\d+)"', html).group(1)
    resp = c.post(f"/grow/{node_id}/until", headers=h,
                  data={"rank": "2", "wrong_pk": str(ranked[2]), "members_version": version,
                        "shown": ",".join(map(str, ranked))})
    assert "Accepted 2, rejected 1" in resp.get_data(as_text=True)
    home = c.get("/").get_data(as_text=True)
    assert re.search(r'id="n-labelled">11<', home) and re.search(r'id="n-grown">1<', home)
    assert "sagitta" in home
    assert c.post("/undo", headers=h).headers["HX-Refresh"] == "true"
    assert "Undone: grow until" in c.get("/").get_data(as_text=True)  # shown on the reloaded page
    assert re.search(r'id="n-labelled">9<', c.get("/").get_data(as_text=True))
    admin = app.test_client()
    _login(admin, "ada")
    events = admin.get("/events").get_data(as_text=True)
    assert "grow_until" in events and "approve" in events and "remove" in events
