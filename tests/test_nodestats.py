"""Node statistics: centroid, prototypes, typicality order, cache invalidation."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import select

from clusterdata import build_project
from morphocluster.features.matrix import load_matrix
from morphocluster.nodestats import NodeStatsError, member_pks, node_stats, refresh_stats
from morphocluster.store import Membership, Node, NodeCache, Object


def _node(s, pks, parent=None, status="candidate"):
    n = Node(status=status, parent_id=parent, n_members=len(pks), members_version=1)
    s.add(n)
    s.flush()
    for pk in pks:
        s.add(Membership(object_pk=int(pk), node_id=n.id, status="cluster"))
    return n.id


@pytest.fixture
def built(project, shared_data):
    truth = build_project(project, shared_data, per_class=40)
    with project.session() as s:
        objs = s.execute(select(Object.id, Object.object_id)).all()
    by_class = {}
    for pk, oid in objs:
        by_class.setdefault(truth[oid], []).append(pk)
    return project, by_class


def test_stats_of_a_node(built):
    project, by_class = built
    tri, dol = by_class["trichodesmium_puff"], by_class["tunicate_doliolid"]
    members = tri[:30] + [dol[0]]  # one object of another class: an outlier
    with project.transaction() as s:
        nid = _node(s, members)
    st = node_stats(project, nid)
    fm = load_matrix(project)
    X = fm.X[fm.rows_of(members)]
    assert sorted(st.order.tolist()) == sorted(members)
    assert np.all(np.diff(st.distances) >= 0)
    np.testing.assert_allclose(st.centroid, X.mean(0), atol=1e-5)
    assert 1 <= len(st.prototypes) <= 3 and st.prototypes.shape[1] == X.shape[1]
    assert set(st.representatives) <= set(members) and 1 <= len(st.representatives) <= 9
    assert dol[0] in st.order[-3:].tolist()  # the outlier is among the least typical
    np.testing.assert_array_equal(member_pks(project, nid), np.sort(members))


def test_cache_follows_members_version(built):
    project, by_class = built
    tri = by_class["trichodesmium_puff"]
    with project.transaction() as s:
        nid = _node(s, tri[:20])
    first = node_stats(project, nid)
    with project.session() as s:
        assert s.get(NodeCache, nid).members_version == 1
    # unchanged members: served from the cache (same arrays back)
    np.testing.assert_array_equal(node_stats(project, nid).order, first.order)
    with project.transaction() as s:
        s.add(Membership(object_pk=tri[25], node_id=nid, status="validated"))
        s.get(Node, nid).members_version += 1
    second = node_stats(project, nid)
    assert tri[25] in second.order.tolist() and len(second.order) == 21
    with project.session() as s:
        assert s.get(NodeCache, nid).members_version == 2


def test_umbrella_covers_subtree(built):
    project, by_class = built
    a, b = by_class["trichodesmium_puff"][:15], by_class["diatom_chain_string"][:15]
    with project.transaction() as s:
        top = _node(s, [], status="approved")
        ca = _node(s, a, parent=top)
        _node(s, b, parent=top)
    st = node_stats(project, top)
    assert sorted(st.order.tolist()) == sorted(a + b)
    # a change in one child invalidates the umbrella
    with project.transaction() as s:
        s.execute(Membership.__table__.delete().where(Membership.object_pk == a[0]))
        s.get(Node, ca).members_version += 1
    assert a[0] not in node_stats(project, top).order.tolist()


def test_refresh_and_errors(built):
    project, by_class = built
    with project.transaction() as s:
        ids = [_node(s, by_class[c][:10]) for c in by_class]
        empty = _node(s, [])
    assert refresh_stats(project) == len(ids) + 1
    assert refresh_stats(project) == 0  # nothing stale
    assert node_stats(project, empty).order.shape == (0,)
    with pytest.raises(NodeStatsError, match="no node 9999"):
        node_stats(project, 9999)
