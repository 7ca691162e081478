import numpy as np
import pytest
from sqlalchemy import select

from morphocluster.features.matrix import load_matrix
from morphocluster.store import Membership, Node, Rejection
from morphocluster.workflow import WorkflowError, grow, grow_search, undo
from test_web_fixtures import web_project, web_template  # noqa: F401
from test_workflow_setup import CLASSES, check_counts, member_set, n_events, wf  # noqa: F401


def _approved(wf, cls=0, n=15):
    return wf.make_node(wf.by_class[CLASSES[cls]][:n], status="approved", name=CLASSES[cls],
                        member_status="validated")


def test_candidates_exclude_labelled_and_rejected_and_are_ranked(wf):
    p = wf.project
    nid = _approved(wf)
    other = wf.make_node(wf.by_class[CLASSES[1]][:10], status="approved", name="o",
                         member_status="validated")
    cand = wf.make_node(wf.by_class[CLASSES[2]][:10])  # candidate members stay offerable
    page = grow.candidates(p, nid, 0, 200)
    got = set(page.pks)
    assert not got & member_set(p, nid) and not got & member_set(p, other)
    assert member_set(p, cand) <= got
    assert page.total == 120 - 25 == len(page.pks)
    assert page.distances == sorted(page.distances)
    # the same ranking, paged
    assert grow.candidates(p, nid, 10, 10).pks == page.pks[10:20]
    grow.reject(p, wf.A, nid, page.pks[:3])
    again = grow.candidates(p, nid, 0, 200)
    assert again.pks == page.pks[3:] and again.total == page.total - 3


def test_ranking_puts_the_nodes_class_first(wf):
    p = wf.project
    nid = _approved(wf, cls=2, n=20)
    top = grow.candidates(p, nid, 0, 10).pks
    same = set(wf.by_class[CLASSES[2]])
    assert sum(pk in same for pk in top) >= 7


def test_accept_marks_shown_validated_and_unshown_predicted(wf):
    p = wf.project
    nid = _approved(wf)
    page = grow.candidates(p, nid, 0, 10)
    v = page.members_version
    grow.accept(p, wf.A, nid, page.pks, shown_pks=page.pks[:4], members_version=v)
    with p.session() as s:
        st = dict(s.execute(select(Membership.object_pk, Membership.status)
                            .where(Membership.object_pk.in_(page.pks))).all())
    assert [st[pk] for pk in page.pks] == ["validated"] * 4 + ["predicted"] * 6
    with pytest.raises(WorkflowError, match="changed since"):
        grow.accept(p, wf.A, nid, [], members_version=v)
    check_counts(p)
    undo.undo_last(p, wf.A)
    assert member_set(p, nid) == set(wf.by_class[CLASSES[0]][:15])
    check_counts(p)


def test_accept_refuses_objects_of_another_approved_node(wf):
    p = wf.project
    nid = _approved(wf)
    other = wf.make_node(wf.by_class[CLASSES[1]][:5], status="approved", member_status="validated")
    with pytest.raises(WorkflowError, match="another approved node"):
        grow.accept(p, wf.A, nid, list(member_set(p, other)))
    with pytest.raises(WorkflowError, match="is candidate"):
        grow.accept(p, wf.A, wf.make_node(wf.by_class[CLASSES[2]][:3]), [])


def test_accept_until_first_wrong_and_undo(wf):
    p = wf.project
    nid = _approved(wf)
    page = grow.candidates(p, nid, 0, 50)
    before = n_events(p)
    n = grow.accept_until(p, wf.A, nid, 7, shown_pks=page.pks[:8], wrong_pk=page.pks[7],
                          members_version=page.members_version)
    assert n == 7 and n_events(p) == before + 1
    assert set(page.pks[:7]) <= member_set(p, nid) and page.pks[7] not in member_set(p, nid)
    with p.session() as s:
        assert s.scalars(select(Rejection.object_pk).where(Rejection.node_id == nid)).all() == [page.pks[7]]
    assert page.pks[7] not in grow.candidates(p, nid, 0, 200).pks
    with pytest.raises(WorkflowError, match="ranking"):
        now = grow.candidates(p, nid, 0, 1)
        grow.accept_until(p, wf.A, nid, 0, shown_pks=now.pks, wrong_pk=-5,
                          members_version=now.members_version)
    undo.undo_last(p, wf.A)
    assert member_set(p, nid) == set(wf.by_class[CLASSES[0]][:15])
    with p.session() as s:
        assert s.scalars(select(Rejection)).all() == []
    check_counts(p)


def test_reject_and_undo(wf):
    p = wf.project
    nid = _approved(wf)
    with pytest.raises(WorkflowError, match="remove them"):
        grow.reject(p, wf.A, nid, list(member_set(p, nid))[:1])
    pks = grow.candidates(p, nid, 0, 5).pks
    grow.reject(p, wf.A, nid, pks)
    assert not set(pks) & set(grow.candidates(p, nid, 0, 200).pks)
    undo.undo_last(p, wf.A)
    assert set(pks) <= set(grow.candidates(p, nid, 0, 200).pks)


def test_reject_candidates_straight_to_their_labels(wf):
    p = wf.project
    nid = _approved(wf)
    other = _approved(wf, cls=1, n=5)
    pks = grow.candidates(p, nid, 0, 4).pks
    n = grow.reject(p, wf.A, nid, pks[:1], moved={pks[1]: CLASSES[1], pks[2]: "radiolaria"})
    assert n == 3 and pks[1] in member_set(p, other)
    assert not set(pks[:3]) & set(grow.candidates(p, nid, 0, 200).pks)
    with p.session() as s:
        new = s.scalars(select(Node).where(Node.name == "radiolaria")).one()
        assert set(s.scalars(select(Membership.object_pk).where(Membership.node_id == new.id))) == {pks[2]}
        assert set(s.scalars(select(Rejection.object_pk).where(Rejection.node_id == nid))) == set(pks[:3])
    with pytest.raises(WorkflowError, match="already belong to an approved node"):
        grow.reject(p, wf.A, nid, [], moved={pks[1]: "radiolaria"})
    check_counts(p)
    undo.undo_last(p, wf.A)
    assert set(pks) <= set(grow.candidates(p, nid, 0, 200).pks)
    assert member_set(p, other) == set(wf.by_class[CLASSES[1]][:5])
    check_counts(p)


def test_accept_a_screen_with_some_given_their_labels_is_one_event(wf):
    p = wf.project
    nid = _approved(wf)
    other = _approved(wf, cls=1, n=5)
    page = grow.candidates(p, nid, 0, 6)
    pks, before = page.pks, n_events(p)
    n = grow.accept(p, wf.A, nid, pks, pks, members_version=page.members_version,
                    moved={pks[0]: CLASSES[1], pks[1]: "radiolaria"})
    assert n == 4 and n_events(p) == before + 1
    assert set(pks[2:]) <= member_set(p, nid) and not set(pks[:2]) & member_set(p, nid)
    assert pks[0] in member_set(p, other)
    assert not set(pks[:2]) & set(grow.candidates(p, nid, 0, 200).pks)  # rejected for the node
    with pytest.raises(WorkflowError, match="are members of node"):
        grow.accept(p, wf.A, nid, [], moved={pks[2]: "radiolaria"})
    check_counts(p)
    undo.undo_last(p, wf.A)
    assert not set(pks) & member_set(p, nid) and member_set(p, other) == set(wf.by_class[CLASSES[1]][:5])
    with p.session() as s:
        assert s.scalars(select(Node).where(Node.name == "radiolaria")).first() is None
    assert set(pks) <= set(grow.candidates(p, nid, 0, 200).pks)
    check_counts(p)
    # a candidate given this node's own label belongs here: accepted, whichever button
    grow.reject(p, wf.A, nid, [], moved={pks[0]: CLASSES[0]})
    grow.accept(p, wf.A, nid, [], moved={pks[1]: CLASSES[0].upper()})
    assert {pks[0], pks[1]} <= member_set(p, nid)
    check_counts(p)


def _search(p, nid, judge, page_size=10):
    gs = grow_search.GrowSearch(p, nid, page_size=page_size)
    probes = []
    while (page := gs.next_page()) is not None:
        probes.append(page.offset // page_size)
        gs.judge(judge(page))
    return gs, probes


def test_grow_search_exponential_then_bisection(wf):
    p = wf.project
    nid = _approved(wf)
    ranking = grow.candidates(p, nid, 0, 1000).pks
    assert len(ranking) == 105  # 11 pages of 10
    # pages 0..4 are good, the rest bad (judged by position, a stand-in for a person)
    gs, probes = _search(p, nid, lambda page: page.offset < 50)
    assert probes == [0, 1, 3, 7, 5, 4]
    assert gs.done and gs.boundary() == 50
    before = n_events(p)
    assert gs.commit(wf.A) == 50
    assert n_events(p) == before + 1
    with p.session() as s:
        st = dict(s.execute(select(Membership.object_pk, Membership.status)
                            .where(Membership.object_pk.in_(ranking[:50]))).all())
    shown = {pk for i in (0, 1, 3, 4) for pk in ranking[i * 10:(i + 1) * 10]}
    assert all(st[pk] == ("validated" if pk in shown else "predicted") for pk in ranking[:50])
    assert member_set(p, nid).isdisjoint(ranking[50:])


def test_grow_search_drops_a_verdict_on_another_page(wf):
    p = wf.project
    gs = grow_search.GrowSearch(p, _approved(wf), page_size=10)
    gs.next_page()
    assert gs.judge(True, probe=0) and gs.probe == 1
    page = gs.next_page()
    assert gs.judge(False, probe=0) is False  # the same click again: about page 0, not page 1
    assert gs.probe == 1 and gs.lo == 1 and gs.hi is None and gs.current is page


def test_grow_search_all_good_and_first_bad(wf):
    p = wf.project
    nid = _approved(wf)
    gs, probes = _search(p, nid, lambda page: True)
    assert probes == [0, 1, 3, 7, 10] and gs.boundary() >= 105
    gs, probes = _search(p, nid, lambda page: False)
    assert probes == [0] and gs.boundary() == 0 and gs.commit(wf.A) == 0


def test_ranking_uses_all_prototypes(wf):
    """Every allowed object is ranked once, by its smallest distance to the node's prototypes."""
    p = wf.project
    nid = _approved(wf, n=20)
    page = grow.candidates(p, nid, 0, 500)
    assert len(set(page.pks)) == len(page.pks) == 100
    fm = load_matrix(p)
    from morphocluster.workflow._stats import node_stats

    protos = node_stats(p, nid).prototypes
    X = fm.X[fm.rows_of(page.pks)]
    d = ((X[:, None, :] - protos[None]) ** 2).sum(-1).min(1)
    assert np.allclose(d, page.distances, atol=1e-4)


def test_grow_search_saved_and_reloaded_gives_the_same_next_page(wf):
    p = wf.project
    nid = _approved(wf)
    judge = lambda page: page.offset < 50  # noqa: E731
    gs = grow_search.load_search(p, wf.A, nid, page_size=10)
    for _ in range(3):  # pages 0, 1, 3 judged OK; page 7 on screen
        gs.judge(judge(gs.next_page()))
    on_screen = gs.next_page()
    grow_search.save_search(p, wf.A, gs)
    again = grow_search.load_search(p, wf.A, nid, page_size=10)  # as a restarted server would
    assert again is not gs and again.current.pks == on_screen.pks
    assert again.to_state() == gs.to_state()
    assert grow_search.load_search(p, wf.B, nid, page_size=10).current is None  # per user
    assert grow_search.load_search(p, wf.A, nid, page_size=20).current is None  # another page size
    probes = []
    while (page := again.next_page()) is not None:
        probes.append(page.offset // 10)
        again.judge(judge(page))
    assert probes == [7, 5, 4] and again.boundary() == 50
    # the same as a search never interrupted
    _, uninterrupted = _search(p, nid, judge)
    assert uninterrupted == [0, 1, 3] + probes
    assert again.commit(wf.A) == 50
    grow_search.drop_search(p, wf.A, nid)
    assert grow_search.load_search(p, wf.A, nid, page_size=10).current is None


def test_saved_grow_search_of_a_changed_node_starts_afresh(wf):
    p = wf.project
    nid = _approved(wf)
    gs = grow_search.load_search(p, wf.A, nid, page_size=10)
    gs.next_page()
    gs.judge(True)
    gs.next_page()
    grow_search.save_search(p, wf.A, gs)
    state = gs.to_state()
    assert grow_search.load_search(p, wf.A, nid, 10).shown.keys() == {0}
    page = grow.candidates(p, nid, 0, 2)
    grow.accept(p, wf.A, nid, page.pks, members_version=page.members_version)  # direct mode
    fresh = grow_search.load_search(p, wf.A, nid, page_size=10)
    assert fresh.current is None and fresh.shown == {} and fresh.lo == 0
    with pytest.raises(WorkflowError, match="changed since"):
        grow_search.GrowSearch.from_state(p, nid, state)
    # a ranking built on other features is another search too
    grow_search.save_search(p, wf.A, fresh)
    fresh.next_page()
    state = fresh.to_state()
    p.config["grow"] = {"n_prototypes": 3}
    with pytest.raises(WorkflowError, match="changed since"):
        grow_search.GrowSearch.from_state(p, nid, state)


def test_saved_searches_of_dissolved_or_deleted_nodes_are_dropped(wf):
    from morphocluster.store import Meta, Node, NodeCache
    from morphocluster.workflow import validate

    p = wf.project
    a, b, c = _approved(wf, 0), _approved(wf, 1), _approved(wf, 2)
    for nid in (a, b, c):
        gs = grow_search.load_search(p, wf.A, nid, page_size=10)
        gs.next_page()
        grow_search.save_search(p, wf.A, gs)

    def saved():
        with p.session() as s:
            return set(s.scalars(select(Meta.key).where(Meta.key.like("grow_search:%"))))

    assert saved() == {f"grow_search:{wf.A}:{n}" for n in (a, b, c)}
    validate.dissolve(p, wf.A, b)
    with p.transaction() as s:  # a node removed outright (as an undone cluster round does)
        s.execute(Membership.__table__.delete().where(Membership.node_id == c))
        s.execute(NodeCache.__table__.delete().where(NodeCache.node_id == c))
        s.delete(s.get(Node, c))
    grow_search.save_search(p, wf.B, grow_search.load_search(p, wf.B, a, page_size=10))
    assert saved() == {f"grow_search:{wf.A}:{a}", f"grow_search:{wf.B}:{a}"}
    assert grow_search.load_search(p, wf.A, a, page_size=10).current is not None  # the live one stays


def test_web_page_search_continues_after_a_restart(web_project, shared_data):
    """Two app instances on the same project folder, one after the other, as across a restart."""
    import re

    from morphocluster.project import Project
    from morphocluster.web import create_app
    from test_web_fixtures import login
    from test_web_workflow import approve, hx, members, pks_in

    p, info = web_project
    node_id = info["nodes"]["hydromedusae_solmaris"]

    def start(project):
        app = create_app({"PROJECT": project, "TESTING": True, "GROW_PAGE_SIZE": 4})
        c = app.test_client()
        return c, login(c, "ann")

    c, token = start(p)
    approve(c, token, node_id)
    html = c.get(f"/grow/{node_id}/search").get_data(as_text=True)
    first = pks_in(html)
    html = c.post(f"/grow/{node_id}/search/judge", headers=hx(token), data={"ok": "1"}).get_data(as_text=True)
    second = pks_in(html)
    assert len(first) == len(second) == 4 and "Page 2" in html

    grow.clear_cache()  # a new process: nothing of the old one is left but the database
    p2 = Project.open(p.root)
    try:
        c, token = start(p2)
        html = c.get(f"/grow/{node_id}/search").get_data(as_text=True)
        assert pks_in(html) == second and "Page 2" in html and "boundary between 4 and" in html
        for _ in range(20):
            html = c.post(f"/grow/{node_id}/search/judge", headers=hx(token),
                          data={"ok": "0"}).get_data(as_text=True)
            if "above the boundary" in html:
                break
        assert "Accept the 4 objects above the boundary" in html
        before = members(p2, node_id)
        resp = c.post(f"/grow/{node_id}/search/commit", headers=hx(token))
        assert "Accepted 4 objects" in resp.get_data(as_text=True)
        assert members(p2, node_id) == before | set(first)
        # the search is done: the next one starts at the top of the new ranking
        html = c.get(f"/grow/{node_id}/search").get_data(as_text=True)
        assert re.search(r"Page 1\b", html) and not set(pks_in(html)) & set(first)
    finally:
        p2.close()
