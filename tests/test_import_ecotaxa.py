"""EcoTaxa imports of every real sample in ../shared/data/ecotaxa-samples (expected values read off the TSVs)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from morphocluster.importers import detect, import_sources
from morphocluster.store import ImportRun, Meta, Object

E = "ecotaxa-samples"


def _objects(project):
    with project.session() as s:
        return {o.object_id: o for o in s.scalars(select(Object))}


def _import(project, path):
    return import_sources(project, [path], progress=False)


def test_import_test_folder(project, shared_data):
    src = shared_data / E / "import_test"
    assert detect(src) == "ecotaxa"
    r = _import(project, src)
    assert (r.added, r.skipped, r.failed) == (11, 0, 0)
    objs = _objects(project)
    assert sorted(objs) == sorted(
        [f"m106_mn01_n1_sml_{i}" for i in (409, 821, 822, 850, 851, 852, 853, 854)]
        + [f"m106_mn01_n2_sml_{i}" for i in (1, 1081, 1111)])
    o = objs["m106_mn01_n1_sml_850"]
    assert (o.imported_label, o.imported_status) == ("other<Biota", "predicted")
    assert objs["m106_mn01_n1_sml_852"].imported_label == "Other (Biota)"
    assert objs["m106_mn01_n2_sml_1111"].imported_label == "egg<other"
    # three objects share the image of 850: one file, same bytes
    assert {objs[f"m106_mn01_n1_sml_{i}"].path for i in (850, 852, 853, 854)} == {o.path}
    img = src / "m106_mn01_n1_sml" / "m106_mn01_n1_sml_850.jpg"
    assert project.image_path(o.path).read_bytes() == img.read_bytes()
    assert (o.width, o.height) == (58, 85)
    # metadata: every object_/sample_/acq_/process_ value as text, in column order
    m = objs["m106_mn01_n1_sml_409"].meta
    assert m["object_lat"] == "-44.72543333333333" and m["object_lon"] == "145.5351"
    assert m["object_annotation_person_name"] == "Admin4test"
    assert m["object_new_field"] == "1"
    assert "img_file_name" not in m and "object_link" not in m  # empty values are left out
    keys = list(m)
    assert keys.index("object_new_field") < keys.index("object_id") < keys.index("object_lat")
    assert any(k.startswith("sample_") for k in m) and any(k.startswith("process_") for k in m)
    with project.session() as s:
        cols = s.get(Meta, "ecotaxa_columns").value
        run = s.scalars(select(ImportRun)).one()
    assert cols[0] == ["object_new_field", "f"] and cols[1] == ["object_id", "t"]
    assert ["img_file_name", "t"] in cols and ["object_lat", "f"] in cols
    assert run.report["ecotaxa_columns"] == cols and run.format == "ecotaxa"


def test_import_test_zip_and_reimport(project, shared_data):
    src = shared_data / E / "import_test.zip"
    assert detect(src) == "ecotaxa"
    r = _import(project, src)
    assert (r.added, r.failed) == (8, 0)  # the zipped n1 table has 5 rows, the n2 one 3
    assert _objects(project)["m106_mn01_n1_sml_850"].imported_label == "other<living"
    again = _import(project, src)
    assert (again.added, again.skipped, again.failed) == (0, 8, 0)


@pytest.mark.parametrize("rel", ["UVP6_example.zip", "import_uvp6_zip_in_dir"])
def test_uvp6_zip_in_zip_and_zip_in_folder(project, shared_data, rel):
    src = shared_data / E / rel
    assert detect(src) == "ecotaxa"
    r = _import(project, src)
    assert (r.added, r.failed) == (15, 0)
    objs = _objects(project)
    o = objs["20200205-111823_3"]
    assert o.imported_label is None and o.imported_status is None
    assert o.path.endswith("sub1/20200205-111823_3.png")
    assert o.meta["acq_instrument"] == "uvp6"
    # latin-1 table: the degree sign survives
    assert any("\u00b0" in v for ob in objs.values() for v in ob.meta.values())


def test_ambiguous_category_names(project, shared_data):
    r = _import(project, shared_data / E / "import de categories ambigues")
    assert (r.added, r.failed) == (6, 0)
    got = {k: (o.imported_label, o.imported_status) for k, o in _objects(project).items()}
    assert got == {"1": ("part (Annelida)", "validated"), "2": ("part (Cnidaria)", "validated"),
                   "3": ("part", "predicted"), "4": ("part", "predicted"),
                   "5": ("part", "dubious"), "6": ("part", "dubious")}
    assert _objects(project)["5"].meta["object_annotation_parent_category"] == "Annelida"


def test_various_states_two_samples(project, shared_data):
    r = _import(project, shared_data / E / "import_various_states")
    assert (r.added, r.failed) == (9, 0)
    got = {k: (o.imported_label, o.imported_status) for k, o in _objects(project).items()}
    assert got == {
        "m106_mn01_n1_sml_409": ("t001", "predicted"), "m106_mn01_n1_sml_821": ("Oncaeidae", "validated"),
        "m106_mn01_n1_sml_822": ("Cyclopoida", "validated"),
        "m106_mn01_n1_sml_850": ("other<Biota", "predicted"), "m106_mn01_n1_sml_851": ("Oncaeidae", "dubious"),
        "m106_mn01_n2_sml_1": ("detritus", "predicted"), "m106_mn01_n2_sml_1081": ("detritus", "validated"),
        "m106_mn01_n2_sml_1111": ("egg<other", "validated"),
        "m106_mn01_n2_sml_1333": (None, None),  # id written with a trailing tab in the TSV
    }


def test_mixed_states_short_row_and_just_predicted(project, shared_data):
    r = _import(project, shared_data / E / "import_mixed_states")
    assert (r.added, r.failed) == (1, 0)  # the row has 91 fields for 92 columns: padded
    o = _objects(project)["m106_mn01_n3_sml_1120"]
    assert (o.imported_label, o.imported_status) == ("small<egg", "validated")
    assert o.path.endswith("m106_mn01_n3_sml_1111.jpg")
    r = _import(project, shared_data / E / "import_just_predicted")
    assert (r.added, r.failed) == (1, 0)
    o = _objects(project)["m106_mn04_n1_sml_409"]
    assert (o.imported_label, o.imported_status) == ("t001", "predicted")


def test_sparse_vpr_export(project, shared_data):
    r = _import(project, shared_data / E / "import_sparse")
    assert (r.added, r.failed) == (6, 0)
    objs = _objects(project)
    assert sorted(objs) == [f"roi.07299{n}" for n in ("31500", "37400", "43300", "49200", "55200", "61200")]
    o = objs["roi.0729931500"]
    assert o.imported_label is None
    assert o.meta["object_lat"] == "77.0709" and o.meta["sample_ship"] == "Healy"
    assert o.meta["acq_instrument"] == "VPR"


def test_multiple_images_shown_by_lowest_rank_and_all_kept(project, shared_data):
    src = shared_data / E / "ref_exports" / "doi"
    r = _import(project, src)
    assert (r.added, r.failed) == (11, 0)  # 12 rows, one object with two images
    o = _objects(project)["m106_mn01_n3_sml_1111"]
    assert o.path.endswith("images/egg_other/13_0.jpg")
    [extra] = o.meta["_extra_images"]
    assert (extra["rank"], extra["file"]) == (1, "images/egg_other/13_1.jpg")
    assert project.image_path(extra["path"]).read_bytes() == (src / "images/egg_other/13_1.jpg").read_bytes()
    assert any("several images" in n for n in r.notes)


def test_a_missing_or_corrupt_further_image_is_reported_and_the_object_kept(project, copy_shared):
    src = copy_shared(f"{E}/ref_exports/doi")
    table = next(src.glob("*.tsv"))
    (src / "images/egg_other/13_1.jpg").write_bytes(b"not a jpeg")
    r = _import(project, src)
    assert (r.added, r.failed) == (11, 0)
    [warning] = [n for n in r.notes if "13_1.jpg" in n]
    assert f"{table.name}:13" in warning and "left out" in warning
    o = _objects(project)["m106_mn01_n3_sml_1111"]
    assert o.path.endswith("13_0.jpg") and "_extra_images" not in o.meta


def test_two_images_of_one_rank_are_refused(project, copy_shared):
    src = copy_shared(f"{E}/ref_exports/doi")
    table = next(src.glob("*.tsv"))
    lines = table.read_text(encoding="utf-8").splitlines(keepends=True)
    lines.append(lines[-1])  # the last row again: rank 1 of 1111 twice
    table.write_text("".join(lines), encoding="utf-8")
    r = _import(project, src)
    assert r.added == 11 and r.failed == 1
    assert f"{table.name}:{len(lines)}" in r.failed_messages[0] and "img_rank" in r.failed_messages[0]


def test_tsv_by_taxon_with_bom_and_backup(project, shared_data):
    r = _import(project, shared_data / E / "ref_exports" / "tsv_by_taxon")
    assert (r.added, r.failed) == (12, 0)
    assert _objects(project)["m106_mn01_n1_sml_822"].imported_label == "Cyclopoida"
    r = _import(project, shared_data / E / "ref_exports" / "bak_all_images")
    # same ids as tsv_by_taxon: identical images are skipped, 1111 has a different image there
    assert r.added == 0 and r.skipped + r.failed == 11


def test_update_after_import_test(project, shared_data):
    _import(project, shared_data / E / "import_test")
    r = _import(project, shared_data / E / "import_update")
    # 8 known objects (same images) skipped, 2 new ones added, 1333 has no image in that folder
    assert (r.added, r.skipped, r.failed) == (2, 8, 1)
    assert "ecotaxa_m106_mn01_n2_sml.tsv:3: image file m106_mn01_n2_sml_1333.jpg not found" in r.failed_messages[0]
    objs = _objects(project)
    assert {"not_existing_obj", "extra_sample"} <= set(objs) and len(objs) == 13


def test_test_plus_tables_without_images(project, shared_data):
    _import(project, shared_data / E / "import_test")
    r = _import(project, shared_data / E / "import_test_plus")
    # n1 and n2 tables come without images: known objects are skipped, n1_sml_409..854 as well
    assert (r.added, r.skipped, r.failed) == (3, 11, 0)
    r = _import(project, shared_data / E / "import_test_plus_more")
    assert (r.added, r.failed) == (1, 0)
    assert [e["file"] for e in _objects(project)["m106_mn01_n3_sml_1111"].meta["_extra_images"]] == [
        "m106_mn01_n3_sml_1111_2.jpg"]


def test_single_table_file_as_source(project, shared_data):
    tsv = next((shared_data / E / "import_sparse").glob("ecotaxa_*.tsv"))
    assert detect(tsv) == "ecotaxa"
    r = _import(project, tsv)
    assert (r.added, r.failed) == (6, 0)
    again = _import(project, shared_data / E / "import_sparse")  # same objects via the folder
    assert (again.added, again.skipped) == (0, 6)


def test_reimport_with_changed_states_keeps_stored_labels(project, shared_data):
    _import(project, shared_data / E / "import_test")
    r = _import(project, shared_data / E / "import_various_states" / "import_vs_sample1")
    # same five objects and images; 821, 822 and 851 changed status: reported, not overwritten
    assert (r.added, r.skipped, r.failed) == (0, 5, 0)
    assert "3 skipped objects have another imported label or status in this source; the stored ones are " \
        "kept (--update takes this source's)" in r.notes
    with project.session() as s:
        o = s.scalars(select(Object).where(Object.object_id == "m106_mn01_n1_sml_821")).one()
    assert o.imported_status == "predicted"


def test_reimport_with_update_takes_the_new_labels_and_metadata(project, shared_data):
    _import(project, shared_data / E / "import_test")
    before = {k: (o.imported_label, o.imported_status, dict(o.meta or {})) for k, o in _objects(project).items()}
    src = shared_data / E / "import_various_states" / "import_vs_sample1"
    r = import_sources(project, [src], progress=False, update=True)
    assert r.added == 0 and r.failed == 0 and r.updated >= 3 and r.updated + r.skipped == 5
    assert f"updated {r.updated}" in r.summary()
    after = _objects(project)
    o = after["m106_mn01_n1_sml_821"]
    assert o.imported_status != "predicted" and o.imported_label  # the source's state, label kept
    changed = [k for k, o in after.items() if (o.imported_label, o.imported_status, o.meta) != before[k]]
    assert len(changed) == r.updated
    for k in changed:  # metadata merged: nothing stored before is lost
        assert set(before[k][2]) <= set(after[k].meta or {})
    with project.session() as s:
        run = s.scalars(select(ImportRun).order_by(ImportRun.id.desc())).first()
        assert run.report["updated"] == r.updated
    again = import_sources(project, [src], progress=False, update=True)
    assert again.updated == 0 and again.skipped == 5


def test_cli_import_update_from_a_table_without_its_images(project, shared_data, tmp_path):
    import shutil

    from click.testing import CliRunner

    from morphocluster.cli import main

    _import(project, shared_data / E / "import_test")
    src = shared_data / E / "import_various_states" / "import_vs_sample1"
    for tsv in src.glob("ecotaxa_*.tsv"):
        shutil.copy2(tsv, tmp_path / tsv.name)
    res = CliRunner().invoke(main, ["import", str(project.root), str(tmp_path), "--update", "-q"])
    assert res.exit_code == 0, res.output
    assert "updated" in res.output and "failed 0" in res.output
    assert _objects(project)["m106_mn01_n1_sml_821"].imported_status != "predicted"


@pytest.mark.parametrize("order", [("import_test", "UVP6_example.zip"), ("UVP6_example.zip", "import_test")])
def test_a_column_typed_text_by_one_table_and_number_by_another_is_text(project, shared_data, order):
    """UVP6 writes latitudes as '43°0 0' ([t]); ZooScan tables give numbers ([f])."""
    for name in order:
        import_sources(project, [shared_data / "ecotaxa-samples" / name], progress=False)
    with project.session() as s:
        types = dict(s.get(Meta, "ecotaxa_columns").value)
        lats = {o.meta.get("object_lat") for o in s.scalars(select(Object))}
    assert any(isinstance(v, str) and "°" in v for v in lats)  # both kinds of value are there
    assert types["object_lat"] == "t" and types["object_lon"] == "t"
