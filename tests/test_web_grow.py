"""Grow screens through the Flask test client: click the first wrong, accept a screen, page search."""

from __future__ import annotations

import re

from sqlalchemy import select

from morphocluster.store import Membership, Rejection
from test_web_fixtures import app, client_as, web_project, web_template  # noqa: F401
from test_web_workflow import approve, hx, members, pks_in


def _version(html: str) -> str:
    return re.search(r'name="members_version" value="(\d+)"', html).group(1)


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
                        "shown": ",".join(map(str, ranked)), "members_version": _version(html)})
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
    html = resp.get_data(as_text=True)
    ranked = pks_in(html)
    resp = c.post(f"/grow/{node_id}/accept", headers=hx(token),
                  data={"shown": ",".join(map(str, ranked[:5])), "members_version": _version(html)})
    assert "Accepted 5" in resp.get_data(as_text=True)
    assert set(ranked[:5]) <= members(p, node_id)
    # objects selected (to reject) when the screen is accepted are rejected, not accepted
    html = resp.get_data(as_text=True)
    ranked = pks_in(html)
    resp = c.post(f"/grow/{node_id}/accept", headers=hx(token),
                  data={"shown": ",".join(map(str, ranked[:5])), "pks": f"{ranked[1]},{ranked[3]}",
                        "members_version": _version(html)})
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
    html = c.get(f"/grow/{node_id}/search").get_data(as_text=True)
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
    html = c.get(f"/grow/{node_id}/search").get_data(as_text=True)
    html = c.post(f"/grow/{node_id}/search/judge", headers=hx(token), data={"ok": "0", "probe": "0"}
                  ).get_data(as_text=True)
    assert "Not even the first page was good enough" in html and "search/commit" not in html
    assert "page search done" in html
    # judged to the end, then someone else grows the node: the commit accepts nothing and says so
    html = c.post(f"/grow/{node_id}/search/restart", headers=hx(token)).get_data(as_text=True)
    assert "starts again from the first page" in html and "Page 1 " in html
    html = c.post(f"/grow/{node_id}/search/judge", headers=hx(token), data={"ok": "1", "probe": "0"}
                  ).get_data(as_text=True)
    for _ in range(20):
        if "above the boundary" in html:
            break
        html = c.post(f"/grow/{node_id}/search/judge", headers=hx(token), data={"ok": "0"}).get_data(as_text=True)
    bob, bob_token = client_as("bob")
    html = bob.get(f"/grow/{node_id}").get_data(as_text=True)
    bob.post(f"/grow/{node_id}/accept", headers=hx(bob_token),
             data={"shown": ",".join(map(str, pks_in(html)[:2])), "members_version": _version(html)})
    before = members(p, node_id)
    html = c.post(f"/grow/{node_id}/search/commit", headers=hx(token)).get_data(as_text=True)
    assert "nothing was accepted, and the search starts again" in html and members(p, node_id) == before
    assert "All belong" in html


def test_accept_until_takes_only_what_the_screen_showed(client_as, web_project):
    """A forged "accept until" (huge rank, no shown list, no version) takes nothing."""
    p, info = web_project
    c, token = client_as("ann")
    node_id = info["nodes"]["copepod_calanoid"]
    approve(c, token, node_id)
    html = c.get(f"/grow/{node_id}").get_data(as_text=True)
    ranked, version, before = pks_in(html), _version(html), members(p, node_id)
    for data, code in (({"rank": "100000"}, 400),  # no shown list, no version
                       ({"rank": "100000", "members_version": version}, 400),
                       ({"rank": "100000", "shown": ",".join(map(str, ranked))}, 400),
                       # rank past the screen
                       ({"rank": "100000", "shown": ",".join(map(str, ranked)), "members_version": version}, 409),
                       # a stale version
                       ({"rank": "3", "shown": ",".join(map(str, ranked)), "members_version": str(int(version) - 1)},
                        409)):
        resp = c.post(f"/grow/{node_id}/until", headers=hx(token), data=data)
        assert resp.status_code == code, (data, resp.get_data(as_text=True))
        assert members(p, node_id) == before
    assert "the objects the screen showed" in c.post(
        f"/grow/{node_id}/until", headers=hx(token), data={"rank": "5"}).get_data(as_text=True)
    # accept the whole screen: the shown list and the version are required too
    resp = c.post(f"/grow/{node_id}/accept", headers=hx(token), data={"shown": ",".join(map(str, ranked))})
    assert resp.status_code == 400 and members(p, node_id) == before
    # only shown objects above the rank are taken, even if the rank reaches past what was shown
    resp = c.post(f"/grow/{node_id}/until", headers=hx(token),
                  data={"rank": "3", "shown": ",".join(map(str, ranked[:3])), "members_version": version})
    assert resp.status_code == 200 and members(p, node_id) == before | set(ranked[:3])


def test_grow_never_takes_members_of_a_cluster_someone_else_validates(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    node_id = info["nodes"]["copepod_calanoid"]
    approve(c, token, node_id)
    # two copepods hide in the chaetognath cluster; bob opens that cluster (and claims it)
    other = info["nodes"]["chaetognath_sagitta"]
    bob, _ = client_as("bob")
    assert bob.get(f"/validate/{other}").status_code == 200
    hidden, theirs = set(info["outliers"]), members(p, other)
    html = c.get(f"/grow/{node_id}").get_data(as_text=True)
    ranked, before = pks_in(html), members(p, node_id)
    assert hidden & set(ranked), "the look-alikes should rank on the first screen"
    resp = c.post(f"/grow/{node_id}/until", headers=hx(token),
                  data={"rank": str(len(ranked)), "shown": ",".join(map(str, ranked)),
                        "members_version": _version(html)})
    text = resp.get_data(as_text=True)
    assert resp.status_code == 200 and "left where they are" in text
    assert members(p, node_id) == before | (set(ranked) - theirs)
    assert members(p, other) == theirs
    # the same for a whole screen accepted
    html = c.get(f"/grow/{node_id}").get_data(as_text=True)
    assert hidden & set(pks_in(html))
    before = members(p, node_id)
    resp = c.post(f"/grow/{node_id}/accept", headers=hx(token),
                  data={"shown": ",".join(map(str, pks_in(html))), "members_version": _version(html)})
    assert "left where they are" in resp.get_data(as_text=True)
    assert members(p, node_id) == before | (set(pks_in(html)) - theirs) and members(p, other) == theirs
