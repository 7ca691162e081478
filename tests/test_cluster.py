"""Clustering rounds on real (pixel) features of real plankton images, written to a real store."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from clusterdata import CLASSES, build_project
from morphocluster.cli import main
from morphocluster.cluster import ClusterParamError, SeedClusterer, cluster_round
from morphocluster.features.matrix import load_matrix
from morphocluster.map2d import compute_map, map_2d
from morphocluster.store import Event, Membership, Node, Object


@pytest.fixture
def built(project, shared_data):
    truth = build_project(project, shared_data, per_class=60)
    return project, truth


def _members(project):
    with project.session() as s:
        return dict(s.execute(select(Membership.object_pk, Membership.node_id)).all())


def test_round_writes_candidate_nodes(built):
    project, truth = built
    from morphocluster.store import User

    with project.transaction() as s:
        s.add(User(id=7, username="boss", password_hash="!", role="admin"))
    r = cluster_round(project, min_cluster_size=8, reduce="pca:16", user_id=7, map2d=False)
    assert r.round == 1 and len(r.node_ids) >= 3 and 0 < r.n_clustered < r.n_pool == 240
    with project.session() as s:  # proposals: who started the round labelled nothing (the approver will)
        assert set(s.scalars(select(Membership.added_by))) == {None}
    with project.session() as s:
        nodes = s.execute(select(Node).where(Node.id.in_(r.node_ids))).scalars().all()
        rows = s.execute(select(Object.object_id, Membership.node_id, Membership.status)
                         .join(Membership, Membership.object_pk == Object.id)).all()
        ev = s.execute(select(Event).where(Event.action == "cluster_round")).scalar_one()
    assert {n.status for n in nodes} == {"candidate"} and {n.round for n in nodes} == {1}
    assert nodes[0].params["min_cluster_size"] == 8 and "cluster" in nodes[0].params["timings"]
    assert sum(n.n_members for n in nodes) == len(rows) == r.n_clustered
    assert {st for _, _, st in rows} == {"cluster"}
    # seed clusters of real images should be mostly of one class
    by_node = {}
    for oid, nid, _ in rows:
        by_node.setdefault(nid, []).append(truth[oid])
    majority = sum(max(v.count(c) for c in set(v)) for v in by_node.values())
    assert majority / len(rows) >= 0.8
    assert ev.payload["round"] == 1 and ev.payload["n_nodes"] == len(r.node_ids)
    # the 2-D map covers every object and colours by node; without a stored one (the round ran
    # with map2d=False, as UMAP compiles for 30 s) map_2d stores a quick PCA map
    m = map_2d(project)
    assert (project.cache_dir / "map2d.npz").is_file()
    assert compute_map(project, method="pca") == "pca"
    assert m["xy"].shape == (240, 2) and np.isfinite(m["xy"]).all()
    member = _members(project)
    assert all(member.get(int(pk), -1) == nid for pk, nid in zip(m["pks"], m["node_ids"]))


def test_second_round_leaves_approved_and_claimed_alone(built):
    project, _ = built
    r1 = cluster_round(project, min_cluster_size=16, reduce="pca:16", map2d=False)
    assert len(r1.node_ids) >= 3
    approved, claimed = r1.node_ids[0], r1.node_ids[1]
    with project.transaction() as s:
        s.get(Node, approved).status = "approved"
        s.get(Node, claimed).claimed_by = None
        s.get(Node, claimed).status = "candidate"
        # a human validated one member of the second node: it is work in progress
        m = s.execute(select(Membership).where(Membership.node_id == claimed).limit(1)).scalar_one()
        m.status = "validated"
    before = _members(project)
    kept = {pk: nid for pk, nid in before.items() if nid in (approved, claimed)}
    r2 = cluster_round(project, min_samples=1, reduce="pca:16", map2d=False)
    assert r2.round == 2 and r2.params["min_cluster_size"] == 8  # auto: half of 16
    assert r2.n_dissolved == len(r1.node_ids) - 2
    after = _members(project)
    assert all(after[pk] == nid for pk, nid in kept.items())
    assert r2.n_pool == 240 - len(kept)
    with project.session() as s:
        statuses = dict(s.execute(select(Node.id, Node.status).where(Node.round == 1)).all())
        versions = dict(s.execute(select(Node.id, Node.members_version).where(Node.round == 1)).all())
    assert statuses[approved] == "approved" and statuses[claimed] == "candidate"
    assert all(statuses[i] == "dissolved" and versions[i] == 2 for i in r1.node_ids[2:])
    assert set(after.values()) <= {approved, claimed, *r2.node_ids}


def test_round_without_clusters_still_counts(built):
    project, _ = built
    r1 = cluster_round(project, min_cluster_size=500, reduce="pca:16", map2d=False)
    assert r1.round == 1 and r1.node_ids == [] and r1.n_clustered == 0
    r2 = cluster_round(project, reduce="pca:16", map2d=False)
    assert r2.round == 2 and r2.params["min_cluster_size"] == 250


def test_small_pool_is_reduced_to_what_it_allows(project, shared_data):
    build_project(project, shared_data, per_class=8, classes=CLASSES[:3])
    r = cluster_round(project, min_cluster_size=5, reduce="pca:64", map2d=False)  # 24 objects < 64
    assert r.n_pool == 24 and r.params["reduce"] == "pca:64"


def test_sample_assigns_the_rest(built):
    project, _ = built
    fm = load_matrix(project)
    est = SeedClusterer(min_cluster_size=8, min_samples=1, reduce="pca:16", sample=120).fit(fm.X)
    assert est.labels_.shape == (240,) and est.n_clusters_ >= 2
    assert est.assign_threshold_.shape == (est.n_clusters_,)
    # objects outside the sample join a cluster only where they are close to it
    rest = np.ones(240, bool)
    rest[est.sample_rows_] = False
    assert 0 < (est.labels_[rest] >= 0).sum() < rest.sum()
    r = cluster_round(project, min_cluster_size=8, reduce="pca:16", sample=120, map2d=False)
    assert r.params["sample"] == 120 and r.n_pool == 240 and len(r.node_ids) >= 2


def test_estimator_follows_sklearn_conventions(built):
    from sklearn.base import clone

    project, _ = built
    X = load_matrix(project).X
    est = SeedClusterer(min_cluster_size=10, min_samples=1, reduce="pca:8")
    assert not hasattr(est, "labels_") and clone(est).get_params()["reduce"] == "pca:8"
    labels = est.fit_predict(X)
    assert labels.shape == (len(X),) and labels.max() + 1 == est.n_clusters_
    assert est.reduced_.shape == (len(X), 8) and est.timings_["cluster"] > 0


@pytest.mark.parametrize("kwargs, message", [
    (dict(min_cluster_size=1), "min_cluster_size must be an integer >= 2"),
    (dict(min_samples=0), "min_samples must be an integer >= 1"),
    (dict(method="dbscan"), "method must be one of leaf, eom"),
    (dict(reduce="tsne:2"), "expected pca:N, umap:N"),
    (dict(reduce="pca:x"), "expected pca:N, umap:N"),
    (dict(sample=1), "sample must be an integer >= 2"),
])
def test_bad_parameters(built, kwargs, message):
    project, _ = built
    with pytest.raises(ClusterParamError, match=message):
        cluster_round(project, **kwargs)
    assert _members(project) == {}  # nothing written


def test_cli(built, tmp_path):
    project, _ = built
    res = CliRunner().invoke(main, ["cluster", str(project.root), "--min-cluster-size", "10",
                                    "--reduce", "pca:16", "--no-map"])
    assert res.exit_code == 0, res.output
    assert "round 1:" in res.output and "min_cluster_size=10" in res.output
    res = CliRunner().invoke(main, ["cluster", str(project.root), "--reduce", "umap"])
    assert res.exit_code != 0 and "expected pca:N, umap:N" in res.output
    res = CliRunner().invoke(main, ["cluster", str(tmp_path / "nowhere")])
    assert res.exit_code != 0 and "not a morphocluster project" in res.output


def test_automatic_size_follows_the_pool():
    from morphocluster.cluster import next_min_cluster_size

    assert next_min_cluster_size(None, 21466) == 64      # large set: the measured default
    assert next_min_cluster_size(None, 300) == 8          # small set: capped, then floored
    assert next_min_cluster_size(None, 1200) == 30
    assert next_min_cluster_size(64, 300) == 32           # later rounds halve the last size
    assert next_min_cluster_size(16, 100000) == 8         # down to the floor


def test_lazy_rows_and_ivf_assignment_agree_with_the_exact_one(built, monkeypatch):
    from morphocluster.cluster import estimator
    from morphocluster.cluster.estimator import RowSubset

    project, _ = built
    fm = load_matrix(project)
    rows = np.arange(len(fm.pks))
    params = dict(min_cluster_size=8, min_samples=1, reduce="pca:16", sample=120)
    exact = SeedClusterer(**params).fit(fm.X[:])
    lazy = SeedClusterer(**params).fit(RowSubset(fm.X.mm, rows))  # read a chunk at a time
    assert np.array_equal(exact.labels_, lazy.labels_)
    # many objects to assign: the clustered members are searched through IVF
    monkeypatch.setattr(estimator, "ASSIGN_EXACT_QUERIES", 10)
    monkeypatch.setattr(estimator, "ASSIGN_EXACT_MAX", 16)
    ivf = SeedClusterer(**params).fit(RowSubset(fm.X.mm, rows))
    rest = np.ones(len(rows), bool)
    rest[ivf.sample_rows_] = False
    assert np.array_equal(ivf.labels_[~rest], exact.labels_[~rest])
    assert (ivf.labels_[rest] == exact.labels_[rest]).mean() >= 0.9
