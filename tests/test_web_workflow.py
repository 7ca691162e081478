"""Validate, grow, organise and undo through the web UI (Flask test client, real project)."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import func, select

from morphocluster.store import Event, Membership, Node, Rejection
from test_web_fixtures import (CLASSES, IN_NODE, app, client_as, web_project,  # noqa: F401
                               web_template)

pytestmark = pytest.mark.usefixtures("shared_data")


def pks_in(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'data-pk="(\d+)"', html)]


def hx(token):
    return {"X-CSRFToken": token, "HX-Request": "true"}


def members(p, node_id):
    with p.session() as s:
        return set(s.scalars(select(Membership.object_pk).where(Membership.node_id == node_id)))


def test_validate_next_claims_and_shows_members_most_typical_first(client_as, web_project):
    p, info = web_project
    c, _ = client_as("ann")
    resp = c.get("/validate/")
    assert resp.status_code == 302
    node_id = int(resp.headers["Location"].rstrip("/").split("/")[-1])
    assert node_id == info["nodes"][CLASSES[0]]  # the largest
    with p.session() as s:
        assert s.get(Node, node_id).claimed_by is not None
    html = c.get(f"/validate/{node_id}").get_data(as_text=True)
    shown = pks_in(html)
    assert set(shown) == members(p, node_id)
    # the two outliers are among the least typical
    assert set(info["outliers"]) & set(shown[-6:])
    assert "Approve" in html and "<kbd>a</kbd>" in html
    # the queue says whose a claimed node is
    assert re.search(rf'/validate/{node_id}">Node {node_id}</a> <span class="muted">[^<]* · yours<',
                     c.get("/").get_data(as_text=True))
    bob, _ = client_as("bob")
    assert "· claimed by ann<" in bob.get("/").get_data(as_text=True)


def test_member_pages_load_as_fragments(client_as, web_project, app):
    p, info = web_project
    app.config["PAGE_SIZE"] = 5
    c, _ = client_as("ann")
    node_id = info["nodes"][CLASSES[0]]
    first = c.get(f"/validate/{node_id}").get_data(as_text=True)
    assert len(pks_in(first)) == 5 and 'hx-trigger="revealed"' in first
    seen, offset = pks_in(first), 5
    while True:
        frag = c.get(f"/validate/{node_id}/members?offset={offset}", headers={"HX-Request": "true"})
        html = frag.get_data(as_text=True)
        assert "<html" not in html
        got = pks_in(html)
        seen += got
        offset += len(got)
        if 'hx-trigger="revealed"' not in html:
            break
    assert len(seen) == len(set(seen)) == IN_NODE + 2


def test_remove_outliers_then_approve_with_name(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    node_id = int(c.get("/validate/").headers["Location"].rstrip("/").split("/")[-1])
    html = c.get(f"/validate/{node_id}").get_data(as_text=True)
    version = re.search(r'name="members_version" value="(\d+)"', html).group(1)
    out = info["outliers"]
    resp = c.post(f"/validate/{node_id}/remove", headers=hx(token),
                  data={"pks": ",".join(map(str, out)), "members_version": version})
    assert resp.status_code == 200 and "Removed 2 objects" in resp.get_data(as_text=True)
    assert not set(out) & members(p, node_id)
    with p.session() as s:
        assert s.scalar(select(func.count()).select_from(Rejection).where(Rejection.node_id == node_id)) == 2
    # a stale screen (old version) is refused and changes nothing
    stale = c.post(f"/validate/{node_id}/approve", headers=hx(token), data={"members_version": version})
    assert stale.status_code == 409 and "changed" in stale.get_data(as_text=True)
    html = resp.get_data(as_text=True)
    version = re.search(r'name="members_version" value="(\d+)"', html).group(1)
    seen = ",".join(map(str, pks_in(html)))
    resp = c.post(f"/validate/{node_id}/approve", headers=hx(token),
                  data={"members_version": version, "name": "chaetognath", "seen": seen, "then": "grow"})
    assert resp.status_code == 204 and resp.headers["HX-Redirect"] == f"/grow/{node_id}"
    with p.session() as s:
        node = s.get(Node, node_id)
        assert (node.status, node.name, node.n_members) == ("approved", "chaetognath", IN_NODE)
        assert set(s.scalars(select(Membership.status).where(Membership.node_id == node_id))) == {"validated"}
    assert f"Node {node_id} approved as chaetognath." in c.get(f"/grow/{node_id}").get_data(as_text=True)


def test_approve_with_objects_selected_removes_them_and_an_emptied_node_moves_on(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    node_id = info["nodes"]["copepod_calanoid"]
    html = c.get(f"/validate/{node_id}").get_data(as_text=True)
    shown = pks_in(html)
    resp = c.post(f"/validate/{node_id}/approve", headers=hx(token),
                  data={"seen": ",".join(map(str, shown)), "pks": f"{shown[1]},{shown[2]}", "name": "copepod"})
    assert resp.status_code == 204
    assert members(p, node_id) == set(shown) - {shown[1], shown[2]}
    assert "approved as copepod; 2 selected removed." in c.get("/").get_data(as_text=True)
    # removing every member of a candidate: the screen moves on, and an empty node cannot be approved
    other = info["nodes"]["acantharia_protist"]
    everyone = ",".join(map(str, members(p, other)))
    resp = c.post(f"/validate/{other}/remove", headers=hx(token), data={"pks": everyone})
    assert resp.status_code == 204 and resp.headers["HX-Redirect"] == "/validate/"
    assert f"Node {other} is empty now" in c.get("/").get_data(as_text=True)
    resp = c.post(f"/validate/{other}/approve", headers=hx(token), data={"name": "Empty"})
    assert resp.status_code == 409 and "no members left" in resp.get_data(as_text=True)


def test_remove_from_here_on(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    node_id = info["nodes"][CLASSES[2]]
    html = c.get(f"/validate/{node_id}").get_data(as_text=True)
    version = re.search(r'name="members_version" value="(\d+)"', html).group(1)
    resp = c.post(f"/validate/{node_id}/remove", headers=hx(token),
                  data={"from_rank": "10", "pks": "", "members_version": version})
    assert resp.status_code == 200
    assert members(p, node_id) == set(pks_in(html)[:10])


def test_nothing_selected_says_so(client_as, web_project):
    _, info = web_project
    c, token = client_as("ann")
    resp = c.post(f"/validate/{info['nodes'][CLASSES[2]]}/remove", headers=hx(token), data={})
    assert "Select objects first" in resp.get_data(as_text=True)


def test_split_dissolve_merge(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    a, b, d = (info["nodes"][k] for k in CLASSES[1:4])
    resp = c.post(f"/validate/{a}/split", headers=hx(token))
    assert resp.status_code == 200 and "Split: the other part is now node" in resp.get_data(as_text=True)
    new = int(re.search(r"now node (\d+)", resp.get_data(as_text=True)).group(1))
    assert members(p, a) and members(p, new) and not members(p, a) & members(p, new)
    before = members(p, new) | members(p, b)
    resp = c.post(f"/validate/{new}/merge", headers=hx(token), data={"into": str(b)})
    assert resp.status_code == 204 and members(p, b) == before
    resp = c.post(f"/validate/{d}/dissolve", headers=hx(token))
    assert resp.status_code == 204 and resp.headers["HX-Redirect"] == "/validate/"
    with p.session() as s:
        assert s.get(Node, d).status == "dissolved"
    assert "id of the node" in c.post(f"/validate/{a}/merge", headers=hx(token)).get_data(as_text=True)


def test_two_annotators_claim_different_nodes(client_as, web_project):
    p, info = web_project
    ann, ann_token = client_as("ann")
    bob, bob_token = client_as("bob")
    n1 = int(ann.get("/validate/").headers["Location"].rstrip("/").split("/")[-1])
    n2 = int(bob.get("/validate/").headers["Location"].rstrip("/").split("/")[-1])
    assert n1 != n2
    # ann gets her own claim back; bob cannot decide on ann's node
    assert ann.get("/validate/").headers["Location"].endswith(f"/{n1}")
    resp = bob.post(f"/validate/{n1}/dissolve", headers=hx(bob_token))
    assert resp.status_code == 409 and "claimed" in resp.get_data(as_text=True)
    assert "ann is working on this node" in bob.get(f"/validate/{n1}").get_data(as_text=True)
    assert "is working on this node" not in ann.get(f"/validate/{n1}").get_data(as_text=True)
    with p.session() as s:
        assert s.get(Node, n1).status == "candidate"
    # a node opened from the home page's queue (or any link) is claimed like one from "next"
    n3 = next(n for n in info["nodes"].values() if n not in (n1, n2))
    assert "is working on this node" not in bob.get(f"/validate/{n3}").get_data(as_text=True)
    assert "bob is working on this node" in ann.get(f"/validate/{n3}").get_data(as_text=True)
    with p.session() as s:
        assert s.get(Node, n3).claimed_by == 3  # bob
    vic, _ = client_as("vic")
    vic.get(f"/validate/{n1}")  # a viewer only looks
    with p.session() as s:
        assert s.get(Node, n1).claimed_by == 2  # still ann's


def approve(c, token, node_id, name=None):
    html = c.get(f"/validate/{node_id}").get_data(as_text=True)
    version = re.search(r'name="members_version" value="(\d+)"', html).group(1)
    data = {"members_version": version}
    if name:
        data["name"] = name
    assert c.post(f"/validate/{node_id}/approve", headers=hx(token), data=data).status_code == 204


def test_names_tree_rename_move_umbrella(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    a, b = info["nodes"]["copepod_calanoid"], info["nodes"]["acantharia_protist"]
    approve(c, token, a, name="copepod")
    approve(c, token, b, name="acantharia")
    frag = c.get("/tree/names?name=cop", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert '<option value="copepod">' in frag and "acantharia" not in frag
    resp = c.post(f"/tree/node/{b}/name", headers=hx(token), data={"name": "Acantharia"})
    assert "now called" in resp.get_data(as_text=True)
    assert '<span id="node-name" hx-swap-oob="true">Acantharia</span>' in resp.get_data(as_text=True)
    third = info["nodes"]["hydromedusae_solmaris"]
    approve(c, token, third)
    resp = c.post(f"/tree/node/{third}/name", headers=hx(token), data={"name": "COPEPOD"})
    assert "now called &#39;copepod&#39; (the spelling in use)" in resp.get_data(as_text=True)
    resp = c.post("/tree/umbrella", headers=hx(token), data={"nodes": [str(a), str(b)], "name": "plankton"})
    assert resp.status_code == 204
    with p.session() as s:
        top = s.scalar(select(Node.id).where(Node.name == "plankton"))
        assert s.get(Node, a).parent_id == top
    # a new address (not only a new #fragment), so that the browser loads the tree again
    assert resp.headers["HX-Redirect"] == f"/tree/?new={top}#n{top}"
    tree = c.get("/tree/").get_data(as_text=True)
    assert "plankton" in tree and "Acantharia" in tree and f"{2 * IN_NODE}" in tree
    assert f"2 nodes grouped under the new node {top}." in tree
    # an umbrella holds no objects itself: nothing to grow, no row of 0 objects among the labels
    home = c.get("/").get_data(as_text=True)
    assert f'href="/grow/{top}"' not in home and "<td>plankton</td>" not in home
    assert c.post(f"/tree/node/{a}/move", headers=hx(token), data={"parent": ""}).status_code == 204
    # a node is picked by the name the field offers (umbrellas and classes, no imported category)
    frag = c.get("/tree/names?parent=pla&list=node-names&nodes=1", headers={"HX-Request": "true"})
    assert '<datalist id="node-names"><option value="plankton">' in frag.get_data(as_text=True)
    assert c.post(f"/tree/node/{a}/move", headers=hx(token), data={"parent": "Plankton"}).status_code == 204
    with p.session() as s:
        assert s.get(Node, a).parent_id == top
    assert f"Node {a} is now under plankton (#{top})." in c.get(f"/tree/node/{a}").get_data(as_text=True)
    resp = c.post(f"/tree/node/{b}/merge", headers=hx(token), data={"into": "shrimp"})
    assert resp.status_code == 409 and "no node is called" in resp.get_data(as_text=True)
    assert c.post(f"/tree/node/{a}/move", headers=hx(token), data={"parent": ""}).status_code == 204
    resp = c.post(f"/tree/node/{b}/merge", headers=hx(token), data={"into": "copepod"})
    assert resp.status_code == 204 and resp.headers["HX-Redirect"] == f"/tree/node/{a}"
    assert len(members(p, a)) == 2 * IN_NODE
    assert f"merged into copepod (#{a})." in c.get(f"/tree/node/{a}").get_data(as_text=True)
    assert c.post(f"/tree/node/{b}/merge", headers=hx(token), data={}).status_code == 409
    with p.session() as s:
        assert s.get(Node, a).parent_id is None
    assert c.get(f"/tree/node/{a}").status_code == 200
    strip = c.get(f"/tree/node/{a}/preview", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert strip.count("<img") == 8 and "s=64" in strip


def test_object_page_neighbours_and_more_like_this(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    pk = info["by_class"]["copepod_calanoid"][-5]  # unlabelled
    html = c.get(f"/object/{pk}").get_data(as_text=True)
    assert "More like this" in html and html.count("/thumb/") >= 20
    resp = c.post(f"/tree/from-object/{pk}", headers=hx(token))
    assert resp.status_code == 204 and resp.headers["HX-Redirect"].startswith("/grow/")
    assert c.get("/object/999999").status_code == 404


def test_undo_through_the_ui(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    node_id = info["nodes"]["copepod_calanoid"]
    approve(c, token, node_id, name="copepod")
    resp = c.post("/undo", headers={**hx(token), "HX-Current-URL": f"http://x/validate/{node_id}"})
    assert resp.status_code == 200 and resp.headers["HX-Refresh"] == "true"
    assert f"Undone: approve (node {node_id})" in c.get(f"/validate/{node_id}").get_data(as_text=True)  # on the reloaded page
    assert "Undone" not in c.get(f"/validate/{node_id}").get_data(as_text=True)  # once
    with p.session() as s:
        assert s.get(Node, node_id).status == "candidate" and s.get(Node, node_id).name is None
    # a grow page of a node that is no longer approved gives way to its validate page
    approve(c, token, node_id, name="copepod")
    resp = c.post("/undo", headers={**hx(token), "HX-Current-URL": f"http://x/grow/{node_id}"})
    assert resp.headers["HX-Redirect"] == f"/validate/{node_id}"
    # a node that the undo removed: back to the home page, not a 404
    pk = info["by_class"]["copepod_calanoid"][-5]
    new = int(c.post(f"/tree/from-object/{pk}", headers=hx(token)).headers["HX-Redirect"].split("/")[2])
    resp = c.post("/undo", headers={**hx(token), "HX-Current-URL": f"http://x/grow/{new}"})
    assert resp.headers["HX-Redirect"] == "/" and "Undone" in c.get("/").get_data(as_text=True)
    assert "nothing to undo" in c.post("/undo", headers=hx(token)).get_data(as_text=True)
    # another user's decisions are not undone by ann
    bob, bob_token = client_as("bob")
    approve(bob, bob_token, info["nodes"]["acantharia_protist"])
    assert "nothing to undo" in c.post("/undo", headers=hx(token)).get_data(as_text=True)


def test_event_log_for_admin(client_as, web_project):
    _, info = web_project
    ann, token = client_as("ann")
    approve(ann, token, info["nodes"]["copepod_calanoid"], name="copepod")
    admin, _ = client_as("ada")
    html = admin.get("/events").get_data(as_text=True)
    assert "approve" in html and "ann" in html and "name=copepod" in html
    from morphocluster.store import log_event

    p, _ = web_project
    with p.transaction() as s:  # what `morphocluster cluster` writes: no user, nested parameters
        log_event(s, None, "cluster_round", {"round": 2, "params": {"min_cluster_size": 16, "sample": None}})
    html = admin.get("/events").get_data(as_text=True)
    assert "(command line)" in html and "cluster round" in html
    assert "params: (min_cluster_size=16)" in html and "{" not in html.split("cluster round", 1)[1][:200]


def test_home_shows_progress_queue_and_map(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    approve(c, token, info["nodes"]["copepod_calanoid"], name="copepod")
    html = c.get("/").get_data(as_text=True)
    assert re.search(r'id="n-labelled">16<', html) and re.search(r'id="n-approved">1<', html)
    assert re.search(r'id="n-grown">0<', html)
    html = c.get(f"/grow/{info['nodes']['copepod_calanoid']}").get_data(as_text=True)
    version = re.search(r'name="members_version" value="(\d+)"', html).group(1)
    c.post(f"/grow/{info['nodes']['copepod_calanoid']}/accept", headers=hx(token),
           data={"shown": str(pks_in(html)[0]), "members_version": version})
    html = c.get("/").get_data(as_text=True)
    assert re.search(r'id="n-grown">1<', html) and re.search(r'id="n-labelled">17<', html)
    assert "copepod" in html and f"/validate/{info['nodes']['acantharia_protist']}" in html
    assert 'id="unnamed"' not in html
    # an approved node without a name: counted, and pointed at, since exports leave it out
    other = info["nodes"]["acantharia_protist"]
    approve(c, token, other)
    html = c.get("/").get_data(as_text=True)
    assert re.search(r'id="unnamed"><b>16</b> of them lie in validated nodes without a name', html)
    assert f'href="/tree/node/{other}"' in html
    # "Grow next" moves on to a node not grown yet
    assert c.get("/grow/").headers["Location"].endswith(f"/grow/{other}")
    # a candidate emptied by removing every member is not waiting
    before = int(re.search(r'id="n-candidates">(\d+)<', html)[1])
    empty = info["nodes"]["hydromedusae_solmaris"]
    c.post(f"/validate/{empty}/remove", headers=hx(token),
           data={"pks": ",".join(map(str, members(p, empty)))})
    assert not members(p, empty)
    html = c.get("/").get_data(as_text=True)
    assert re.search(rf'id="n-candidates">{before - 1}<', html)
    frag = c.get("/map", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<svg" in frag or "No map yet" in frag


def test_node_redirects(client_as, web_project):
    _, info = web_project
    c, token = client_as("ann")
    n = info["nodes"]["copepod_calanoid"]
    assert c.get(f"/node/{n}").headers["Location"] == f"/validate/{n}"
    approve(c, token, n)
    assert c.get(f"/node/{n}").headers["Location"] == f"/grow/{n}"
    assert c.get("/grow/").status_code == 302


def test_events_are_one_per_decision(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    approve(c, token, info["nodes"]["copepod_calanoid"])
    with p.session() as s:
        assert [e for e in s.scalars(select(Event.action))] == ["approve"]


def test_concurrent_claims_never_share_a_node(client_as, web_project):
    import threading

    p, info = web_project
    clients = [client_as(u) for u in ("ann", "bob", "ada")]
    barrier = threading.Barrier(len(clients))
    got = {}

    def claim(i, c):
        barrier.wait()
        got[i] = c.get("/validate/").headers["Location"]

    threads = [threading.Thread(target=claim, args=(i, c)) for i, (c, _) in enumerate(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 3 and len(set(got.values())) == 3
    with p.session() as s:
        claimed = {s.get(Node, int(u.rstrip("/").split("/")[-1])).claimed_by for u in got.values()}
    assert len(claimed) == 3
