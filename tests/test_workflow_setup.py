"""Shared set-up of the workflow tests: a small project of real PlanktonSet images.

Features are computed here from the real images (downscaled grey pixels, L2-normalised) so the
workflow tests do not depend on the feature extractor.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from sqlalchemy import func, select

from morphocluster.features.h5 import feature_path, set_active, write_features
from morphocluster.store import Event, Membership, Node, Object, User

CLASSES = ("chaetognath_sagitta", "copepod_cyclopoid_oithona_eggs", "trichodesmium_puff")
PER_CLASS = 40


def _pixels(path) -> np.ndarray:
    img = Image.open(path).convert("L")
    side = max(img.size)
    sq = Image.new("L", (side, side), 255)
    sq.paste(img, ((side - img.width) // 2, (side - img.height) // 2))
    x = np.asarray(sq.resize((16, 16)), dtype=np.float32).ravel()
    x = x - x.mean()
    return x / (np.linalg.norm(x) or 1.0)


@pytest.fixture
def wf(project, shared_data):
    """Project with 3 real classes x 40 images, features, two users and a node factory."""
    base = shared_data / "planktonset-dev"
    rows, feats, by_class = [], [], {}
    for cls in CLASSES:
        files = sorted((base / cls).glob("*.jpg"))[:PER_CLASS]
        assert len(files) == PER_CLASS, cls
        for f in files:
            rows.append({"object_id": f"{cls}/{f.stem}", "path": f"{cls}/{f.name}",
                         "imported_label": cls})
            feats.append(_pixels(f))
    with project.transaction() as s:
        s.execute(Object.__table__.insert(), rows)
        s.add_all([User(id=1, username="ann", password_hash="x"),
                   User(id=2, username="bob", password_hash="x")])
    with project.session() as s:
        for pk, oid, lab in s.execute(select(Object.id, Object.object_id, Object.imported_label)):
            by_class.setdefault(lab, []).append(pk)
    write_features(feature_path(project, "pix16"), [r["object_id"] for r in rows], np.stack(feats))
    set_active(project, "pix16")

    def make_node(pks, status="candidate", name=None, parent_id=None, member_status="cluster"):
        with project.transaction() as s:
            node = Node(status=status, name=name, parent_id=parent_id, n_members=len(pks), round=1)
            s.add(node)
            s.flush()
            s.execute(Membership.__table__.insert(), [
                {"object_pk": int(p), "node_id": node.id, "status": member_status} for p in pks])
            return node.id

    return SimpleNamespace(project=project, by_class=by_class, make_node=make_node, A=1, B=2)


def node_row(project, node_id):
    with project.session() as s:
        return s.get(Node, node_id)


def member_set(project, node_id):
    with project.session() as s:
        return set(s.scalars(select(Membership.object_pk).where(Membership.node_id == node_id)))


def n_events(project):
    with project.session() as s:
        return s.scalar(select(func.count()).select_from(Event))


def check_counts(project):
    """Every node's n_members equals its memberships."""
    with project.session() as s:
        for node in s.scalars(select(Node)):
            real = s.scalar(select(func.count()).select_from(Membership)
                            .where(Membership.node_id == node.id))
            assert node.n_members == real, (node.id, node.n_members, real)


def test_fixture_builds_real_project(wf):
    assert sorted(len(v) for v in wf.by_class.values()) == [PER_CLASS] * 3
    nid = wf.make_node(wf.by_class[CLASSES[0]][:10])
    assert member_set(wf.project, nid) == set(wf.by_class[CLASSES[0]][:10])
    check_counts(wf.project)
