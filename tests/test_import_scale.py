"""Imports streamed in batches: sharded image folders, re-imports, duplicates across batches,
EcoTaxa objects whose rows lie far apart, and projects stored in the older layout."""

from __future__ import annotations

import os
import shutil

import pytest
from sqlalchemy import func, select

from morphocluster.importers import SHARD_SIZE, ImportFailed, import_sources
from morphocluster.store import ImportRun, Object

SMALL = 100  # shard size for these tests: many shards from a few thousand images


def _real_images(shared_data, tmp_path, n, name="src"):
    """Copy the first `n` planktonset-dev images (in their class folders) to tmp_path/name."""
    root = tmp_path / name
    done = 0
    for cls in sorted((shared_data / "planktonset-dev").iterdir()):
        for f in sorted(cls.glob("*.jpg")):
            if done == n:
                return root
            (root / cls.name).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, root / cls.name / f.name)
            done += 1
    return root


def _largest_folder(path) -> int:
    return max(len(os.listdir(d)) for d, _, _ in os.walk(path))


def _objects(project):
    with project.session() as s:
        return s.execute(select(Object.object_id, Object.path, Object.imported_label)).all()


def test_images_go_into_shards_of_bounded_size_and_a_reimport_skips_them(project, shared_data, tmp_path):
    src = _real_images(shared_data, tmp_path, 2500)
    r = import_sources(project, [src], labels_from_folders=True, progress=False, shard_size=SMALL)
    assert (r.added, r.failed) == (2500, 0)
    assert _largest_folder(project.images_dir) <= SMALL
    objs = _objects(project)
    shards = {tuple(p.split("/")[1:3]) for _, p, _ in objs}
    assert len(shards) == 25 and ("000", "024") in shards
    for oid, path, label in objs:  # readable: the source's own path below the shard
        assert path.endswith(f"/src/{oid}.jpg") and oid.startswith(f"{label}/")
        assert project.image_path(path).read_bytes() == (src / f"{oid}.jpg").read_bytes()
    n_files = sum(len(f) for _, _, f in os.walk(project.images_dir))
    again = import_sources(project, [src], labels_from_folders=True, progress=False, shard_size=SMALL)
    assert (again.added, again.skipped, again.failed) == (0, 2500, 0)
    assert sum(len(f) for _, _, f in os.walk(project.images_dir)) == n_files
    assert _objects(project) == objs


def test_the_default_shard_holds_at_most_shard_size_images(project, shared_data, tmp_path):
    src = _real_images(shared_data, tmp_path, 2500)
    assert import_sources(project, [src], progress=False).added == 2500
    assert SHARD_SIZE == 1000 and _largest_folder(project.images_dir) <= SHARD_SIZE
    assert len({p.split("/")[2] for _, p, _ in _objects(project)}) == 3


def test_duplicate_ids_in_one_batch_and_across_batches_name_both_files(project, shared_data, tmp_path):
    a = _real_images(shared_data, tmp_path, 150, "a")
    b = tmp_path / "b"
    shutil.copytree(a, b)  # the same relative paths: the same 150 object ids
    r = import_sources(project, [a, b], progress=False, shard_size=SMALL)
    assert (r.added, r.failed) == (150, 150)
    # a's last 50 and b's first 50 share the second batch; b's other 100 come in a third
    for rel, msg in zip(sorted(p.relative_to(b).as_posix() for p in b.rglob("*.jpg")), r.failed_messages):
        oid = rel.removesuffix(".jpg")
        assert msg == f"{b}/{rel}: duplicate object id {oid!r} (first at {a}/{rel}); row skipped"
    assert {p.split("/")[3] for _, p, _ in _objects(project)} == {"a"}  # <import>/<shard>/<source>/...


def _long_tsv(copy_shared, n_rows):
    """The real m106_mn01_n2_sml table with `n_rows` objects (ids made unique) on its first image."""
    src = copy_shared("ecotaxa-samples/import_test/m106_mn01_n2_sml")
    tsv = next(src.glob("ecotaxa_*.tsv"))
    lines = tsv.read_text().splitlines()
    head, types, row = lines[0], lines[1], lines[2].split("\t")
    cols = head.split("\t")
    i_id, i_rank = cols.index("object_id"), cols.index("img_rank")
    body = []
    for k in range(n_rows):
        r = list(row)
        r[i_id] = f"obj_{k:04d}"
        body.append(r)
    return src, tsv, [head, types], body, i_id, i_rank


def test_ecotaxa_rows_of_one_object_far_apart_in_a_long_table(project, copy_shared):
    src, tsv, top, body, i_id, i_rank = _long_tsv(copy_shared, 250)
    again = list(body[0])  # line 3's object again on line 253: a duplicate, 2 batches later
    extra = list(body[1])  # line 4's object with a second image, on line 254
    extra[i_rank] = "2"
    tsv.write_text("\n".join(top + ["\t".join(r) for r in body + [again, extra]]) + "\n")
    r = import_sources(project, [src], progress=False, shard_size=SMALL)
    assert (r.added, r.failed) == (250, 1)
    assert r.failed_messages == [f"{tsv}:253: duplicate object id 'obj_0000' (first at line 3); row skipped"]
    with project.session() as s:
        o = s.scalars(select(Object).where(Object.object_id == "obj_0001")).one()
    assert [e["rank"] for e in o.meta["_extra_images"]] == [2]
    assert project.image_path(o.meta["_extra_images"][0]["path"]).is_file()
    assert _largest_folder(project.images_dir) <= SMALL + 1  # a shard may hold one object's extra images


def test_a_duplicate_in_strict_mode_in_a_later_batch_writes_nothing(project, shared_data, tmp_path):
    a = _real_images(shared_data, tmp_path, 250, "a")
    first = sorted(a.rglob("*.jpg"))[0]
    b = tmp_path / "b" / first.parent.name
    b.mkdir(parents=True)
    shutil.copyfile(first, b / first.name)  # the same id as a's first image, read in the third batch
    with pytest.raises(ImportFailed, match=r"duplicate object id .*--strict: nothing was imported"):
        import_sources(project, [a, b.parent], strict=True, progress=False, shard_size=SMALL)
    with project.session() as s:
        assert s.scalar(select(func.count()).select_from(Object)) == 0
        assert s.scalar(select(func.count()).select_from(ImportRun)) == 0
    assert list(project.images_dir.iterdir()) == []


def _old_layout_project(project, shared_data):
    """Store two objects as imports before the shards did: images/<import>/<source>/<class>/<file>."""
    folder = "20250101-000000-abcdef"
    files = sorted((shared_data / "ifcb-sample" / "training_data" / "Mesodinium_major").glob("*.png"))[:2]
    with project.transaction() as s:
        run = ImportRun(source="old", format="class-folders", report={"images_folder": folder})
        s.add(run)
        s.flush()
        for f in files:
            rel = f"{folder}/training_data/Mesodinium_major/{f.name}"
            (project.images_dir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, project.images_dir / rel)
            s.add(Object(object_id=f"Mesodinium_major/{f.stem}", path=rel, width=1, height=1,
                         imported_label="Mesodinium_major", import_id=run.id))
    return {f"Mesodinium_major/{f.stem}": f.read_bytes() for f in files}


def test_an_old_layout_project_still_serves_its_images_after_a_new_import(project, shared_data, tmp_path):
    from test_web_fixtures import login

    from morphocluster.users import add_user
    from morphocluster.web import create_app

    old = _old_layout_project(project, shared_data)
    src = _real_images(shared_data, tmp_path, 300)
    r = import_sources(project, [src], labels_from_folders=True, progress=False, shard_size=SMALL)
    assert (r.added, r.failed) == (300, 0)
    add_user(project, "ann", "secret-pw", "annotator")
    client = create_app({"PROJECT": project, "TESTING": True}).test_client()
    login(client, "ann", "secret-pw")
    with project.session() as s:
        pks = dict(s.execute(select(Object.object_id, Object.id)).all())
        new = s.scalars(select(Object.id).where(Object.path.like(f"{r.extra['images_folder']}/000/002/%"))).first()
    for oid, data in old.items():
        resp = client.get(f"/image/{pks[oid]}")
        assert resp.status_code == 200 and resp.get_data() == data
        assert client.get(f"/thumb/{pks[oid]}").status_code == 200
    assert client.get(f"/image/{new}").status_code == 200
    assert (project.images_dir / "20250101-000000-abcdef").is_dir()  # not moved, not removed

