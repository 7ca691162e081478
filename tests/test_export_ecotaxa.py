import csv
import zipfile
from datetime import datetime

import pytest
from sqlalchemy import select

from morphocluster.export import ExportError, export
from morphocluster.importers import import_sources
from morphocluster.labels import object_labels
from morphocluster.project import Project
from morphocluster.store import Membership, Meta, Node, Object, User

SAMPLES = ["UVP6_example.zip", "import de categories ambigues", "import_just_predicted",
           "import_mixed_states", "import_sparse", "import_test", "import_test.zip",
           "import_test_plus", "import_test_plus_more", "import_update", "import_uvp6_zip_in_dir",
           "import_various_states"]
WHEN = datetime(2024, 3, 4, 5, 6, 7)
ODD = "Copépode / calanoïde <adulte>"


def label_some(project):
    """Label two objects of every three via the store: ambiguous 'part' and an odd name."""
    with project.transaction() as s:
        s.add(User(id=1, username="Zoé Annot", password_hash="!"))
        s.add_all([Node(id=1, name="Annelida"), Node(id=2, name="Cnidaria"),
                   Node(id=3, parent_id=1, name="part", status="approved"),
                   Node(id=4, parent_id=2, name="part", status="approved"),
                   Node(id=5, name=ODD, status="approved")])
        s.flush()
        pks = s.scalars(select(Object.id).order_by(Object.id)).all()
        labelled = [pk for i, pk in enumerate(pks) if i % 3 != 2]
        for k, pk in enumerate(labelled):
            s.add(Membership(object_pk=pk, node_id=(3, 5, 4)[k % 3],
                             status="predicted" if k % 2 else "validated", added_by=1, added_at=WHEN))
    return {r.object_id: r for r in object_labels(project, "all")}


def _strip(meta):
    return {k: v for k, v in (meta or {}).items()
            if not k.startswith("object_annotation_") and not k.startswith("_")}


def _read_tsv(path):
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t"))
    return rows[0], rows[1], [dict(zip(rows[0], r)) for r in rows[2:]]


@pytest.mark.parametrize("sample", SAMPLES)
def test_round_trip_every_sample(sample, copy_shared, tmp_path):
    src = copy_shared(f"ecotaxa-samples/{sample}")
    a = Project.create(tmp_path / "a")
    import_sources(a, [src], progress=False)
    ours = label_some(a)
    assert any(r.label for r in ours.values())
    assert any(r.label is None for r in ours.values()) or len(ours) < 3
    out = tmp_path / "export.zip"
    rep = export(a, "ecotaxa", out, labels="all", with_images=True)
    with a.session() as s:
        n_extra = sum(len((m or {}).get("_extra_images", ())) for m in s.scalars(select(Object.meta)))
    assert rep.n_objects == len(ours) and rep.n_missing_images == 0
    assert rep.n_images == len(ours) + n_extra  # objects with several images keep them all
    b = Project.create(tmp_path / "b")
    back = import_sources(b, [out], progress=False)
    assert back.failed == 0, back.failed_messages
    with a.session() as s, b.session() as t:
        before = {o.object_id: o for o in s.scalars(select(Object))}
        after = {o.object_id: o for o in t.scalars(select(Object))}
        cols_a = s.get(Meta, "ecotaxa_columns").value
        cols_b = dict(t.get(Meta, "ecotaxa_columns").value)
    assert set(before) == set(after)  # same objects
    for oid, o in before.items():
        assert _strip(after[oid].meta) == _strip(o.meta), oid  # same metadata values
        if ours[oid].label is not None:
            assert after[oid].imported_label == ours[oid].label  # same labels
            assert after[oid].imported_status == ours[oid].status  # same statuses
        else:  # not sorted here: it keeps the annotation it was imported with
            assert (after[oid].imported_label, after[oid].imported_status) == (
                o.imported_label, o.imported_status), oid
        assert after[oid].width == o.width and after[oid].height == o.height
        extra_a, extra_b = ((x.meta or {}).get("_extra_images", []) for x in (o, after[oid]))
        assert [a.image_path(e["path"]).read_bytes() for e in extra_a] == [
            b.image_path(e["path"]).read_bytes() for e in extra_b]  # further images, in order
    for name, typ in cols_a:  # no column lost, numbers stay numbers
        assert name in cols_b, name
        assert (typ in ("f", "n")) == (cols_b[name] == "f"), name
    labels = {r.label for r in ours.values()} - {None}
    assert {"part<Annelida", "part<Cnidaria"} & labels
    if sample == "import_test_plus":
        assert n_extra == 1


def test_an_object_with_several_images_gets_a_row_per_image(copy_shared, tmp_path):
    src = copy_shared("ecotaxa-samples/ref_exports/doi")
    p = Project.create(tmp_path / "p")
    import_sources(p, [src], progress=False)
    label_some(p)
    rep = export(p, "ecotaxa", tmp_path / "out", labels="all", with_images=True)
    header, types, rows = _read_tsv(tmp_path / "out" / "ecotaxa_export.tsv")
    assert len(rows) == 12 and rep.n_objects == 11 and rep.n_images == 12
    mine = [r for r in rows if r["object_id"] == "m106_mn01_n3_sml_1111"]
    assert [r["img_rank"] for r in mine] == ["0", "1"]
    assert [r["img_file_name"] for r in mine] == ["m106_mn01_n3_sml_1111.jpg", "m106_mn01_n3_sml_1111_1.jpg"]
    assert mine[0]["object_annotation_category"] == mine[1]["object_annotation_category"]
    assert {k: v for k, v in mine[0].items() if k not in ("img_rank", "img_file_name")} == {
        k: v for k, v in mine[1].items() if k not in ("img_rank", "img_file_name")}
    assert (tmp_path / "out" / mine[1]["img_file_name"]).read_bytes() == (
        src / "images/egg_other/13_1.jpg").read_bytes()


def test_columns_and_types_match_real_ecotaxa_export(copy_shared, tmp_path, shared_data):
    src = copy_shared("ecotaxa-samples/ref_exports/bak_all_images")
    p = Project.create(tmp_path / "p")
    import_sources(p, [src], progress=False)
    label_some(p)
    export(p, "ecotaxa", tmp_path / "out", labels="all")
    header, types, rows = _read_tsv(tmp_path / "out" / "ecotaxa_export.tsv")
    ours = dict(zip(header, types))
    ref_dir = shared_data / "ecotaxa-samples/ref_exports"
    refs = list((ref_dir / "bak_all_images").rglob("*.tsv")) + list((ref_dir / "tsv_by_taxon").glob("*.tsv"))
    checked = 0
    for ref in refs:
        with open(ref, encoding="utf-8-sig", newline="") as f:
            r = csv.reader(f, delimiter="\t")
            rh, rt = next(r), next(r)
        for col, typ in zip(rh, rt):
            if col == "object_annotation_category_id":
                continue  # EcoTaxa's own id: meaningless outside that EcoTaxa instance
            assert col in ours, f"{ref.name}: column {col} lost"
            assert ours[col] == typ, f"{ref.name}: {col} is {typ} in EcoTaxa, {ours[col]} here"
            checked += 1
    assert checked > 300
    for row in rows:
        for col, typ in ours.items():
            if typ == "[f]" and row[col] not in ("", "NaN", "nan"):
                float(row[col])  # every [f] value is a number


def test_pyecotaxa_reads_the_export(copy_shared, tmp_path):
    archive = pytest.importorskip("pyecotaxa.archive")
    src = copy_shared("ecotaxa-samples/import_test")
    p = Project.create(tmp_path / "p")
    import_sources(p, [src], progress=False)
    ours = label_some(p)
    out = tmp_path / "e.zip"
    export(p, "ecotaxa", out, with_images=True)
    with archive.Archive(out) as ar:
        ar.validate()  # EcoTaxa's structure checks as pyecotaxa mimics them
        tables = list(ar.iter_tsv())
        assert len(tables) == 1
        df = tables[0][1]
        for name in df["img_file_name"]:
            assert name in ar.members()
    labelled = {k: v for k, v in ours.items() if v.label}
    assert sorted(df["object_id"]) == sorted(labelled)
    for _, row in df.iterrows():
        r = labelled[row["object_id"]]
        assert row["object_annotation_category"] == r.label
        assert row["object_annotation_status"] == r.status
        assert row["object_annotation_person_name"] == "Zoé Annot"
        assert row["object_annotation_date"] == "20240304" and row["object_annotation_time"] == "050607"
        assert row["object_annotation_hierarchy"] == r.label_path
    assert df["object_lat"].dtype.kind == "f" and df["object_depth_min"].dtype.kind == "f"


def test_default_exports_only_labelled_into_a_folder(copy_shared, tmp_path):
    src = copy_shared("ecotaxa-samples/import de categories ambigues")
    p = Project.create(tmp_path / "p")
    import_sources(p, [src], progress=False)
    ours = label_some(p)
    rep = export(p, "ecotaxa", tmp_path / "folder", with_images=True)
    assert "--with-images" not in rep.summary()
    bare = export(p, "ecotaxa", tmp_path / "bare.zip")  # the table alone: said so
    assert "for an EcoTaxa import with the images, export again with --with-images" in bare.summary()
    header, types, rows = _read_tsv(tmp_path / "folder" / "ecotaxa_export.tsv")
    assert header[:8] == ["object_id", "img_file_name", "object_annotation_category",
                          "object_annotation_status", "object_annotation_person_name",
                          "object_annotation_date", "object_annotation_time",
                          "object_annotation_hierarchy"]
    assert len(rows) == rep.n_labelled == sum(1 for r in ours.values() if r.label)
    for row in rows:
        assert (tmp_path / "folder" / row["img_file_name"]).is_file()
        assert row["object_annotation_parent_category"] == ""  # stale: our category replaces it
    odd = [r for r in rows if r["object_annotation_category"] == ODD]
    assert odd and odd[0]["object_annotation_hierarchy"] == ODD
    assert types[header.index("object_lat")] == "[f]"


def test_export_refuses_a_non_empty_folder(project, tmp_path):
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(ExportError, match="not an empty folder"):
        export(project, "ecotaxa", tmp_path / "full")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_zip_has_the_table_and_images(copy_shared, tmp_path):
    src = copy_shared("ecotaxa-samples/import_sparse")
    p = Project.create(tmp_path / "p")
    import_sources(p, [src], progress=False)
    label_some(p)
    out = tmp_path / "x.zip"
    rep = export(p, "ecotaxa", out, labels="all", with_images=True)
    with zipfile.ZipFile(out) as zf:
        names = zf.namelist()
    assert "ecotaxa_export.tsv" in names and len(names) == 1 + rep.n_images == 7
    assert not list(tmp_path.glob(".x.zip*"))  # no temporary left behind


def test_labels_given_through_the_workflow(copy_shared, tmp_path):
    """Approve a seed cluster with the workflow: seen members validated, the rest predicted."""
    from morphocluster.users import add_user
    from morphocluster.workflow import validate

    src = copy_shared("ecotaxa-samples/import_test")
    p = Project.create(tmp_path / "p")
    import_sources(p, [src], progress=False)
    user = add_user(p, "Émile", "secret-pw")
    with p.transaction() as s:
        pks = s.scalars(select(Object.id).order_by(Object.id)).all()
        s.add(Node(id=1, status="candidate", n_members=6))
        s.flush()
        for pk in pks[:6]:
            s.add(Membership(object_pk=pk, node_id=1, status="cluster"))
    validate.approve(p, user["id"], 1, name="Oithona sp.", seen_pks=pks[:4])
    out = tmp_path / "wf.zip"
    rep = export(p, "ecotaxa", out, with_images=True)
    assert rep.n_objects == 6
    b = Project.create(tmp_path / "b")
    import_sources(b, [out], progress=False)
    with b.session() as s:
        got = sorted(s.execute(select(Object.imported_label, Object.imported_status,
                                      Object.meta)).all(), key=lambda r: r[2]["object_id"])
    assert [g[0] for g in got] == ["Oithona sp."] * 6
    assert sorted(g[1] for g in got) == ["predicted"] * 2 + ["validated"] * 4
    assert {g[2]["object_annotation_person_name"] for g in got} == {"Émile"}


def test_metadata_of_other_imports_gets_an_ecotaxa_prefix(tmp_path, shared_data):
    """index.csv columns have no EcoTaxa prefix: they are written as object_<name> text columns."""
    import shutil

    src = tmp_path / "src"
    (src / "img").mkdir(parents=True)
    imgs = sorted((shared_data / "ifcb-sample/training_data").rglob("*.png"))[:3]
    for f in imgs:
        shutil.copy(f, src / "img" / f.name)
    with open(src / "index.csv", "w", encoding="utf-8") as f:
        f.write("object_id,path,Station Name,depth\n")
        for i, img in enumerate(imgs):
            f.write(f"o{i},img/{img.name},St. {i},{i * 10}\n")
    p = Project.create(tmp_path / "p")
    import_sources(p, [src], progress=False)
    label_some(p)
    export(p, "ecotaxa", tmp_path / "out", labels="all")
    header, types, rows = _read_tsv(tmp_path / "out" / "ecotaxa_export.tsv")
    assert "object_Station_Name" in header and "object_depth" in header  # the case kept
    assert [r["object_Station_Name"] for r in rows] == ["St. 0", "St. 1", "St. 2"]
    assert all(h.split("_")[0] in ("object", "sample", "acq", "process", "img") for h in header)


def test_out_names_a_tsv_file_a_zip_or_a_folder(copy_shared, tmp_path):
    from click.testing import CliRunner

    from morphocluster.cli import main

    src = copy_shared("ecotaxa-samples/import_test/m106_mn01_n2_sml")
    p = Project.create(tmp_path / "p")
    import_sources(p, [src], progress=False)
    label_some(p)
    rep = export(p, "ecotaxa", tmp_path / "x.tsv", labels="all")
    assert (tmp_path / "x.tsv").is_file() and rep.n_objects == 3
    header, types, rows = _read_tsv(tmp_path / "x.tsv")
    assert header[0] == "object_id" and types[0] == "[t]" and len(rows) == 3
    with pytest.raises(ExportError, match=r"y.tsv: a \.tsv file holds no images"):
        export(p, "ecotaxa", tmp_path / "y.tsv", with_images=True)
    with pytest.raises(ExportError, match=r"x.csv: .*\.zip.*\.tsv"):
        export(p, "ecotaxa", tmp_path / "x.csv")
    assert not (tmp_path / "y.tsv").exists() and not (tmp_path / "x.csv").exists()
    p.close()
    run = CliRunner()
    for out, check in ((tmp_path / "c.tsv", "is_file"), (tmp_path / "c.zip", "is_file")):
        res = run.invoke(main, ["export", str(p.root), "--format", "ecotaxa", "--labels", "all", "--out", str(out)])
        assert res.exit_code == 0, res.output
        assert getattr(out, check)()
    assert zipfile.is_zipfile(tmp_path / "c.zip") and not zipfile.is_zipfile(tmp_path / "c.tsv")
    res = run.invoke(main, ["export", str(p.root), "--format", "ecotaxa", "--out", f"{tmp_path}/d.tsv/"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "d.tsv" / "ecotaxa_export.tsv").is_file()  # a trailing / asks for a folder


def test_column_names_keep_the_case_of_the_import(copy_shared, tmp_path):
    src = copy_shared("ecotaxa-samples/import_test/m106_mn01_n2_sml")
    tsv = next(src.glob("ecotaxa_*.tsv"))
    tsv.write_text(tsv.read_text(encoding="utf-8").replace("\tobject_area\t", "\tobject_Area\t", 1)
                   .replace("\tsample_ship\t", "\tSample_Ship\t", 1), encoding="utf-8")
    p = Project.create(tmp_path / "p")
    import_sources(p, [src], progress=False)
    label_some(p)
    export(p, "ecotaxa", tmp_path / "out.tsv", labels="all")
    header, types, rows = _read_tsv(tmp_path / "out.tsv")
    assert "object_Area" in header and "Sample_Ship" in header
    assert "object_area" not in header and "sample_ship" not in header
    assert types[header.index("object_Area")] == "[f]"
    assert sorted(r["object_Area"] for r in rows) == ["413.0", "490.0", "929.0"]
    export(p, "ecotaxa", tmp_path / "out.zip", labels="all", with_images=True)
    b = Project.create(tmp_path / "b")
    back = import_sources(b, [tmp_path / "out.zip"], progress=False)
    assert (back.added, back.failed) == (3, 0)
    with b.session() as s:
        metas = list(s.scalars(select(Object.meta)))
        cols = dict(s.get(Meta, "ecotaxa_columns").value)
    assert all("object_Area" in m and "object_area" not in m for m in metas)
    assert cols["object_Area"] == "f" and "Sample_Ship" in cols
