"""The sort-suggestions screen through the Flask test client (real project, real features)."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from morphocluster.store import Event, Membership, Node, Rejection
from morphocluster.workflow import suggest as ws
from test_web_fixtures import CLASSES, app, client_as, web_project, web_template  # noqa: F401
from test_web_workflow import approve, hx, members, pks_in

pytestmark = pytest.mark.usefixtures("shared_data")


@pytest.fixture
def labelled(client_as, web_project):
    """Approve and name every seed node through the UI; train the model (waiting for it)."""
    p, info = web_project
    c, token = client_as("ann")
    for cls in CLASSES:
        approve(c, token, info["nodes"][cls], name=cls)
    ws.refresh(p, wait=True)
    yield c, token, p, info
    ws.forget(p)


def _version(html):
    return re.search(r'name="members_version" value="(\d+)"', html).group(1)


def test_overview_lists_labels_and_viewer_cannot_decide(labelled, client_as):
    c, token, p, info = labelled
    html = c.get("/suggest/").get_data(as_text=True)
    assert "Sort suggestions" in html and "trained on" in html
    assert any(f"/suggest/{info['nodes'][cls]}" in html for cls in CLASSES)
    assert 'href="/suggest/"' in c.get("/").get_data(as_text=True)  # nav link
    v, vtoken = client_as("vic")
    nid = info["nodes"][CLASSES[1]]
    resp = v.post(f"/suggest/{nid}/accept", headers=hx(vtoken), data={"threshold": "0.5"})
    assert resp.status_code == 403


def test_screen_reject_confirm_then_undo(labelled):
    c, token, p, info = labelled
    nid = info["nodes"][CLASSES[1]]
    html = c.get(f"/suggest/{nid}").get_data(as_text=True)
    shown = pks_in(html)
    assert 0 < len(shown) <= 50 and "estimated precision" in html
    assert len(re.findall(r'<span class="conf" aria-hidden="true">\d+</span>', html)) == len(shown)
    before = members(p, nid)
    bad = shown[:1]
    resp = c.post(f"/suggest/{nid}/decide", headers=hx(token),
                  data={"members_version": _version(html), "shown": ",".join(map(str, shown)),
                        "pks": ",".join(map(str, bad))})
    body = resp.get_data(as_text=True)
    assert resp.status_code in (200, 204), body
    assert members(p, nid) == before | set(shown[1:])
    with p.session() as s:
        st = set(s.scalars(select(Membership.status).where(Membership.object_pk.in_(shown[1:]))))
        assert st == {"validated"}
        assert set(s.scalars(select(Rejection.object_pk).where(Rejection.node_id == nid))) == set(bad)
        assert s.scalar(select(func.count()).select_from(Event)
                        .where(Event.action == "suggest_screen")) == 1
    # the rejected object never comes back for this label, also after retraining
    ws.refresh(p, wait=True)
    assert bad[0] not in pks_in(c.get(f"/suggest/{nid}").get_data(as_text=True))
    assert c.post("/undo", headers=hx(token)).status_code in (200, 204)
    assert members(p, nid) == before
    with p.session() as s:
        assert s.scalar(select(func.count()).select_from(Rejection)) == 0


def test_move_an_object_to_its_runner_up_label(labelled, client_as):
    c, token, p, info = labelled
    nid = info["nodes"][CLASSES[1]]
    html = c.get(f"/suggest/{nid}").get_data(as_text=True)
    shown = pks_in(html)
    alts = dict(re.findall(r'data-pk="(\d+)"[^>]*>.*?<button type="button" class="alt" data-node="(\d+)"', html))
    assert alts, "no runner-up buttons on the screen"
    node_ids = {info["nodes"][cls] for cls in CLASSES}
    assert {int(n) for n in alts.values()} <= node_ids - {nid}
    assert "→ " in html and "click that name under it" in html
    pk, target = next(iter(alts.items()))
    pk, target = int(pk), int(target)
    before, before_target = members(p, nid), members(p, target)
    resp = c.post(f"/suggest/{nid}/decide", headers=hx(token),
                  data={"members_version": _version(html), "shown": ",".join(map(str, shown)),
                        "pks": "", "moves": f"{pk}:{target}"})
    body = resp.get_data(as_text=True)
    assert resp.status_code in (200, 204), body
    if resp.status_code == 204:  # nothing left for this label: the message waits on the overview
        assert resp.headers["HX-Redirect"].endswith("/suggest/")
        body = c.get("/suggest/").get_data(as_text=True)
    assert f"Confirmed {len(shown) - 1}, rejected 0, moved 1 to their other label." in body
    assert members(p, target) == before_target | {pk}
    assert members(p, nid) == before | (set(shown) - {pk})
    with p.session() as s:
        assert s.scalar(select(Membership.status).where(Membership.object_pk == pk)) == "validated"
        assert set(s.scalars(select(Rejection.object_pk).where(Rejection.node_id == nid))) == {pk}
    assert c.post("/undo", headers=hx(token)).status_code in (200, 204)
    assert members(p, nid) == before and members(p, target) == before_target
    # malformed moves are refused; viewers see no runner-up buttons
    resp = c.post(f"/suggest/{nid}/decide", headers=hx(token),
                  data={"shown": str(shown[0]), "moves": f"{shown[0]}-x"})
    assert resp.status_code == 400
    v, _ = client_as("vic")
    assert 'class="alt"' not in v.get(f"/suggest/{nid}").get_data(as_text=True)


def test_type_the_label_of_a_wrong_suggestion(labelled, client_as):
    c, token, p, info = labelled
    nid = info["nodes"][CLASSES[1]]
    html = c.get(f"/suggest/{nid}").get_data(as_text=True)
    assert 'class="relabel"' in html and 'id="relabel-input"' in html
    shown = pks_in(html)
    a, b = shown[:2]
    other = info["nodes"][CLASSES[0]]
    before, before_other = members(p, nid), members(p, other)
    relabel = json.dumps({str(a): CLASSES[0], str(b): "tunicata"})
    resp = c.post(f"/suggest/{nid}/decide", headers=hx(token),
                  data={"members_version": _version(html), "shown": ",".join(map(str, shown)),
                        "pks": "", "moves": "", "relabel": relabel})
    body = resp.get_data(as_text=True)
    assert resp.status_code in (200, 204), body
    if resp.status_code == 204:
        body = c.get("/suggest/").get_data(as_text=True)
    assert f"Confirmed {len(shown) - 2}, rejected 0, moved 2 to their other label (1 new)." in body
    assert members(p, other) == before_other | {a}
    with p.session() as s:
        new = s.scalars(select(Node).where(Node.name == "tunicata")).one()
        assert new.status == "approved"
        assert set(s.scalars(select(Membership.object_pk).where(Membership.node_id == new.id))) == {b}
    assert c.post("/undo", headers=hx(token)).status_code in (200, 204)
    assert members(p, nid) == before and members(p, other) == before_other
    for bad in ("{not json", '["x"]', json.dumps({"x": "copepod"}), json.dumps({str(a): " "})):
        resp = c.post(f"/suggest/{nid}/decide", headers=hx(token),
                      data={"shown": str(a), "relabel": bad})
        assert resp.status_code == 400, bad
    assert members(p, nid) == before
    v, _ = client_as("vic")
    assert 'class="relabel"' not in v.get(f"/suggest/{nid}").get_data(as_text=True)


def test_accept_above_marks_predicted_and_shows_estimate(labelled):
    c, token, p, info = labelled
    nid = info["nodes"][CLASSES[2]]
    prev = c.get(f"/suggest/{nid}/preview?threshold=0.5").get_data(as_text=True)
    n = int(re.search(r"([\d,]+) suggestions?", prev).group(1).replace(",", ""))
    assert "estimated precision" in prev
    held = int(re.search(r"(\d+) (held-out objects? of this one|of this label)", prev).group(1))
    # the estimate is shown as this label's (bold) only when enough of its objects were held out
    assert ("<b>" in prev.split("estimated precision")[1][:20]) == (held >= 10)
    before = members(p, nid)
    assert f'name="counted" value="{n}"' in prev
    # the count shown is out of date (the model retrained meanwhile): nothing taken, the new count said
    resp = c.post(f"/suggest/{nid}/accept", headers=hx(token), data={"threshold": "0.5", "counted": str(n + 3)})
    assert f"The suggestions changed since {n + 3} were counted" in resp.get_data(as_text=True)
    assert members(p, nid) == before
    resp = c.post(f"/suggest/{nid}/accept", headers=hx(token), data={"threshold": "0.5", "counted": str(n)})
    assert resp.status_code in (200, 204)
    added = members(p, nid) - before
    assert len(added) == n
    if added:
        with p.session() as s:
            st = set(s.scalars(select(Membership.status).where(Membership.object_pk.in_(list(added)))))
        assert st == {"predicted"}
    resp = c.post(f"/suggest/{nid}/accept", headers=hx(token), data={"threshold": "7"})
    assert "between 0 and 1" in resp.get_data(as_text=True)


def test_check_a_sample_then_accept(labelled):
    c, token, p, info = labelled
    nid = info["nodes"][CLASSES[3]]
    html = c.get(f"/suggest/{nid}?check=0.0").get_data(as_text=True)
    shown = pks_in(html)
    assert shown and "random sample" in html and 'name="check" value="0.0"' in html
    resp = c.post(f"/suggest/{nid}/decide", headers=hx(token),
                  data={"members_version": _version(html), "shown": ",".join(map(str, shown)),
                        "pks": str(shown[0]), "check": "0.0"})
    body = resp.get_data(as_text=True)
    if resp.status_code == 204:  # the sample was all that was left: back to the labels, with the message
        assert resp.headers["HX-Redirect"] == "/suggest/"
        body = c.get("/suggest/").get_data(as_text=True)
    assert f"{len(shown) - 1} of {len(shown)} right" in body
    prev = c.get(f"/suggest/{nid}/preview?threshold=0.0").get_data(as_text=True)
    assert "checked on a random sample" in prev


def test_the_overview_reloads_itself_once_the_model_it_waits_for_is_trained(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    for cls in CLASSES[:2]:
        approve(c, token, info["nodes"][cls], name=cls)
    ws.forget(p)
    try:
        html = c.get("/suggest/").get_data(as_text=True)  # starts training in the background
        assert 'hx-get="/suggest/status?then=reload"' in html
        ws.refresh(p, wait=True)
        resp = c.get("/suggest/status?then=reload", headers={"HX-Request": "true"})
        assert resp.headers.get("HX-Refresh") == "true"
        # a screen's own status poll does not reload the screen
        resp = c.get("/suggest/status", headers={"HX-Request": "true"})
        assert "HX-Refresh" not in resp.headers and "trained on" in resp.get_data(as_text=True)
    finally:
        ws.forget(p)


def test_objects_far_from_every_label_are_suggested_too_when_asked(labelled, client_as):
    c, token, p, info = labelled
    state = ws.refresh(p, wait=True, force=True, unknown_factor=0.3)  # many far objects
    far = {int(pk) for pk, u in zip(state.preds.pks, state.preds.unknown) if u}
    assert far and ws.n_unknown(state) == len(far)
    n_open = sum(r["n"] for r in ws.overview(p))
    html = c.get("/suggest/").get_data(as_text=True)
    assert f"({len(far)} objects now) are left for the next clustering round" in html
    assert "Suggest labels for the far ones too" in html
    v, vtoken = client_as("vic")
    assert v.post("/suggest/far", headers=hx(vtoken), data={"on": "1"}).status_code == 403
    resp = c.post("/suggest/far", headers=hx(token), data={"on": "1"})
    assert resp.status_code == 204 and resp.headers["HX-Redirect"] == "/suggest/"
    assert ws.far_too(p)
    html = c.get("/suggest/").get_data(as_text=True)
    assert "suggested too now" in html and "Leave the far ones for clustering again" in html
    assert sum(r["n"] for r in ws.overview(p)) == n_open + len(far)
    shown = set()
    for cls in CLASSES:
        shown |= set(pks_in(c.get(f"/suggest/{info['nodes'][cls]}").get_data(as_text=True)))
    assert shown & far  # they come on the label screens now
    c.post("/suggest/far", headers=hx(token), data={"on": "0"})
    assert not ws.far_too(p) and sum(r["n"] for r in ws.overview(p)) == n_open
    assert "left for the next clustering round again" in c.get("/suggest/").get_data(as_text=True)
