import csv
import io
import os
import zipfile
from datetime import datetime

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from morphocluster.cli import main
from morphocluster.export import ExportError, export
from morphocluster.export.names import safe_name, unsafe_name
from morphocluster.features.h5 import feature_path, set_active, write_features
from morphocluster.importers import import_sources
from morphocluster.labels import object_labels
from morphocluster.project import Project
from morphocluster.store import Membership, Node, Object, User

WHEN = datetime(2025, 1, 2, 3, 4, 5)
# awkward names: a path separator, EcoTaxa's '<', spaces, accents, a Windows device name, and two
# names that differ only by case (they collide on macOS and Windows file systems)
NAMES = ["a/b", "egg<other", "with space", "Copépode", "CON", "Detritus", "detritus"]


@pytest.fixture
def labelled(copy_shared, tmp_path):
    """30 real IFCB images; 21 labelled under awkward names, 9 unlabelled."""
    src = copy_shared("ifcb-sample/training_data")
    p = Project.create(tmp_path / "proj")
    import_sources(p, [src], format="folder", progress=False)
    with p.transaction() as s:
        s.add(User(id=1, username="ann", password_hash="!"))
        s.add(Node(id=100, name="Top"))
        s.add_all([Node(id=i + 1, name=n, status="approved", parent_id=100 if n == "detritus" else None)
                   for i, n in enumerate(NAMES)])
        s.flush()
        pks = s.scalars(select(Object.id).order_by(Object.id)).all()
        for k, pk in enumerate(pks[:21]):
            s.add(Membership(object_pk=pk, node_id=k % len(NAMES) + 1, added_by=1, added_at=WHEN,
                             status="validated" if k % 2 else "predicted"))
    yield p
    p.close()


def load_class_folders(root):
    """A minimal folder-per-class loader (like torchvision's ImageFolder): {file: class}."""
    out = {}
    for d in sorted(os.scandir(root), key=lambda e: e.name):
        if d.is_dir():
            for f in os.scandir(d.path):
                out[f"{d.name}/{f.name}"] = unsafe_name(d.name)
    return out


def test_csv(labelled, tmp_path):
    rep = export(labelled, "csv", tmp_path / "l.csv")
    with open(tmp_path / "l.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["object_id", "label", "label_path", "status", "annotator", "annotated_at"]
    ours = {r.object_id: r for r in object_labels(labelled)}
    assert len(rows) == rep.n_objects == len(ours) == 21
    for row in rows:
        r = ours[row["object_id"]]
        assert (row["label"], row["label_path"], row["status"]) == (r.label, r.label_path, r.status)
        assert row["annotator"] == "ann" and row["annotated_at"] == "2025-01-02T03:04:05Z"
    assert {"detritus", "Detritus", "a/b", "egg<other"} <= {r["label"] for r in rows}
    export(labelled, "csv", tmp_path / "all.csv", labels="all")
    with open(tmp_path / "all.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 30 and sum(1 for r in rows if r["label"] == "") == 9


def test_imagefolder_loads_with_a_folder_per_class_loader(labelled, tmp_path):
    out = tmp_path / "classes"
    rep = export(labelled, "imagefolder", out, labels="all")
    assert rep.n_images == 30 and rep.n_missing_images == 0
    loaded = load_class_folders(out)
    assert len(loaded) == 21  # unlabelled images lie at the top, outside any class folder
    with open(out / "index.csv", encoding="utf-8") as f:
        index = {r["file"]: r for r in csv.DictReader(f)}
    ours = {r.object_id: r for r in object_labels(labelled, "all")}
    folders = {f.split("/")[0] for f in loaded}
    assert len({f.casefold() for f in folders}) == len(folders) == len(NAMES)  # no case clashes
    for f, label in loaded.items():
        r = ours[index[f]["object_id"]]
        assert label == r.label
        assert f.rsplit("/", 1)[1] == safe_name(r.object_id) + ".png"
        assert unsafe_name(f.rsplit("/", 1)[1][:-4]) == r.object_id
        with open(out / f, "rb") as img:
            assert img.read(4) == b"\x89PNG"
    # folder names are safe: no separators, no '<', no spaces, no device names
    for folder in folders:
        assert not set("/<> \\:") & set(folder) and folder.upper() != "CON"
    assert sum(1 for r in index.values() if "/" not in r["file"]) == 9


def test_imagefolder_zip(labelled, tmp_path):
    rep = export(labelled, "imagefolder", tmp_path / "c.zip")
    with zipfile.ZipFile(tmp_path / "c.zip") as zf:
        names = zf.namelist()
    assert len(names) == rep.n_images + 1 == 22 and "index.csv" in names


def test_hdf5_in_original_layout(labelled, tmp_path):
    with labelled.session() as s:
        ids = s.scalars(select(Object.object_id).order_by(Object.id.desc())).all()
    X = np.random.default_rng(0).normal(size=(len(ids), 8)).astype(np.float32)
    write_features(feature_path(labelled, "test"), ids[:-1], X[:-1], {"extractor": "test"})
    set_active(labelled, "test")
    rep = export(labelled, "hdf5", tmp_path / "f.h5", labels="all")
    with h5py.File(tmp_path / "f.h5", "r") as h:
        oids = list(h["object_id"].asstr()[:])
        feats = h["features"][:]
        label = list(h["label"].asstr()[:])
        assert h.attrs["extractor"] == "test" and h.attrs["feature_set"] == "test"
        assert "done" not in h.attrs and "complete" not in h.attrs  # the feature file's progress
        assert feats.dtype == np.float32 and feats.shape == (29, 8)
    row = {oid: i for i, oid in enumerate(ids)}
    for i, oid in enumerate(oids):
        np.testing.assert_array_equal(feats[i], X[row[oid]])
    ours = {r.object_id: r.label or "" for r in object_labels(labelled, "all")}
    assert label == [ours[o] for o in oids]
    assert ids[-1] not in oids and "no row in feature set" in rep.warnings[0]


def test_hdf5_without_features_is_a_clear_error(labelled, tmp_path):
    with pytest.raises(ExportError, match="no features yet"):
        export(labelled, "hdf5", tmp_path / "f.h5")


def test_unknown_format_and_missing_folder(labelled, tmp_path):
    with pytest.raises(ExportError, match="unknown export format"):
        export(labelled, "xml", tmp_path / "x")
    with pytest.raises(ExportError, match="does not exist"):
        export(labelled, "csv", tmp_path / "nope" / "x.csv")


def test_cli(labelled, tmp_path):
    res = CliRunner().invoke(main, ["export", str(labelled.root), "--format", "csv",
                                    "--out", str(tmp_path / "c.csv"), "--labels", "all"])
    assert res.exit_code == 0, res.output
    assert "Exported 30 objects (21 labelled, 9 unlabelled)" in res.output
    res = CliRunner().invoke(main, ["export", str(labelled.root), "--format", "ecotaxa",
                                    "--out", str(tmp_path / "e.zip"), "--with-images"])
    assert res.exit_code == 0, res.output
    assert "21 images written" in res.output
    res = CliRunner().invoke(main, ["export", str(labelled.root), "--format", "hdf5",
                                    "--out", str(tmp_path / "f.h5")])
    assert res.exit_code != 0 and "no features yet" in res.output


def test_safe_names_are_reversible():
    for text in NAMES + ["..", "x.", "%41", "~tilde", "a\tb\nc", "ünï/cødé", "x" * 300]:
        name = safe_name(text)
        assert "/" not in name and "\\" not in name and "<" not in name and " " not in name
        assert len(name.encode()) <= 210
        if len(text) < 100:
            assert unsafe_name(name) == text


def test_missing_image_is_reported_not_fatal(labelled, tmp_path):
    with labelled.session() as s:
        first = s.execute(select(Object.object_id, Object.path).order_by(Object.id)).first()
    labelled.image_path(first.path).unlink()
    rep = export(labelled, "imagefolder", tmp_path / "c")
    assert rep.n_missing_images == 1 and rep.missing_images == [first.object_id]
    assert rep.n_images == 20 and "1 images missing" in rep.summary()


@pytest.mark.skipif(not os.path.isdir("/sys"), reason="needs /sys, a folder no one can write to")
@pytest.mark.parametrize("fmt", ["csv", "ecotaxa", "imagefolder", "hdf5", "morphocluster-tree"])
def test_unwritable_out_is_a_clean_error(labelled, fmt):
    with labelled.session() as s:
        ids = s.scalars(select(Object.object_id)).all()
    write_features(feature_path(labelled, "test"), ids, np.zeros((len(ids), 4), np.float32), {})
    set_active(labelled, "test")
    res = CliRunner().invoke(main, ["export", str(labelled.root), "--format", fmt, "--out", "/sys/x.zip"])
    assert (res.exit_code, type(res.exception)) == (1, SystemExit)  # not an uncaught OSError
    assert res.output.startswith("Error: /sys/x.zip: cannot write the export (")


@pytest.mark.parametrize("fmt,name", [("csv", "x.csv"), ("ecotaxa", "x.zip"), ("morphocluster-tree", "t.zip")])
def test_existing_file_is_replaced_only_with_overwrite(labelled, tmp_path, fmt, name):
    out = tmp_path / name
    out.write_bytes(b"precious")
    args = ["export", str(labelled.root), "--format", fmt, "--out", str(out)]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 1 and f"{out}: file exists" in res.output and "--overwrite" in res.output
    assert out.read_bytes() == b"precious"
    res = CliRunner().invoke(main, args + ["--overwrite"])
    assert res.exit_code == 0, res.output
    assert "Exported 21 objects" in res.output and out.read_bytes() != b"precious"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary left


def test_export_of_no_objects_warns(project, tmp_path, copy_shared):
    from morphocluster.importers import import_sources

    rep = export(project, "csv", tmp_path / "e.csv")
    assert rep.n_objects == 0 and (tmp_path / "e.csv").read_text().startswith("object_id,label")
    assert "warning: no objects were exported; the project holds no objects" in rep.summary()
    import_sources(project, [copy_shared("ifcb-sample/training_data")], progress=False)
    rep = export(project, "csv", tmp_path / "f.csv")
    assert "warning: no objects were exported; only labelled objects are, unless --labels all" in rep.summary()
    rep = export(project, "morphocluster-tree", tmp_path / "t.zip")
    assert "only objects in nodes are, unless --labels all" in rep.summary()


def test_objects_of_validated_nodes_without_any_name_are_pointed_out(labelled, tmp_path):
    pks = sorted(r.pk for r in object_labels(labelled, "all") if r.label is None)[:3]
    with labelled.transaction() as s:
        s.add(Node(id=200, status="approved", n_members=3))  # validated, never named
        s.flush()
        for pk in pks:
            s.add(Membership(object_pk=pk, node_id=200, status="validated"))
    rep = export(labelled, "csv", tmp_path / "e.csv")
    assert rep.n_labelled == 21
    assert any("3 objects lie in validated nodes that have no name (200)" in w and "not at all" in w
               for w in rep.warnings)
    rep = export(labelled, "morphocluster-tree", tmp_path / "t.zip")  # a tree keeps every node
    assert not any("no name" in w for w in rep.warnings)
    with labelled.transaction() as s:
        s.get(Node, 200).parent_id = 100  # under a named node: its name labels them
    rep = export(labelled, "csv", tmp_path / "f.csv")
    assert rep.n_labelled == 24 and not any("no name" in w for w in rep.warnings)


def _features_in_id_order(project, skip=()):
    """A feature set of every object but `skip` (object ids), in Object.id order, active."""
    with project.session() as s:
        ids = [i for i in s.scalars(select(Object.object_id).order_by(Object.id)) if i not in skip]
    X = np.arange(len(ids) * 4, dtype=np.float32).reshape(len(ids), 4)
    write_features(feature_path(project, "ordered"), ids, X, {})
    set_active(project, "ordered")
    return dict(zip(ids, X))


@pytest.mark.parametrize("fmt,images", [("csv", False), ("ecotaxa", True), ("ecotaxa", False),
                                        ("imagefolder", False), ("hdf5", False),
                                        ("morphocluster-tree", False)])
@pytest.mark.parametrize("labels", ["validated", "all"])
def test_validated_only_writes_predicted_objects_unlabelled(labelled, tmp_path, fmt, images, labels):
    from test_web_export import read_back

    from morphocluster.export.summary import summarize

    _features_in_id_order(labelled)
    seen = {r.object_id for r in object_labels(labelled) if r.status == "validated"}
    predicted = {r.object_id for r in object_labels(labelled) if r.status == "predicted"}
    assert len(seen) == 10 and len(predicted) == 11
    got = {}
    for status in ("any", "validated"):
        plan = summarize(labelled, fmt, labels, images, status)
        out = tmp_path / f"{status}{plan.suffix}"
        rep = export(labelled, fmt, out, labels=labels, with_images=images, status=status)
        rows, _ = read_back(fmt, images, out.read_bytes(), tmp_path)
        lab = [r for r in rows if r[1]]
        assert (plan.n_objects, plan.n_labelled) == (rep.n_objects, rep.n_labelled) == (len(rows), len(lab))
        assert plan.n_validated == sum(r[2] == "validated" for r in lab)
        assert plan.n_predicted == sum(r[2] == "predicted" for r in lab)
        got[status] = {r[0]: r for r in rows}
    assert {o for o, r in got["any"].items() if r[1]} == seen | predicted
    assert {o for o, r in got["validated"].items() if r[1]} == seen  # only what a human saw
    assert all(r[2] == "validated" for r in got["validated"].values() if r[1])
    if labels == "all":  # every object still there; the predicted ones without our label
        assert set(got["validated"]) == set(got["any"])
        assert all(not got["validated"][o][1] for o in predicted)
    else:  # labelled objects only: the predicted ones are left out
        assert set(got["validated"]) == seen
    assert plan.n_unseen == 11 and "11 predicted objects" in " ".join(plan.notes)


def test_cli_status_validated(labelled, tmp_path):
    res = CliRunner().invoke(main, ["export", str(labelled.root), "--format", "csv", "--status",
                                    "validated", "--out", str(tmp_path / "v.csv")])
    assert res.exit_code == 0, res.output
    assert "Exported 10 objects (10 labelled, 0 unlabelled)" in res.output
    res = CliRunner().invoke(main, ["export", "--help"])
    assert "--status [any|validated]" in res.output and "predicted" in res.output
    with pytest.raises(ExportError, match="status"):
        export(labelled, "csv", tmp_path / "x.csv", status="seen")


def test_hdf5_join_in_id_order_with_gaps_and_in_any_order(labelled, tmp_path):
    """The merge (a file in Object.id order, objects without a row) and the on-disk lookup (a
    file in another order, or with ids of no object) write the same rows."""
    with labelled.session() as s:
        ids = s.scalars(select(Object.object_id).order_by(Object.id)).all()
    X = _features_in_id_order(labelled, skip={ids[3], ids[17]})
    rep = export(labelled, "hdf5", tmp_path / "merge.h5", labels="all")
    assert rep.n_objects == 28 and "2 objects have no row" in rep.warnings[0]
    shuffled = [i for i in ids if i not in (ids[3], ids[17])]
    np.random.default_rng(1).shuffle(shuffled)
    write_features(feature_path(labelled, "shuffled"), shuffled + ["no such object"],
                   np.stack([X[i] for i in shuffled] + [np.ones(4, np.float32)]), {})
    set_active(labelled, "shuffled")
    rep2 = export(labelled, "hdf5", tmp_path / "lookup.h5", labels="all")
    assert rep2.n_objects == 28 and rep2.warnings == [rep.warnings[0].replace("ordered", "shuffled")]
    with h5py.File(tmp_path / "merge.h5", "r") as a, h5py.File(tmp_path / "lookup.h5", "r") as b:
        assert list(a["object_id"].asstr()[:]) == list(b["object_id"].asstr()[:]) == \
            [i for i in ids if i not in (ids[3], ids[17])]
        np.testing.assert_array_equal(a["features"][:], b["features"][:])
        for i, oid in enumerate(a["object_id"].asstr()[:]):
            np.testing.assert_array_equal(a["features"][i], X[oid])
        assert list(a["label"].asstr()[:]) == list(b["label"].asstr()[:])
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no scratch left


def test_image_names_unique_ignoring_case_without_a_set_in_memory(labelled, tmp_path):
    with labelled.transaction() as s:
        objs = s.scalars(select(Object).order_by(Object.id).limit(3)).all()
        objs[0].object_id, objs[1].object_id, objs[2].object_id = "Ab", "ab", "ecotaxa_export"
        for o in objs:
            o.path = o.path.rsplit(".", 1)[0] + ".tsv" if o.object_id == "ecotaxa_export" else o.path
    labelled.image_path(objs[2].path).write_bytes(b"\x89PNG not really")
    export(labelled, "ecotaxa", tmp_path / "e.zip", labels="all", with_images=True)
    with zipfile.ZipFile(tmp_path / "e.zip") as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        rows = list(csv.DictReader(io.StringIO(zf.read("ecotaxa_export.tsv").decode()), delimiter="\t"))[1:]
    assert len({n.casefold() for n in names}) == len(names) == 31
    img = {r["object_id"]: r["img_file_name"] for r in rows}
    assert {img["Ab"].casefold(), img["ab"].casefold()} == {"ab.png", "ab~2.png"}
    assert img["ecotaxa_export"] == "ecotaxa_export~2.tsv"
    export(labelled, "imagefolder", tmp_path / "c.zip", labels="all")
    with zipfile.ZipFile(tmp_path / "c.zip") as zf:
        names = zf.namelist()
    assert len({n.casefold() for n in names}) == len(names) == 31


def test_zip_writer_zip64_records_read_back(tmp_path):
    from morphocluster.export.zipstream import DEFLATED, ZipWriter

    files = []
    for i, name in enumerate(["a.txt", "Copépode/ß.jpg", "big.bin"]):
        f = tmp_path / f"src{i}"
        f.write_bytes(os.urandom(300) if i == 2 else (name * 50).encode())
        files.append((f, name))
    for limit in (100, 2**31 - 1):  # 100: sizes and offsets past it take ZIP64 fields
        out = tmp_path / f"z{limit}.zip"
        w = ZipWriter(out, tmp_path / "spool")
        w.zip64_at = limit
        for k, (f, name) in enumerate(files):
            w.write(f, name, DEFLATED if k == 0 else 0)
        w.close()
        assert not (tmp_path / "spool").exists()
        with zipfile.ZipFile(out) as zf:
            assert zf.testzip() is None  # every member's CRC checks
            assert [(i.filename, i.compress_type) for i in zf.infolist()] == [
                ("a.txt", zipfile.ZIP_DEFLATED), ("Copépode/ß.jpg", 0), ("big.bin", 0)]
            for f, name in files:
                assert zf.read(name) == f.read_bytes()
