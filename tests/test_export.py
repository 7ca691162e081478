import csv
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
