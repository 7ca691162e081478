"""A suggestion model saved in one project, loaded in another: create its labels' nodes from
the sort-suggestions page (Flask test client, real projects, real features)."""

from __future__ import annotations

import re
import shutil

import pytest
from sqlalchemy import select

from morphocluster import suggest as sg
from morphocluster.project import Project
from morphocluster.store import Event, Node
from morphocluster.workflow import suggest as ws
from morphocluster.workflow import validate
from test_web_fixtures import CLASSES, app, client_as, web_project, web_template  # noqa: F401
from test_web_workflow import hx

pytestmark = pytest.mark.usefixtures("shared_data")


@pytest.fixture
def external(web_template, web_project, tmp_path):
    """Train a model in a copy of the project (A) and load it in the project of the app (B)."""
    src, info = web_template
    shutil.copytree(src, tmp_path / "proj-a")
    a = Project.open(tmp_path / "proj-a")
    for cls in CLASSES:
        validate.approve(a, None, info["nodes"][cls], name=cls)
    sg.train(a)
    b, _ = web_project
    b.cache_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(sg.model_path(a), sg.model_path(b))
    state = ws.refresh(b, wait=True)
    assert state.stamp == ws.EXTERNAL
    yield a, b, info
    ws.forget(a)
    ws.forget(b)
    a.close()


def _rows(html):
    return [int(x) for x in re.findall(r'href="/suggest/(\d+)"', html)]


def test_create_the_labels_of_a_model_from_elsewhere(external, client_as):
    a, b, info = external
    c, token = client_as("ann")
    html = c.get("/suggest/").get_data(as_text=True)
    assert f"{len(CLASSES)} labels of the model have no node here" in html
    assert "Create them" in html and 'action="/suggest/adopt"' in html
    assert 'name="csrf_token"' in html
    assert _rows(html) == []  # no node to send the suggestions to
    assert ws.missing_labels(b, ws.refresh(b)) == sorted(CLASSES)

    resp = c.post("/suggest/adopt", headers=hx(token))
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200, body
    assert f"Created nodes for {len(CLASSES)} labels" in body and "no node here" not in body
    with b.session() as s:
        made = dict(s.execute(select(Node.name, Node.id).where(Node.status == "approved")).all())
        assert s.scalar(select(Event.action).order_by(Event.id.desc())) == "suggest_adopt"
    assert set(made) == set(CLASSES)
    home = c.get("/").get_data(as_text=True)  # labels without objects yet: said so, with the way on
    assert f"{len(CLASSES)} labels (from a suggestion model) wait for their objects" in home
    assert 'href="/suggest/"' in home and "validate a node to start" not in home
    rows = _rows(body)
    assert rows and set(rows) <= set(made.values())
    page = c.get("/suggest/").get_data(as_text=True)
    assert _rows(page) == rows and "in another project (it is kept until you retrain it here)" in page
    scr = c.get(f"/suggest/{rows[0]}").get_data(as_text=True)
    assert re.search(r'data-pk="\d+"', scr)  # a screen of that label's suggestions
    # nothing left to create; a second post changes nothing
    resp = c.post("/suggest/adopt", headers=hx(token))
    assert "Every label of the model has a node here" in resp.get_data(as_text=True)
    with b.session() as s:
        assert len(s.scalars(select(Node.id).where(Node.status == "approved")).all()) == len(CLASSES)
    # undo takes the nodes away again, and with them their suggestions
    assert c.post("/undo", headers=hx(token)).status_code in (200, 204)
    html = c.get("/suggest/").get_data(as_text=True)
    assert f"{len(CLASSES)} labels of the model have no node here" in html and _rows(html) == []


def test_plain_form_post_and_viewers(external, client_as):
    a, b, info = external
    v, vtoken = client_as("vic")
    html = v.get("/suggest/").get_data(as_text=True)
    assert "labels of the model have no node here" in html and "Create them" not in html
    assert v.post("/suggest/adopt", headers=hx(vtoken)).status_code == 403
    assert v.post("/suggest/adopt", data={"csrf_token": vtoken}).status_code == 403
    with b.session() as s:
        assert s.scalars(select(Node.id).where(Node.status == "approved")).all() == []
    c, token = client_as("ann")
    assert c.post("/suggest/adopt").status_code == 400  # no CSRF token
    resp = c.post("/suggest/adopt", data={"csrf_token": token})
    assert resp.status_code == 303 and resp.headers["Location"].endswith("/suggest/")
    html = c.get("/suggest/").get_data(as_text=True)
    assert f"Created nodes for {len(CLASSES)} labels" in html and _rows(html)


def test_a_model_of_this_project_offers_nothing(external, client_as):
    a, b, info = external
    assert ws.missing_labels(a, ws.refresh(a, wait=True)) == []
    assert ws.missing_labels(b, None) == []


def test_a_node_named_by_hand_gets_its_labels_suggestions(external):
    """A model from elsewhere is not retrained after each decision; its suggestions still go to
    whichever node carries their label now, and asking what is missing changes nothing."""
    a, b, info = external
    state = ws.refresh(b)
    before = state.preds.node_id.copy()
    assert ws.missing_labels(b, state) == ws.missing_labels(b, state) == sorted(CLASSES)
    assert (state.preds.node_id == before).all() and (before == -1).all()
    cls = CLASSES[0]
    validate.approve(b, None, info["nodes"][cls], name=cls)  # the annotator's own node
    state = ws.refresh(b)
    assert state.stamp == ws.EXTERNAL
    mine = state.preds.label.astype(str) == cls
    assert mine.any() and (state.preds.node_id[mine] == info["nodes"][cls]).all()
    assert (state.preds.node_id[~mine] == -1).all()
    assert ws.missing_labels(b, state) == sorted(CLASSES[1:])
