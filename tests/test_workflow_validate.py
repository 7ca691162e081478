import threading

import pytest
from sqlalchemy import select

from morphocluster.store import Event, Membership, Node, Rejection, utcnow
from morphocluster.workflow import WorkflowError, undo, validate
from test_workflow_setup import CLASSES, check_counts, member_set, n_events, node_row, wf  # noqa: F401


def _statuses(project, node_id):
    with project.session() as s:
        return dict(s.execute(select(Membership.object_pk, Membership.status)
                              .where(Membership.node_id == node_id)).all())


def test_next_node_largest_first_and_claims_are_exclusive(wf):
    p = wf.project
    small = wf.make_node(wf.by_class[CLASSES[0]][:10])
    big = wf.make_node(wf.by_class[CLASSES[1]][:30])
    assert validate.next_node(p, wf.A) == big
    assert validate.next_node(p, wf.A) == big  # own claim comes back
    assert validate.next_node(p, wf.B) == small
    assert validate.next_node(p, wf.B) == small  # still hers
    with pytest.raises(WorkflowError, match="claimed by ann until"):  # the name, not the id
        validate.approve(p, wf.B, big)
    # an expired claim is free again
    with p.transaction() as s:
        s.get(Node, big).claimed_until = utcnow().replace(year=2000)
    validate.release(p, wf.B, small)
    with p.transaction() as s:
        s.get(Node, small).status = "approved"
    assert validate.next_node(p, wf.B) == big


def test_two_annotators_claim_concurrently(wf):
    p = wf.project
    nodes = {wf.make_node(wf.by_class[c][:20]) for c in CLASSES}
    got, barrier = {}, threading.Barrier(2)

    def grab(user):
        barrier.wait()
        got[user] = [validate.next_node(p, user, claim_minutes=5)]

    threads = [threading.Thread(target=grab, args=(u,)) for u in (wf.A, wf.B)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    a, b = got[wf.A][0], got[wf.B][0]
    assert a in nodes and b in nodes and a != b
    with p.session() as s:
        assert s.get(Node, a).claimed_by == wf.A and s.get(Node, b).claimed_by == wf.B


def test_members_are_paged_most_typical_first(wf):
    pks = wf.by_class[CLASSES[0]][:25] + wf.by_class[CLASSES[2]][:3]
    nid = wf.make_node(pks)
    first = validate.members(wf.project, nid, 0, 10)
    rest = validate.members(wf.project, nid, 10, 50)
    assert first.total == 28 and len(first.pks) == 10 and len(rest.pks) == 18
    assert set(first.pks + rest.pks) == set(pks)
    # the order is the node statistics' typicality order
    from morphocluster.workflow._stats import node_stats

    assert first.pks + rest.pks == [int(x) for x in node_stats(wf.project, nid).order]


def test_approve_names_marks_seen_and_undo(wf):
    p = wf.project
    pks = wf.by_class[CLASSES[0]][:20]
    nid = wf.make_node(pks)
    v0 = node_row(p, nid).members_version
    ev0 = n_events(p)
    validate.approve(p, wf.A, nid, name="sagitta", seen_pks=pks[:5])
    node = node_row(p, nid)
    assert (node.status, node.name, node.approved_by) == ("approved", "sagitta", wf.A)
    assert node.members_version > v0 and n_events(p) == ev0 + 1
    st = _statuses(p, nid)
    assert sum(v == "validated" for v in st.values()) == 5 and sum(v == "predicted" for v in st.values()) == 15
    with pytest.raises(WorkflowError, match="is validated \\(now\\), not candidate"):
        validate.approve(p, wf.A, nid)
    undo.undo_last(p, wf.A)
    node = node_row(p, nid)
    assert (node.status, node.name, node.approved_by) == ("candidate", None, None)
    assert set(_statuses(p, nid).values()) == {"cluster"}
    check_counts(p)


def test_remove_and_remove_from_with_undo(wf):
    p = wf.project
    pks = wf.by_class[CLASSES[1]][:20]
    nid = wf.make_node(pks)
    with pytest.raises(WorkflowError, match="not members"):
        validate.remove(p, wf.A, nid, [wf.by_class[CLASSES[0]][0]])
    validate.remove(p, wf.A, nid, pks[:2])
    assert member_set(p, nid) == set(pks[2:]) and node_row(p, nid).n_members == 18
    with p.session() as s:
        assert set(s.scalars(select(Rejection.object_pk).where(Rejection.node_id == nid))) == set(pks[:2])
    page = validate.members(p, nid, 0, 50)
    n = validate.remove_from(p, wf.A, nid, 12, members_version=page.members_version)
    assert n == 6 and member_set(p, nid) == set(page.pks[:12])
    with p.session() as s:  # only the one judged wrong is rejected; the rest were not looked at
        assert set(s.scalars(select(Rejection.object_pk).where(Rejection.node_id == nid))) == set(
            pks[:2]) | {page.pks[12]}
    with pytest.raises(WorkflowError, match="changed since"):
        validate.remove_from(p, wf.A, nid, 3, members_version=page.members_version)
    check_counts(p)
    undo.undo_last(p, wf.A)
    assert member_set(p, nid) == set(pks[2:])
    undo.undo_last(p, wf.A)
    assert member_set(p, nid) == set(pks)
    with p.session() as s:
        assert s.scalars(select(Rejection)).all() == []
    check_counts(p)


def test_remove_members_straight_to_their_labels(wf):
    """A member that is something else goes to that label (by node or by name) in one event."""
    p = wf.project
    pks = wf.by_class[CLASSES[1]][:20]
    other = wf.make_node(wf.by_class[CLASSES[0]][:5], status="approved", name=CLASSES[0],
                         member_status="validated")
    nid = wf.make_node(pks)
    before = n_events(p)
    n = validate.remove(p, wf.A, nid, [pks[0]], moved={pks[1]: CLASSES[0], pks[2]: "radiolaria", pks[3]: other})
    assert n == 4 and n_events(p) == before + 1
    assert member_set(p, nid) == set(pks[4:]) and pks[1] in member_set(p, other) and pks[3] in member_set(p, other)
    with p.session() as s:
        new = s.scalars(select(Node).where(Node.name == "radiolaria")).one()
        assert new.status == "approved"
        assert set(s.scalars(select(Membership.object_pk).where(Membership.node_id == new.id))) == {pks[2]}
        assert set(s.scalars(select(Rejection.object_pk).where(Rejection.node_id == nid))) == set(pks[:4])
        st = dict(s.execute(select(Membership.object_pk, Membership.status)
                            .where(Membership.object_pk.in_(pks[1:4]))).all())
    assert set(st.values()) == {"validated"}
    check_counts(p)
    # a member given its own node's label stays where it is
    assert validate.remove(p, wf.A, nid, [], moved={pks[5]: nid}) == 0 and pks[5] in member_set(p, nid)
    undo.undo_last(p, wf.A)
    with pytest.raises(WorkflowError, match="not members"):
        validate.remove(p, wf.A, nid, [], moved={wf.by_class[CLASSES[2]][0]: "radiolaria"})
    undo.undo_last(p, wf.A)
    assert member_set(p, nid) == set(pks) and member_set(p, other) == set(wf.by_class[CLASSES[0]][:5])
    with p.session() as s:
        assert s.scalars(select(Node).where(Node.name == "radiolaria", Node.status == "approved")).all() == []
    check_counts(p)
    # approving takes them along in its one event; one undo puts all back
    before = n_events(p)
    validate.approve(p, wf.A, nid, name=CLASSES[1], moved={pks[0]: "radiolaria"})
    assert n_events(p) == before + 1 and node_row(p, nid).status == "approved"
    assert member_set(p, nid) == set(pks[1:]) and member_set(p, _named(p, "radiolaria")) == {pks[0]}
    undo.undo_last(p, wf.A)
    assert node_row(p, nid).status == "candidate" and member_set(p, nid) == set(pks)
    check_counts(p)


def _named(p, name):
    with p.session() as s:
        return s.scalars(select(Node.id).where(Node.name == name, Node.status == "approved")).one()


def test_dissolve_and_undo(wf):
    p = wf.project
    pks = wf.by_class[CLASSES[2]][:15]
    nid = wf.make_node(pks)
    assert validate.dissolve(p, wf.A, nid) == 15
    assert node_row(p, nid).status == "dissolved" and member_set(p, nid) == set()
    assert validate.next_node(p, wf.A) is None
    undo.undo_last(p, wf.A)
    assert node_row(p, nid).status == "candidate" and member_set(p, nid) == set(pks)
    assert set(_statuses(p, nid).values()) == {"cluster"}
    check_counts(p)


def test_split_by_substructure_and_undo(wf):
    p = wf.project
    a, b = wf.by_class[CLASSES[0]][:20], wf.by_class[CLASSES[2]][:12]
    nid = wf.make_node(a + b)
    new = validate.split(p, wf.A, nid)
    keep, other = member_set(p, nid), member_set(p, new)
    assert keep | other == set(a + b) and not keep & other and len(keep) >= len(other) > 0
    assert node_row(p, new).status == "candidate"
    check_counts(p)
    undo.undo_last(p, wf.A)
    assert member_set(p, nid) == set(a + b) and node_row(p, new) is None
    check_counts(p)


def test_undo_of_a_split_is_refused_once_someone_approved_the_new_node(wf):
    """Undoing it would leave the other user's validated objects in a node that is gone."""
    p = wf.project
    nid = wf.make_node(wf.by_class[CLASSES[0]][:20] + wf.by_class[CLASSES[2]][:12])
    new = validate.split(p, wf.B, nid)
    validate.approve(p, wf.A, new, name="epsilon")
    before, events = (member_set(p, nid), member_set(p, new)), n_events(p)
    with pytest.raises(WorkflowError, match=f"cannot undo this split: node {new}, which it made, has been worked on since"):
        undo.undo_last(p, wf.B)
    assert (member_set(p, nid), member_set(p, new)) == before and n_events(p) == events
    assert node_row(p, new).status == "approved"
    check_counts(p)
    undo.undo_last(p, wf.A)  # once the approve is undone, the split can be too
    undo.undo_last(p, wf.B)
    assert node_row(p, new) is None and len(member_set(p, nid)) == 32


def test_undo_of_an_approve_is_refused_once_someone_grew_the_node(wf):
    from morphocluster.workflow import grow

    p = wf.project
    nid = wf.make_node(wf.by_class[CLASSES[0]][:10])
    validate.approve(p, wf.A, nid, name="alpha")
    extra = wf.by_class[CLASSES[0]][10:14]
    grow.accept(p, wf.B, nid, extra, shown_pks=extra)
    with pytest.raises(WorkflowError, match=f"cannot undo this approve: node {nid} has 4 objects added since"):
        undo.undo_last(p, wf.A)
    assert node_row(p, nid).status == "approved" and set(extra) <= member_set(p, nid)
    undo.undo_last(p, wf.B)  # the growth undone, the approve can be
    undo.undo_last(p, wf.A)
    assert node_row(p, nid).status == "candidate"
    check_counts(p)


def test_undo_of_a_split_is_refused_once_someone_removed_from_the_new_node(wf):
    p = wf.project
    nid = wf.make_node(wf.by_class[CLASSES[0]][:20] + wf.by_class[CLASSES[2]][:12])
    new = validate.split(p, wf.B, nid)
    validate.remove(p, wf.A, new, sorted(member_set(p, new))[:1])
    with pytest.raises(WorkflowError, match=f"node {new}, which it made, has been worked on since"):
        undo.undo_last(p, wf.B)
    assert node_row(p, new) is not None
    check_counts(p)


def test_merge_into_a_node_that_only_groups_others_is_refused(wf):
    from morphocluster.workflow import organise

    p = wf.project
    a = wf.make_node(wf.by_class[CLASSES[0]][:5], status="approved", name="a", member_status="validated")
    top = organise.umbrella(p, wf.A, [a], "group")
    other = wf.make_node(wf.by_class[CLASSES[1]][:5], status="approved", name="b", member_status="validated")
    with pytest.raises(WorkflowError, match="groups other nodes and holds no objects of its own"):
        validate.merge(p, wf.A, other, top)
    validate.merge(p, wf.A, other, a)  # into one of its classes: fine
    assert len(member_set(p, a)) == 10


def test_dissolve_split_and_merge_from_a_screen_shown_before_an_approve_are_refused(wf):
    """Two annotators had the candidate open; one approved it: the other's screen is stale."""
    p = wf.project
    nid = wf.make_node(wf.by_class[CLASSES[0]][:20] + wf.by_class[CLASSES[2]][:12])
    other = wf.make_node(wf.by_class[CLASSES[1]][:10])
    shown = node_row(p, nid).members_version
    validate.approve(p, wf.A, nid, name="gamma")
    for act in (lambda: validate.dissolve(p, wf.B, nid, members_version=shown),
                lambda: validate.split(p, wf.B, nid, members_version=shown),
                lambda: validate.merge(p, wf.B, nid, other, members_version=shown)):
        with pytest.raises(WorkflowError, match="changed since it was shown"):
            act()
    assert node_row(p, nid).status == "approved" and len(member_set(p, nid)) == 32
    validate.dissolve(p, wf.B, nid, members_version=node_row(p, nid).members_version)  # seen now
    assert node_row(p, nid).status == "dissolved"


def test_merge_moves_members_and_children_and_undo(wf):
    p = wf.project
    x = wf.make_node(wf.by_class[CLASSES[0]][:10], status="approved", name="x", member_status="validated")
    y = wf.make_node(wf.by_class[CLASSES[0]][10:20])
    child = wf.make_node(wf.by_class[CLASSES[1]][:3], status="approved", parent_id=y)
    with pytest.raises(WorkflowError, match="itself"):
        validate.merge(p, wf.A, x, x)
    validate.merge(p, wf.A, y, x)
    assert member_set(p, x) == set(wf.by_class[CLASSES[0]][:20])
    assert node_row(p, y).status == "dissolved" and node_row(p, child).parent_id == x
    with pytest.raises(WorkflowError, match=f"node {y} was merged into node {x}"):
        validate.approve(p, wf.A, y)  # a stale screen of it says where its objects went
    st = _statuses(p, x)
    assert {st[pk] for pk in wf.by_class[CLASSES[0]][:10]} == {"validated"}
    assert {st[pk] for pk in wf.by_class[CLASSES[0]][10:20]} == {"predicted"}
    check_counts(p)
    undo.undo_last(p, wf.A)
    assert member_set(p, y) == set(wf.by_class[CLASSES[0]][10:20])
    assert node_row(p, y).status == "candidate" and node_row(p, child).parent_id == y
    assert "merged_into" not in (node_row(p, y).params or {})  # the undo takes the note back
    check_counts(p)


def test_each_decision_is_one_event_and_errors_write_nothing(wf):
    p = wf.project
    nid = wf.make_node(wf.by_class[CLASSES[0]][:10])
    before = n_events(p)
    with pytest.raises(WorkflowError, match="not found"):
        validate.approve(p, wf.A, 9999)
    with pytest.raises(WorkflowError):
        validate.remove_from(p, wf.A, nid, 50)
    assert n_events(p) == before
    validate.dissolve(p, wf.A, nid)
    with p.session() as s:
        ev = s.scalars(select(Event).order_by(Event.id.desc())).first()
    assert n_events(p) == before + 1 and ev.action == "dissolve" and ev.user_id == wf.A


def test_a_typed_label_takes_the_spelling_of_a_named_candidate(wf):
    p = wf.project
    named = wf.make_node(wf.by_class[CLASSES[2]][:5])
    with p.transaction() as s:
        s.get(Node, named).name = "Oithona"  # named, not approved yet
    nid = wf.make_node(wf.by_class[CLASSES[0]][:5] + wf.by_class[CLASSES[2]][5:6])
    odd = wf.by_class[CLASSES[2]][5]
    validate.remove(p, wf.A, nid, [], moved={odd: "oithona"})
    with p.session() as s:
        made = s.scalars(select(Node).join(Membership, Membership.node_id == Node.id)
                         .where(Membership.object_pk == odd)).one()
        assert (made.name, made.status) == ("Oithona", "approved")  # one class, one spelling
