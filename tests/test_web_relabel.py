"""Giving an object its own label by name on the validate and grow screens (Flask test client)."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from morphocluster.store import Event, Membership, Node, Rejection
from test_web_fixtures import CLASSES, app, client_as, web_project, web_template  # noqa: F401
from test_web_workflow import approve, hx, members, pks_in

pytestmark = pytest.mark.usefixtures("shared_data")


def _version(html: str) -> str:
    return re.search(r'name="members_version" value="(\d+)"', html).group(1)


def _node(p, name):
    with p.session() as s:
        return s.scalars(select(Node).where(Node.name == name)).one()


def test_validate_remove_and_approve_take_the_labels_typed(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    named = info["nodes"][CLASSES[0]]
    approve(c, token, named, name=CLASSES[0])
    node_id = info["nodes"][CLASSES[1]]
    html = c.get(f"/validate/{node_id}").get_data(as_text=True)
    assert 'class="relabel"' in html and 'id="relabel-input"' in html
    shown = pks_in(html)
    a, b, d = shown[:3]
    before_named = members(p, named)
    resp = c.post(f"/validate/{node_id}/remove", headers=hx(token),
                  data={"members_version": _version(html), "pks": str(d),
                        "relabel": json.dumps({str(a): CLASSES[0], str(b): "ostracod"})})
    body = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "Removed 1 object, gave 2 objects the label typed." in body
    assert members(p, named) == before_named | {a}
    assert members(p, _node(p, "ostracod").id) == {b}
    assert not {a, b, d} & members(p, node_id)
    # approve takes labels typed as well: first they go, then the node is approved
    html = body
    e = pks_in(html)[0]
    resp = c.post(f"/validate/{node_id}/approve", headers=hx(token),
                  data={"members_version": _version(html), "name": CLASSES[1],
                        "relabel": json.dumps({str(e): "ostracod"})})
    assert resp.status_code == 204
    assert members(p, _node(p, "ostracod").id) == {b, e}
    with p.session() as s:  # in the approve's one event
        last = s.scalars(select(Event).order_by(Event.id.desc())).first()
    assert last.action == "approve" and last.payload["moved"] == 1
    with p.session() as s:
        assert s.get(Node, node_id).status == "approved"
        assert set(s.scalars(select(Rejection.object_pk).where(Rejection.node_id == node_id))) == {a, b, d, e}
        assert s.scalar(select(Membership.status).where(Membership.object_pk == e)) == "validated"
    # "remove from here on" does not silently drop labels typed
    other = info["nodes"][CLASSES[2]]
    html = c.get(f"/validate/{other}").get_data(as_text=True)
    resp = c.post(f"/validate/{other}/remove", headers=hx(token),
                  data={"members_version": _version(html), "from_rank": "3",
                        "relabel": json.dumps({str(pks_in(html)[0]): "ostracod"})})
    assert "Remove selected first" in resp.get_data(as_text=True)
    assert resp.status_code == 200 and len(members(p, other)) == len(pks_in(html))


def test_grow_reject_and_accept_take_the_labels_typed(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    node_id = info["nodes"][CLASSES[0]]
    approve(c, token, node_id, name=CLASSES[0])
    html = c.get(f"/grow/{node_id}").get_data(as_text=True)
    assert 'class="relabel"' in html
    ranked = pks_in(html)
    resp = c.post(f"/grow/{node_id}/reject", headers=hx(token),
                  data={"pks": str(ranked[0]), "relabel": json.dumps({str(ranked[1]): "ostracod"})})
    assert "Rejected 1, gave 1 object the label typed." in resp.get_data(as_text=True)
    assert members(p, _node(p, "ostracod").id) == {ranked[1]}
    typed = ranked[1]
    html = resp.get_data(as_text=True)
    ranked = pks_in(html)
    shown = ",".join(map(str, ranked[:5]))
    resp = c.post(f"/grow/{node_id}/until", headers=hx(token),
                  data={"rank": "2", "wrong_pk": str(ranked[2]), "shown": shown,
                        "relabel": json.dumps({str(ranked[0]): "ostracod"})})
    assert "Labels were typed" in resp.get_data(as_text=True)
    stale = c.post(f"/grow/{node_id}/accept", headers=hx(token),  # an old screen: nothing happens
                   data={"shown": shown, "members_version": str(int(_version(html)) - 1),
                         "relabel": json.dumps({str(ranked[0]): "ostracod"})})
    assert stale.status_code == 409 and members(p, _node(p, "ostracod").id) == {typed}
    resp = c.post(f"/grow/{node_id}/accept", headers=hx(token),
                  data={"shown": shown, "members_version": _version(html),
                        "relabel": json.dumps({str(ranked[0]): "ostracod"})})
    assert "Accepted 4, gave 1 object the label typed." in resp.get_data(as_text=True)
    assert set(ranked[1:5]) <= members(p, node_id) and ranked[0] not in members(p, node_id)
    assert ranked[0] in members(p, _node(p, "ostracod").id)
    with p.session() as s:
        last = s.scalars(select(Event).order_by(Event.id.desc())).first()
    assert (last.action, last.payload["n"], last.payload["moved"]) == ("grow_accept", 4, 1)
    # one undo takes back the whole screen
    assert c.post("/undo", headers=hx(token)).status_code in (200, 204)
    assert not set(ranked[:5]) & members(p, node_id) and members(p, _node(p, "ostracod").id) == {typed}


def test_viewers_get_no_label_field_and_names_fill_the_datalist_asked_for(client_as, web_project):
    p, info = web_project
    v, _ = client_as("vic")
    node_id = info["nodes"][CLASSES[1]]
    assert 'class="relabel"' not in v.get(f"/validate/{node_id}").get_data(as_text=True)
    c, token = client_as("ann")
    approve(c, token, info["nodes"][CLASSES[0]], name=CLASSES[0])
    got = c.get(f"/tree/names?list=relabel-names&name={CLASSES[0][:3]}").get_data(as_text=True)
    assert got.startswith('<datalist id="relabel-names">') and f'value="{CLASSES[0]}"' in got
    assert c.get("/tree/names?list=x%22y").status_code == 400
