"""Absurd numbers and names in requests are a 400 or a 404, never a 500 (issue 16, point 14).

Ids of 2^63 and more fit no 64-bit id column: SQLite raised OverflowError (a 500) in 11 routes.
The URL map is walked, so a route added later is checked too.
"""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from morphocluster import jobs
from morphocluster.store import Membership, Object
from test_web_fixtures import app, client_as, web_project, web_template  # noqa: F401
from test_web_workflow import approve, hx, members, pks_in

BIG = (2**63, 2**64)


def _int_rules(app):
    for rule in app.url_map.iter_rules():
        ints = re.findall(r"<int:(\w+)>", rule.rule)
        if ints:
            yield rule, ints


def test_every_route_answers_404_to_an_id_no_database_holds(client_as, app):
    c, token = client_as("ada")  # an admin passes every role check: only the id is wrong
    rules = list(_int_rules(app))
    assert len(rules) >= 20
    for rule, ints in rules:
        for big in BIG:
            url = rule.rule
            for name in ints:
                url = url.replace(f"<int:{name}>", str(big))
            url = re.sub(r"<(?:\w+:)?(\w+)>", "cluster", url)  # other arguments: a plain word
            for method in sorted(rule.methods & {"GET", "POST"}):
                resp = c.open(url, method=method, headers=hx(token))
                assert resp.status_code == 404, (method, url, resp.status_code)


def test_the_largest_id_is_still_an_id(client_as, app):
    c, _ = client_as("ada")
    assert c.get(f"/object/{2**63 - 1}").status_code == 404  # routed, and not found
    assert "no object with id" in c.get(f"/object/{2**63 - 1}").get_data(as_text=True)


@pytest.fixture
def grown(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    node_id = info["nodes"]["copepod_calanoid"]
    approve(c, token, node_id)
    html = c.get(f"/grow/{node_id}").get_data(as_text=True)
    version = re.search(r'name="members_version" value="(\d+)"', html).group(1)
    return p, info, c, token, node_id, pks_in(html), version


def test_query_and_form_numbers_out_of_range_are_400(grown, client_as):
    p, info, c, token, node_id, ranked, version = grown
    cand = info["nodes"]["acantharia_protist"]
    ada, ada_token = client_as("ada")
    for url in ("/events?page=abc", f"/events?page={2**63}", f"/events?page={2**64}", "/events?page=-1"):
        resp = ada.get(url)
        assert resp.status_code == 400 and "page:" in resp.get_data(as_text=True), url
    for url in (f"/validate/{cand}/members?offset={2**64}", f"/validate/{cand}/members?v=x",
                f"/object/{ranked[0]}?k={2**64}", f"/suggest/{node_id}?threshold=nan",
                f"/suggest/{node_id}/preview?threshold=abc", f"/suggest/{node_id}?check=inf"):
        assert c.get(url).status_code == 400, url
    before = members(p, node_id)
    posts = [
        (f"/validate/{cand}/remove", {"from_rank": "abc"}),
        (f"/validate/{cand}/remove", {"from_rank": str(2**64)}),
        (f"/validate/{cand}/remove", {"pks": str(2**64)}),
        (f"/validate/{cand}/approve", {"members_version": str(2**64)}),
        (f"/grow/{node_id}/until", {"rank": "abc", "shown": str(ranked[0]), "members_version": version}),
        (f"/grow/{node_id}/until", {"rank": "0", "shown": str(2**64), "members_version": version}),
        (f"/grow/{node_id}/accept", {"shown": str(2**64), "members_version": version}),
        (f"/grow/{node_id}/accept", {"shown": str(ranked[0]), "members_version": version,
                                     "relabel": f'{{"{2**64}": "egg"}}'}),
        (f"/grow/{node_id}/reject", {"pks": f"{ranked[0]},{2**63}"}),
        (f"/grow/{node_id}/search/judge", {"ok": "1", "probe": str(2**64)}),
        ("/tree/umbrella", {"nodes": f"{node_id},{2**64}", "name": "group"}),
        (f"/suggest/{node_id}/decide", {"shown": str(ranked[0]), "moves": f"{ranked[0]}:{2**64}"}),
    ]
    for url, data in posts:
        resp = c.post(url, headers=hx(token), data=data)
        assert resp.status_code == 400, (url, data, resp.status_code)
    assert members(p, node_id) == before
    # a node id typed as '#2^64' names no node
    for url, field in ((f"/validate/{cand}/merge", "into"), (f"/tree/node/{node_id}/merge", "into"),
                       (f"/tree/node/{node_id}/move", "parent")):
        for typed in (f"#{2**64}", str(2**64)):
            resp = c.post(url, headers=hx(token), data={field: typed, "members_version": version})
            assert resp.status_code in (400, 404), (url, typed, resp.status_code)
    for q in (f"#{2**64}", "#²", "#" + "9" * 5000):
        assert c.get("/object/find", query_string={"q": q}).status_code == 200, q


def test_undo_from_a_page_whose_address_holds_a_huge_id(grown):
    p, info, c, token, node_id, ranked, version = grown
    headers = dict(hx(token), **{"HX-Current-URL": f"http://localhost/grow/{2**64}"})
    resp = c.post("/undo", headers=headers)
    assert resp.status_code == 200 and "HX-Refresh" in resp.headers


def test_jobs_form_refuses_a_cluster_size_out_of_range(client_as, web_project):
    p, _ = web_project
    c, token = client_as("ada")
    for value in ("-5", "0", "1", "abc", "2.5", str(2**64)):
        resp = c.post("/jobs/start/cluster", headers=hx(token), data={"min_cluster_size": value})
        assert resp.status_code == 400, value
        assert "min_cluster_size" in resp.get_data(as_text=True), value
    assert jobs.list_jobs(p) == []


def test_an_image_whose_stored_name_holds_cr_lf(client_as, web_project):
    """The stored name never reaches a header: responses stay well-formed (no 500)."""
    p, info = web_project
    c, _ = client_as("ann")
    pk = info["by_class"]["copepod_calanoid"][0]
    with p.transaction() as s:
        obj = s.get(Object, pk)
        old = p.image_path(obj.path)
        new = old.with_name("evil\r\nSet-Cookie: x=1.png")
        old.rename(new)
        obj.path = str(new.relative_to(p.images_dir.resolve()))
    for url in (f"/image/{pk}", f"/thumb/{pk}", f"/object/{pk}"):
        resp = c.get(url)
        assert resp.status_code == 200, url
        assert all("\r" not in v and "\n" not in v for _, v in resp.headers.items()), url
        assert not any(v.startswith("x=") for v in resp.headers.getlist("Set-Cookie")), url
    with p.session() as s:
        assert s.scalar(select(Membership.node_id).where(Membership.object_pk == pk)) is not None
