from datetime import datetime

import pytest
from sqlalchemy import insert

from morphocluster.labels import node_labels, object_labels
from morphocluster.store import Membership, Node, Object, User


def _setup(project):
    """Tree: Biota > (Annelida > part), (Cnidaria > part), part (top level), an unnamed approved
    child of Cnidaria, a candidate cluster; objects o1..o8."""
    with project.transaction() as s:
        s.add(User(id=1, username="anna", password_hash="!"))
        s.execute(insert(Object), [{"id": i, "object_id": f"o{i}", "path": f"o{i}.png"}
                                   for i in range(1, 9)])
        s.add_all([
            Node(id=1, name="Biota", status="approved"),
            Node(id=2, parent_id=1, name="Annelida", status="approved"),
            Node(id=3, parent_id=2, name="part", status="approved"),
            Node(id=4, parent_id=1, name="Cnidaria", status="approved"),
            Node(id=5, parent_id=4, name="part", status="approved"),
            Node(id=6, name="part", status="approved"),
            Node(id=7, parent_id=4, name=None, status="approved"),
            Node(id=8, parent_id=1, name="cluster", status="candidate"),
        ])
        s.flush()
        t = datetime(2024, 5, 6, 7, 8, 9)
        s.execute(insert(Membership), [
            {"object_pk": 1, "node_id": 3, "status": "validated", "added_by": 1, "added_at": t},
            {"object_pk": 2, "node_id": 5, "status": "predicted", "added_by": 1, "added_at": t},
            {"object_pk": 3, "node_id": 6, "status": "validated", "added_by": None, "added_at": t},
            {"object_pk": 4, "node_id": 7, "status": "validated", "added_by": 1, "added_at": t},
            {"object_pk": 5, "node_id": 8, "status": "cluster", "added_by": None, "added_at": t},
            {"object_pk": 6, "node_id": 2, "status": "validated", "added_by": 1, "added_at": t},
        ])


def test_labels_paths_and_ambiguous_names(project):
    _setup(project)
    rows = {r.object_id: r for r in object_labels(project)}
    assert set(rows) == {"o1", "o2", "o3", "o4", "o6"}  # o5 only in a candidate, o7/o8 nowhere
    assert rows["o1"].label == "part<Annelida" and rows["o1"].label_path == "Biota>Annelida>part"
    assert rows["o2"].label == "part<Cnidaria" and rows["o2"].status == "predicted"
    assert rows["o3"].label == "part" and rows["o3"].label_path == "part"
    # unnamed approved node: the nearest named ancestor names it
    assert rows["o4"].label == "Cnidaria" and rows["o4"].label_path == "Biota>Cnidaria"
    assert rows["o6"].label == "Annelida"
    assert rows["o1"].annotator == "anna" and rows["o3"].annotator is None
    assert rows["o1"].annotated_at == datetime(2024, 5, 6, 7, 8, 9)
    assert rows["o1"].name == "part" and rows["o1"].node_id == 3


def test_all_adds_unlabelled_in_object_order(project):
    _setup(project)
    rows = list(object_labels(project, "all", chunk=3))
    assert [r.object_id for r in rows] == [f"o{i}" for i in range(1, 9)]
    unl = [r.object_id for r in rows if r.label is None]
    assert unl == ["o5", "o7", "o8"]
    assert all(r.status is None for r in rows if r.label is None)


def test_deeper_context_when_parent_name_is_shared(project):
    with project.transaction() as s:
        s.add_all([
            Node(id=1, name="A", status="candidate"), Node(id=2, parent_id=1, name="x"),
            Node(id=3, parent_id=2, name="egg", status="approved"),
            Node(id=4, name="B"), Node(id=5, parent_id=4, name="x"),
            Node(id=6, parent_id=5, name="egg", status="approved"),
        ])
    with project.session() as s:
        labels = node_labels(s)
    assert labels[3].display == "egg<x<A" and labels[6].display == "egg<x<B"
    assert labels[3].path == "A>x>egg"


def test_bad_which_is_refused(project):
    with pytest.raises(ValueError, match="labels"):
        list(object_labels(project, "some"))


def test_validated_only_makes_predicted_objects_unlabelled(project):
    _setup(project)
    rows = {r.object_id: r for r in object_labels(project, status="validated")}
    assert set(rows) == {"o1", "o3", "o4", "o6"}  # o2 was predicted: no label of ours
    rows = {r.object_id: r for r in object_labels(project, "all", chunk=3, status="validated")}
    assert len(rows) == 8 and rows["o2"].label is None and rows["o2"].status is None
    assert rows["o1"].label == "part<Annelida" and rows["o1"].status == "validated"
    with pytest.raises(ValueError, match="status"):
        list(object_labels(project, status="seen"))


def test_id_windows_cover_every_object(project):
    from morphocluster.labels import id_windows

    _setup(project)
    with project.session() as s:
        assert list(id_windows(s, 3)) == [(1, 4), (4, 7), (7, 10)]
