"""Folder and class-folder imports of real images (planktonset-dev, IFCB, ZooScan)."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import func, select

from morphocluster.importers import detect, import_sources
from morphocluster.store import ImportRun, Object


def _objects(project):
    with project.session() as s:
        return {o.object_id: o for o in s.scalars(select(Object))}


def test_ifcb_class_folders_with_labels(project, shared_data):
    src = shared_data / "ifcb-sample" / "training_data"
    assert detect(src) == "folder"
    assert detect(src, labels_from_folders=True) == "class-folders"
    report = import_sources(project, [src], labels_from_folders=True, progress=False)
    assert (report.added, report.skipped, report.failed) == (30, 0, 0)
    objs = _objects(project)
    expected = {f"{p.parent.name}/{p.stem}": p for p in src.glob("*/*.png")}
    assert set(objs) == set(expected) and len(objs) == 30
    for oid, o in objs.items():
        assert o.imported_label == oid.split("/")[0]
        assert o.imported_status == "validated"
        stored = project.image_path(o.path)
        assert stored.read_bytes() == expected[oid].read_bytes()
        assert o.width > 0 and o.height > 0
        assert o.import_id == report.import_id


def test_reimport_is_idempotent_and_adds_new(project, copy_shared):
    src = copy_shared("ifcb-sample/training_data")
    classes = sorted(p.name for p in src.iterdir())
    held_back = src.parent / "held_back"
    shutil.move(src / classes[1], held_back)
    first = import_sources(project, [src], format="class-folders", progress=False)
    n_first = first.added
    assert n_first > 0 and first.failed == 0
    again = import_sources(project, [src], format="class-folders", progress=False)
    assert (again.added, again.skipped, again.failed) == (0, n_first, 0)
    shutil.move(held_back, src / classes[1])
    more = import_sources(project, [src], format="class-folders", progress=False)
    assert (more.added, more.skipped, more.failed) == (30 - n_first, n_first, 0)
    with project.session() as s:
        assert s.scalar(select(func.count()).select_from(Object)) == 30
        assert s.scalar(select(func.count()).select_from(ImportRun)) == 3


def test_zooscan_png_vignettes_unlabelled(project, shared_data):
    src = shared_data / "zooscan-unlabelled" / "vault" / "85457"
    report = import_sources(project, [src], progress=False)
    assert report.formats == {str(src): "folder"}
    assert (report.added, report.failed) == (1298, 0)
    objs = _objects(project)
    assert "0000" in objs and "1297" in objs
    assert all(o.imported_label is None for o in objs.values())
    o = objs["0000"]
    from PIL import Image

    with Image.open(src / "0000.png") as img:
        assert (o.width, o.height) == img.size


@pytest.mark.slow
def test_planktonset_dev_all_classes(project, shared_data):
    src = shared_data / "planktonset-dev"
    report = import_sources(project, [src], labels_from_folders=True, progress=False)
    assert (report.added, report.failed) == (21466, 0)
    with project.session() as s:
        labels = dict(s.execute(select(Object.imported_label, func.count()).group_by(Object.imported_label)).all())
    assert len(labels) == 81
    assert labels == {d.name: len(list(d.glob("*.jpg"))) for d in src.iterdir() if d.is_dir()}
    one = next((src / "copepod_calanoid").glob("*.jpg"))
    assert f"copepod_calanoid/{one.stem}" in _objects(project)
