"""The store and the importers on a real PostgreSQL server (set MORPHOCLUSTER_TEST_PG_URL)."""

from __future__ import annotations

import os
import uuid

import pytest
from sqlalchemy import create_engine, func, select, text

from morphocluster.importers import import_sources
from morphocluster.info import summarize
from morphocluster.project import Project
from morphocluster.store import ImportRun, Meta, Object

PG_URL = os.environ.get("MORPHOCLUSTER_TEST_PG_URL")
pytestmark = [pytest.mark.postgres,
              pytest.mark.skipif(not PG_URL, reason="MORPHOCLUSTER_TEST_PG_URL not set")]


@pytest.fixture
def pg_project(tmp_path):
    """A project whose tables live in a fresh PostgreSQL schema, dropped afterwards."""
    schema = f"mc_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_URL)
    with admin.begin() as c:
        c.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    project = Project.create(tmp_path / "proj", database_url=f"{PG_URL}{sep}options=-csearch_path%3D{schema}")
    try:
        yield project
    finally:
        project.close()
        with admin.begin() as c:
            c.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def test_postgres_import_real_images(pg_project, shared_data, copy_shared):
    p = pg_project
    assert p.engine.dialect.name == "postgresql"
    reopened = Project.open(p.root)  # the schema check works on PostgreSQL too
    reopened.close()
    classes = [copy_shared(f"planktonset-dev/{c}") for c in ("radiolarian_colony", "tunicate_salp")]
    root = classes[0].parent
    expected = sum(len(list(c.glob("*.jpg"))) for c in classes)
    r = import_sources(p, [root], format="class-folders", progress=False)
    assert (r.added, r.failed) == (expected, 0)
    r = import_sources(p, [shared_data / "ecotaxa-samples" / "import_various_states"], progress=False)
    assert (r.added, r.failed) == (9, 0)
    again = import_sources(p, [root], format="class-folders", progress=False)
    assert (again.added, again.skipped) == (0, expected)
    with p.session() as s:
        assert s.scalar(select(func.count()).select_from(Object)) == expected + 9
        assert s.scalar(select(func.count()).select_from(ImportRun)) == 3
        o = s.scalars(select(Object).where(Object.object_id == "m106_mn01_n1_sml_851")).one()
        assert (o.imported_label, o.imported_status) == ("Oncaeidae", "dubious")
        assert list(o.meta)[:2] == ["object_id", "object_lat"]  # column order survives JSON storage
        assert ["object_lat", "f"] in s.get(Meta, "ecotaxa_columns").value
    summary = summarize(p)
    assert summary["objects"] == expected + 9
    assert sum(summary["image_sizes_px"].values()) == expected + 9
    assert summary["imported_labels"]["radiolarian_colony"] == len(list(classes[0].glob("*.jpg")))


def test_postgres_failed_commit_leaves_nothing(pg_project, shared_data):
    p = pg_project
    src = shared_data / "ifcb-sample" / "training_data"
    with p.engine.begin() as c:  # a real check constraint makes the bulk insert fail
        c.execute(text("ALTER TABLE objects ADD CONSTRAINT no_ifcb CHECK (object_id NOT LIKE 'Meso%')"))
    from morphocluster.importers import ImportFailed

    with pytest.raises(ImportFailed, match="nothing was written"):
        import_sources(p, [src], format="class-folders", progress=False)
    with p.session() as s:
        assert s.scalar(select(func.count()).select_from(Object)) == 0
        assert s.scalar(select(func.count()).select_from(ImportRun)) == 0
    assert not [f for f in p.images_dir.rglob("*") if f.is_file()]


def test_postgres_node_ids_are_not_reused_but_a_reset_starts_again(pg_project):
    from morphocluster.simulate.reset import reset_annotations
    from morphocluster.store import Node

    p = pg_project
    with p.transaction() as s:
        a = Node(status="candidate")
        s.add(a)
        s.flush()
        first = a.id
        s.delete(a)
    with p.transaction() as s:
        b = Node(status="candidate")
        s.add(b)
        s.flush()
        assert b.id > first  # a sequence never gives an id twice
    reset_annotations(p)
    with p.transaction() as s:
        c = Node(status="candidate")
        s.add(c)
        s.flush()
        assert c.id == 1


def test_postgres_decisions_at_once_one_wins_the_other_is_refused(pg_project):
    """Two approves of one node, and two grow accepts of the same objects, at the same moment:
    one goes through, the other is refused whole (not a server error), nothing is filed twice."""
    from morphocluster.store import ConcurrentChange, Membership, Node
    from morphocluster.workflow import WorkflowError, grow, validate
    from test_concurrency import _at_once

    from morphocluster.users import add_user

    p = pg_project
    a, b = (add_user(p, name, "pw-long-enough-1")["id"] for name in ("ann", "bob"))
    with p.transaction() as s:
        s.add_all(Object(object_id=f"o{i}", path=f"x/{i}.png", width=10, height=10) for i in range(60))
    with p.session() as s:
        pks = list(s.scalars(select(Object.id).order_by(Object.id)))

    def node(members, status="candidate"):
        with p.transaction() as s:
            n = Node(status=status, name=None if status == "candidate" else f"n{members[0]}",
                     n_members=len(members), round=1)
            s.add(n)
            s.flush()
            s.execute(Membership.__table__.insert(), [
                {"object_pk": pk, "node_id": n.id, "status": "cluster" if status == "candidate" else "validated"}
                for pk in members])
            return n.id

    for i in range(3):
        nid = node(pks[5 * i:5 * i + 5])
        r = _at_once(lambda: validate.approve(p, a, nid, name="a"), lambda: validate.approve(p, b, nid, name="b"))
        assert [isinstance(v, (WorkflowError, ConcurrentChange)) for v in r].count(True) == 1, r
    x, y = node(pks[20:25], "approved"), node(pks[25:30], "approved")
    both = pks[30:60]
    for _ in range(3):
        r = _at_once(lambda: grow.accept(p, a, x, both, shown_pks=both),
                     lambda: grow.accept(p, b, y, both, shown_pks=both))
        assert [isinstance(v, (WorkflowError, ConcurrentChange)) for v in r].count(True) == 1, r
        with p.session() as s:
            assert s.scalar(select(func.count()).select_from(Membership)
                            .where(Membership.object_pk.in_(both))) == len(both)
            for n in (x, y):
                assert s.get(Node, n).n_members == s.scalar(
                    select(func.count()).select_from(Membership).where(Membership.node_id == n))
        with p.transaction() as s:  # give them back for the next try
            s.execute(Membership.__table__.delete().where(Membership.object_pk.in_(both)))
            for n in (x, y):
                s.get(Node, n).n_members = 5


def test_postgres_cluster_rounds_write_and_dissolve_in_bulk(pg_project, shared_data):
    """Memberships go in through COPY and stale candidates are dissolved in bulk, on PostgreSQL."""
    from clusterdata import build_project
    from morphocluster.cluster import cluster_round
    from morphocluster.store import Membership, Node, NodeCache

    p = pg_project
    build_project(p, shared_data, per_class=40)
    r1 = cluster_round(p, min_cluster_size=8, reduce="pca:16", map2d=False)
    with p.session() as s:
        rows = s.execute(select(Membership.node_id, Membership.status, Membership.added_at,
                                Membership.added_by)).all()
        cached = set(s.scalars(select(NodeCache.node_id)))
        sizes = dict(s.execute(select(Node.id, Node.n_members).where(Node.id.in_(r1.node_ids))).all())
    assert len(rows) == r1.n_clustered > 0 and {st for _, st, _, _ in rows} == {"cluster"}
    assert all(at is not None for _, _, at, _ in rows) and {by for *_, by in rows} == {None}
    assert {nid: sum(1 for n, *_ in rows if n == nid) for nid in r1.node_ids} == sizes
    assert cached >= set(r1.node_ids)  # statistics of every new node, from one read of the rows
    r2 = cluster_round(p, min_cluster_size=8, reduce="pca:16", map2d=False)
    assert r2.n_dissolved == len(r1.node_ids)
    with p.session() as s:
        old = dict(s.execute(select(Node.status, func.count()).where(Node.id.in_(r1.node_ids))
                             .group_by(Node.status)).all())
        left = s.scalar(select(func.count()).select_from(Membership)
                        .where(Membership.node_id.in_(r1.node_ids)))
        now = s.scalar(select(func.count()).select_from(Membership))
    assert old == {"dissolved": len(r1.node_ids)} and left == 0 and now == r2.n_clustered
