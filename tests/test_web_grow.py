"""Grow screens through the Flask test client: click the first wrong, accept a screen, page search."""

from __future__ import annotations

import re

from sqlalchemy import select

from morphocluster.store import Membership, Rejection
from test_web_fixtures import app, client_as, web_project, web_template  # noqa: F401
from test_web_workflow import approve, hx, members, pks_in


def test_grow_click_first_wrong(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    node_id = info["nodes"]["copepod_calanoid"]
    approve(c, token, node_id)
    html = c.get(f"/grow/{node_id}").get_data(as_text=True)
    ranked = pks_in(html)
    assert 0 < len(ranked) <= 50
    assert "first object that does not belong" in html
    version = re.search(r'name="members_version" value="(\d+)"', html).group(1)
    before = members(p, node_id)
    resp = c.post(f"/grow/{node_id}/until", headers=hx(token),
                  data={"rank": "3", "wrong_pk": str(ranked[3]), "members_version": version,
                        "shown": ",".join(map(str, ranked))})
    assert resp.status_code == 200 and "Accepted 3, rejected 1" in resp.get_data(as_text=True)
    assert members(p, node_id) == before | set(ranked[:3])
    with p.session() as s:
        st = dict(s.execute(select(Membership.object_pk, Membership.status)
                            .where(Membership.object_pk.in_(ranked[:3]))).all())
        assert set(st.values()) == {"validated"}  # a human saw them
        assert s.scalar(select(Rejection.object_pk).where(Rejection.node_id == node_id)) == ranked[3]
    # the rejected object is not offered again
    html = c.get(f"/grow/{node_id}").get_data(as_text=True)
    assert ranked[3] not in pks_in(html)
    # an object Ctrl-selected as wrong above the one clicked is rejected, not accepted
    ranked, before = pks_in(html), members(p, node_id)
    resp = c.post(f"/grow/{node_id}/until", headers=hx(token),
                  data={"rank": "4", "wrong_pk": str(ranked[4]), "pks": str(ranked[1]),
                        "shown": ",".join(map(str, ranked))})
    assert "Accepted 3, rejected 2." in resp.get_data(as_text=True)
    assert members(p, node_id) == before | {ranked[0], ranked[2], ranked[3]}
    assert not {ranked[1], ranked[4]} & set(pks_in(resp.get_data(as_text=True)))


def test_grow_accept_screen_and_reject_selected(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    node_id = info["nodes"]["acantharia_protist"]
    approve(c, token, node_id)
    ranked = pks_in(c.get(f"/grow/{node_id}").get_data(as_text=True))
    resp = c.post(f"/grow/{node_id}/reject", headers=hx(token), data={"pks": f"{ranked[0]},{ranked[1]}"})
    assert "Rejected 2" in resp.get_data(as_text=True)
    ranked = pks_in(resp.get_data(as_text=True))
    resp = c.post(f"/grow/{node_id}/accept", headers=hx(token), data={"shown": ",".join(map(str, ranked[:5]))})
    assert "Accepted 5" in resp.get_data(as_text=True)
    assert set(ranked[:5]) <= members(p, node_id)
    # objects selected (to reject) when the screen is accepted are rejected, not accepted
    ranked = pks_in(resp.get_data(as_text=True))
    resp = c.post(f"/grow/{node_id}/accept", headers=hx(token),
                  data={"shown": ",".join(map(str, ranked[:5])), "pks": f"{ranked[1]},{ranked[3]}"})
    assert "Accepted 3, rejected 2." in resp.get_data(as_text=True)
    got = members(p, node_id)
    assert {ranked[0], ranked[2], ranked[4]} <= got and not {ranked[1], ranked[3]} & got
    assert not {ranked[1], ranked[3]} & set(pks_in(resp.get_data(as_text=True)))


def test_grow_page_search(client_as, web_project, app):
    p, info = web_project
    app.config["GROW_PAGE_SIZE"] = 4
    c, token = client_as("ann")
    node_id = info["nodes"]["hydromedusae_solmaris"]
    approve(c, token, node_id)
    html = c.get(f"/grow/{node_id}/search?restart=1").get_data(as_text=True)
    assert "All belong" in html and len(pks_in(html)) == 4
    first_page = pks_in(html)
    assert """hx-vals='{"probe": 0}'""" in html  # the verdict names the page it is about
    html = c.post(f"/grow/{node_id}/search/judge", headers=hx(token), data={"ok": "1", "probe": "0"}
                  ).get_data(as_text=True)
    # the same click again (a double click) is about page 0, no longer waiting: dropped
    again = c.post(f"/grow/{node_id}/search/judge", headers=hx(token), data={"ok": "0", "probe": "0"}
                   ).get_data(as_text=True)
    assert "judged already" in again and pks_in(again) == pks_in(html)
    for _ in range(20):
        if "above the boundary" in html:
            break
        html = c.post(f"/grow/{node_id}/search/judge", headers=hx(token), data={"ok": "0"}).get_data(as_text=True)
    assert "Accept the 4 objects above the boundary" in html
    before = members(p, node_id)
    resp = c.post(f"/grow/{node_id}/search/commit", headers=hx(token))
    assert "Accepted 4 objects" in resp.get_data(as_text=True)
    assert members(p, node_id) == before | set(first_page)
    assert resp.headers["HX-Push-Url"] == f"/grow/{node_id}"  # the direct screen has its own address
    # the first page already bad: nothing to accept whole, the direct screen is offered instead
    html = c.get(f"/grow/{node_id}/search?restart=1").get_data(as_text=True)
    html = c.post(f"/grow/{node_id}/search/judge", headers=hx(token), data={"ok": "0", "probe": "0"}
                  ).get_data(as_text=True)
    assert "Not even the first page was good enough" in html and "search/commit" not in html
    assert "page search done" in html
    # judged to the end, then someone else grows the node: the commit accepts nothing and says so
    c.get(f"/grow/{node_id}/search?restart=1")
    html = c.post(f"/grow/{node_id}/search/judge", headers=hx(token), data={"ok": "1", "probe": "0"}
                  ).get_data(as_text=True)
    for _ in range(20):
        if "above the boundary" in html:
            break
        html = c.post(f"/grow/{node_id}/search/judge", headers=hx(token), data={"ok": "0"}).get_data(as_text=True)
    bob, bob_token = client_as("bob")
    other = pks_in(bob.get(f"/grow/{node_id}").get_data(as_text=True))[:2]
    bob.post(f"/grow/{node_id}/accept", headers=hx(bob_token), data={"shown": ",".join(map(str, other))})
    before = members(p, node_id)
    html = c.post(f"/grow/{node_id}/search/commit", headers=hx(token)).get_data(as_text=True)
    assert "nothing was accepted, and the search starts again" in html and members(p, node_id) == before
    assert "All belong" in html
