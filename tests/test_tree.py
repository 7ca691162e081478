import csv
import io
import json
import zipfile
from datetime import datetime

import pytest
from sqlalchemy import func, insert, select

from morphocluster.export import export
from morphocluster.export.tree import import_tree
from morphocluster.importers.report import ImportFailed, ImportReport
from morphocluster.labels import object_labels
from morphocluster.project import Project
from morphocluster.store import Event, Membership, Node, Object, Rejection, User

EXAMPLE = "morphocluster-example/tree.zip"


def _objects(project, ids):
    with project.transaction() as s:
        s.execute(insert(Object), [{"object_id": i, "path": f"{i}.png"} for i in ids])


def _example_rows(shared_data, member):
    with zipfile.ZipFile(shared_data / EXAMPLE) as zf:
        return list(csv.DictReader(io.TextIOWrapper(zf.open(member), encoding="utf-8")))


def test_example_tree_is_read_correctly(project, shared_data):
    nodes = _example_rows(shared_data, "nodes.csv")
    objs = _example_rows(shared_data, "objects.csv")
    _objects(project, [o["object_id"] for o in objs])
    report = ImportReport()
    summary = import_tree(project, shared_data / EXAMPLE, report)
    assert report.failed == 0, report.failed_messages
    # the root (no parent, not approved, no name) is the container, not a node
    assert summary["nodes"] == len(nodes) - 1 == 1290
    assert summary["memberships"] == sum(1 for o in objs if o["node_id"] != "136066")
    with project.session() as s:
        by_tree = {n.params["tree"]["node_id"]: n for n in s.scalars(select(Node))}
        assert s.scalar(select(func.count()).select_from(Event).where(Event.action == "import_tree")) == 1
        for row in nodes[:200]:
            nid = int(row["node_id"])
            if nid == 136066:
                continue
            node = by_tree[nid]
            assert node.name == (row["name"] or None)
            assert node.status == ("approved" if row["approved"] == "True" else "candidate")
            assert node.params["tree"]["filled"] == (row["filled"] == "True")
            parent = int(float(row["parent_id"]))
            if parent == 136066:
                assert node.parent_id is None
            else:
                assert s.get(Node, node.parent_id).params["tree"]["node_id"] == parent
        member = dict(s.execute(select(Object.object_id, Membership.node_id)
                                .join(Membership, Membership.object_pk == Object.id)).all())
        for o in objs[:300]:
            if o["node_id"] != "136066":
                assert by_tree[int(o["node_id"])].id == member[o["object_id"]]
    # names such as 'detritus/fiber/fluffy-fiber' become labels of their members
    labels = {r.label for r in object_labels(project)}
    assert "detritus/fiber/fluffy-fiber" in labels or any("/" in label for label in labels)


def test_example_tree_without_objects_says_which_and_how_many(project, shared_data):
    with pytest.raises(ImportFailed) as exc:
        import_tree(project, shared_data / EXAMPLE, ImportReport())
    msg = str(exc.value)
    assert "none of the 1425 objects" in msg and "import their images first" in msg
    ids = sorted(o["object_id"] for o in _example_rows(shared_data, "objects.csv"))
    assert ids[0] in msg  # names the ids
    with project.session() as s:  # nothing written
        assert s.scalar(select(func.count()).select_from(Node)) == 0


def test_example_tree_with_some_objects_missing(project, shared_data):
    objs = [o["object_id"] for o in _example_rows(shared_data, "objects.csv")]
    _objects(project, objs[:1000])
    report = ImportReport()
    summary = import_tree(project, shared_data / EXAMPLE, report)
    assert summary["missing_objects"] == 425
    assert set(summary["missing_object_ids"]) == set(objs[1000:])
    note = next(n for n in report.notes if "425 of 1425 objects" in n)
    listing = note.rsplit(" in ", 1)[1].rstrip(")")
    with open(listing, encoding="utf-8") as f:
        assert set(f.read().split()) == set(objs[1000:])


def _labelled_project(root):
    p = Project.create(root)
    t = datetime(2023, 1, 2, 3, 4, 5)
    with p.transaction() as s:
        s.add(User(id=1, username="jo", password_hash="!"))
        s.execute(insert(Object), [{"id": i, "object_id": f"obj/{i}", "path": f"{i}.png"} for i in range(1, 11)])
        s.add_all([Node(id=1, name="Copepoda", status="approved", approved_by=1,
                        approved_at=datetime(2023, 1, 3, 0, 0, 0)),
                   Node(id=2, parent_id=1, name="egg", status="approved"),
                   Node(id=3, parent_id=1, status="candidate"),
                   Node(id=4, name="gone", status="dissolved"),
                   Node(id=5, parent_id=4, name="détritus fin", status="approved")])
        s.flush()
        s.execute(insert(Membership), [
            {"object_pk": 1, "node_id": 1, "status": "validated", "added_by": 1, "added_at": t},
            {"object_pk": 2, "node_id": 2, "status": "predicted", "added_by": 1, "added_at": t},
            {"object_pk": 3, "node_id": 3, "status": "cluster", "added_at": t},
            {"object_pk": 4, "node_id": 5, "status": "validated", "added_by": 1, "added_at": t},
            # in the cluster when jo approved it: jo labelled it, at the approval
            {"object_pk": 6, "node_id": 1, "status": "validated", "added_at": t},
        ])
        s.execute(insert(Rejection), [{"node_id": 2, "object_pk": 5}])
    return p


def test_tree_round_trip(tmp_path):
    a = _labelled_project(tmp_path / "a")
    out = tmp_path / "tree.zip"
    rep = export(a, "morphocluster-tree", out)
    assert rep.n_objects == 5
    with zipfile.ZipFile(out) as zf:
        assert {"nodes.csv", "objects.csv", "rejected_objects.csv", "meta.json"} <= set(zf.namelist())
        assert json.loads(zf.read("meta.json"))["root_id"] == 0
        header = zf.read("nodes.csv").decode().splitlines()[0]
        assert header.startswith("node_id,parent_id,name,starred,filled,approved")
    b = Project.create(tmp_path / "b")
    _objects(b, [f"obj/{i}" for i in range(1, 11)])
    report = ImportReport()
    import_tree(b, out, report)
    assert report.failed == 0
    before = {r.object_id: r[3:9] for r in object_labels(a)}
    after = {r.object_id: r[3:9] for r in object_labels(b)}
    assert before == after and len(before) == 4
    assert before["obj/6"][4:6] == ("jo", datetime(2023, 1, 3, 0, 0, 0))
    with b.session() as s:
        assert s.scalar(select(func.count()).select_from(Rejection)) == 1
        assert {n.name for n in s.scalars(select(Node))} == {"Copepoda", "egg", None, "détritus fin"}
        # the child of the dissolved node moved up to the top level
        assert s.scalar(select(Node.parent_id).where(Node.name == "détritus fin")) is None
        cl = s.execute(select(Membership.status).join(Object, Object.id == Membership.object_pk)
                       .where(Object.object_id == "obj/3")).scalar()
        assert cl == "cluster"


def test_tree_import_through_the_importer_dispatch(tmp_path):
    from morphocluster.importers import import_sources

    a = _labelled_project(tmp_path / "a")
    out = tmp_path / "t.zip"
    export(a, "morphocluster-tree", out, labels="all")
    b = Project.create(tmp_path / "b")
    _objects(b, [f"obj/{i}" for i in range(1, 11)])
    report = import_sources(b, [out], format="auto", progress=False)
    assert report.formats[str(out)] == "morphocluster-tree"
    assert report.extra["trees"][0]["memberships"] == 5


def test_bad_rows_are_reported_with_file_and_line(project, tmp_path):
    _objects(project, ["a", "b"])
    src = tmp_path / "bad.zip"
    with zipfile.ZipFile(src, "w") as zf:
        zf.writestr("nodes.csv", "node_id,parent_id,name,filled,approved\n1,,,False,False\n"
                                 "2,1.0,x,False,True\n3,99,y,False,True\nzz,1,w,False,False\n")
        zf.writestr("objects.csv", "node_id,object_id\n2,a\n3,b\n2,a\n")
    report = ImportReport()
    import_tree(project, src, report)
    msgs = "\n".join(report.failed_messages)
    assert "bad.zip:nodes.csv:4: parent 99 is not in nodes.csv" in msgs
    assert "bad.zip:nodes.csv:5" in msgs
    assert "bad.zip:objects.csv:3" in msgs and "bad.zip:objects.csv:4" in msgs
    assert [r.label for r in object_labels(project)] == ["x"]


def test_objects_already_in_a_node_keep_it(tmp_path):
    a = _labelled_project(tmp_path / "a")
    out = tmp_path / "t.zip"
    export(a, "morphocluster-tree", out)
    report = ImportReport()
    with a.session() as s:
        n_nodes = s.scalar(select(func.count()).select_from(Node))
    with pytest.raises(ImportFailed, match="in a node of this project already"):
        import_tree(a, out, report)  # into the same project: every object is already placed
    with a.session() as s:
        assert s.scalar(select(func.count()).select_from(Membership)) == 5
        assert s.scalar(select(func.count()).select_from(Node)) == n_nodes  # no empty copies
