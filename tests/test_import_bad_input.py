"""Bad input: each problem is reported with file and row; good rows land, or nothing with --strict."""

from __future__ import annotations

import shutil
import zipfile

import pytest
from sqlalchemy import func, select, text

from morphocluster.importers import ImportFailed, import_sources
from morphocluster.store import ImportRun, Meta, Object

IFCB = "ifcb-sample/training_data"
E = "ecotaxa-samples"


def _count(project, table=Object):
    with project.session() as s:
        return s.scalar(select(func.count()).select_from(table))


def _image_files(project):
    return sorted(p.relative_to(project.images_dir) for p in project.images_dir.rglob("*") if p.is_file())


def _state(project):
    with project.session() as s:
        objs = sorted(s.execute(select(Object.object_id, Object.path, Object.imported_label)).all())
    return objs, _count(project, ImportRun), _image_files(project)


def _ecotaxa_copy(copy_shared, rel=f"{E}/import_test/m106_mn01_n2_sml"):
    src = copy_shared(rel)
    return src, next(src.glob("ecotaxa_*.tsv"))


def test_corrupt_and_fake_images_are_failed_rows(project, copy_shared):
    src = copy_shared(IFCB)
    good = sorted(src.rglob("*.png"))
    data = good[0].read_bytes()
    good[0].write_bytes(data[: len(data) // 3])  # truncated PNG
    (good[1].parent / "notes.png").write_text("not an image")
    r = import_sources(project, [src], labels_from_folders=True, progress=False)
    assert (r.added, r.failed) == (29, 2)
    msgs = "\n".join(r.failed_messages)
    assert f"{good[0].relative_to(src.parent).as_posix()}: {good[0].name}: corrupt image" in msgs
    assert "notes.png: not an image Pillow can read; row skipped" in msgs
    assert _count(project) == 29


def test_duplicate_ids_within_source(project, copy_shared):
    src = copy_shared(IFCB)
    png = sorted(src.rglob("*.png"))[0]
    from PIL import Image

    Image.open(png).convert("L").save(png.with_suffix(".jpg"))  # same id, other extension
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (30, 1)
    oid = png.relative_to(src).with_suffix("").as_posix()
    assert f"duplicate object id {oid!r} (first at" in r.failed_messages[0]
    assert r.failed_messages[0].startswith(f"{src}/{oid}.png")


def test_duplicate_id_in_ecotaxa_table_names_both_lines(project, copy_shared):
    src, tsv = _ecotaxa_copy(copy_shared)
    lines = tsv.read_text().splitlines()
    tsv.write_text("\n".join(lines + [lines[2]]) + "\n")  # repeat the first data row as line 6
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (3, 1)
    assert r.failed_messages == [f"{tsv}:6: duplicate object id 'm106_mn01_n2_sml_1' (first at line 3); row skipped"]


def test_duplicate_id_against_project_keeps_stored_object(project, copy_shared):
    src = copy_shared(IFCB)
    import_sources(project, [src], labels_from_folders=True, progress=False)
    before = _state(project)
    victim = sorted(src.rglob("*.png"))[3]
    stored_bytes = victim.read_bytes()
    other = sorted(src.rglob("*.png"))[4]
    shutil.copyfile(other, victim)  # same id, different image
    r = import_sources(project, [src], labels_from_folders=True, progress=False)
    assert (r.added, r.skipped, r.failed) == (0, 29, 1)
    oid = victim.relative_to(src).with_suffix("").as_posix()
    assert f"object id {oid!r} is already in the project with a different image" in r.failed_messages[0]
    objs, n_runs, files = _state(project)
    assert (objs, files) == (before[0], before[2]) and n_runs == before[1] + 1
    with project.session() as s:
        path = s.scalar(select(Object.path).where(Object.object_id == oid))
    assert project.image_path(path).read_bytes() == stored_bytes


def test_empty_tsv(project, copy_shared):
    src, tsv = _ecotaxa_copy(copy_shared)
    tsv.write_text("")
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (0, 1)
    assert r.failed_messages == [f"{tsv}: empty EcoTaxa table (no header row); file skipped"]
    objs, n_runs, files = _state(project)
    assert (objs, n_runs, files) == ([], 1, [])  # only the import's report is recorded


def test_row_with_more_fields_than_header(project, copy_shared):
    src, tsv = _ecotaxa_copy(copy_shared)
    lines = tsv.read_text().splitlines()
    lines[3] += "\tsurplus\tvalues"
    tsv.write_text("\n".join(lines) + "\n")
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (2, 1)
    n = len(lines[0].split("\t"))
    assert r.failed_messages == [f"{tsv}:4: row has {n + 2} fields but the header has {n}; row skipped"]
    assert "m106_mn01_n2_sml_1081" not in [o[0] for o in _state(project)[0]]


def test_category_without_status(project, copy_shared):
    src, tsv = _ecotaxa_copy(copy_shared)
    text_ = tsv.read_text().replace("\tpredicted\t", "\t\t", 1)
    tsv.write_text(text_)
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (3, 0)
    assert f"{tsv}:3: object 'm106_mn01_n2_sml_1': category 'detritus' without object_annotation_status; " \
           "imported as predicted" in r.notes
    with project.session() as s:
        o = s.scalars(select(Object).where(Object.object_id == "m106_mn01_n2_sml_1")).one()
    assert (o.imported_label, o.imported_status) == ("detritus", "predicted")


def test_category_without_status_strict_writes_nothing(project, copy_shared):
    src, tsv = _ecotaxa_copy(copy_shared)
    tsv.write_text(tsv.read_text().replace("\tpredicted\t", "\t\t", 1))
    with pytest.raises(ImportFailed, match=r"ecotaxa_m106_mn01_n2_sml.tsv:3: .*--strict: nothing was imported"):
        import_sources(project, [src], strict=True, progress=False)
    assert _state(project) == ([], 0, [])
    assert list(project.cache_dir.iterdir()) == []


def test_unreadable_encoding(project, copy_shared):
    src, tsv = _ecotaxa_copy(copy_shared)
    tsv.write_bytes(tsv.read_text().encode("utf-16"))
    r = import_sources(project, [src], progress=False)
    assert r.added == 0
    assert r.failed_messages == [f"{tsv}: unreadable encoding (UTF-16 or binary data); save the table as UTF-8; "
                                 "file skipped"]


def test_stray_latin1_line_in_utf8_table_is_warned_and_the_rest_stays_utf8(project, copy_shared):
    src, tsv = _ecotaxa_copy(copy_shared)
    lines = tsv.read_text().splitlines()
    cat = lines[0].split("\t").index("object_annotation_category")
    rows = [line.split("\t") for line in lines]
    rows[2][cat], rows[3][cat] = "\u00c9crevisse", "Crevette \u00e0 pattes"
    data = "\n".join("\t".join(r) for r in rows).encode("utf-8") + b"\n"
    data = data.replace(b"m106_mn01_n2_sml_1111\t", b"m106_mn01_n2_sml_1111\t\xb0", 1)  # line 5
    tsv.write_bytes(data)
    with pytest.raises(ImportFailed, match=r"ecotaxa_m106_mn01_n2_sml.tsv:5: line is not valid UTF-8"):
        import_sources(project, [src], strict=True, progress=False)
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (3, 0)
    assert r.notes == [f"{tsv}:5: line is not valid UTF-8 (unlike the rest of the file); read as latin-1",
                       f"{tsv}:5: column 'object_lat' (2): '\u00b018.0' is not a number (the column is [f]); "
                       "value left out"]
    with project.session() as s:
        labels = set(s.scalars(select(Object.imported_label)))
    assert {"\u00c9crevisse", "Crevette \u00e0 pattes"} <= labels


def test_wholly_latin1_table_is_read_with_one_note(project, copy_shared):
    src, tsv = _ecotaxa_copy(copy_shared)
    rows = [line.split("\t") for line in tsv.read_text().splitlines()]
    rows[2][rows[0].index("object_annotation_category")] = "\u00c9crevisse"
    tsv.write_bytes("\n".join("\t".join(r) for r in rows).encode("latin-1") + b"\n")
    r = import_sources(project, [src], strict=True, progress=False)
    assert r.notes == [f"{tsv}: not UTF-8; read as latin-1"]
    with project.session() as s:
        assert "\u00c9crevisse" in set(s.scalars(select(Object.imported_label)))


def test_zip_slip_entry_is_refused(project, shared_data, tmp_path):
    pngs = sorted((shared_data / IFCB).rglob("*.png"))[:2]
    z = tmp_path / "evil.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(pngs[0], "ok/a.png")
        zf.write(pngs[1], "../../escaped.png")
    r = import_sources(project, [z], progress=False)
    assert (r.added, r.failed) == (1, 1)
    assert r.failed_messages == ["evil.zip:../../escaped.png: ZIP entry path escapes the target folder "
                                 "(zip-slip); entry skipped"]
    assert not list(tmp_path.rglob("escaped.png"))
    with pytest.raises(ImportFailed, match="zip-slip"):
        import_sources(project, [z], strict=True, progress=False)


def test_strict_stops_at_missing_image_and_writes_nothing(project, copy_shared):
    src = copy_shared(f"{E}/import_update")
    with pytest.raises(ImportFailed, match=r"ecotaxa_m106_mn01_n2_sml.tsv:3: image file m106_mn01_n2_sml_1333.jpg "
                                           r"not found \(--strict: nothing was imported\)"):
        import_sources(project, [src], strict=True, progress=False)
    assert _state(project) == ([], 0, [])


def test_database_failure_rolls_back_and_removes_staged_images(project, copy_shared):
    src = copy_shared(IFCB)
    first = sorted(src.iterdir())[0]
    import_sources(project, [first], format="class-folders", progress=False)
    before = _state(project)
    with project.engine.begin() as c:  # a real constraint in the real database makes the commit fail
        c.execute(text("CREATE TRIGGER no_more BEFORE INSERT ON objects "
                       "WHEN NEW.object_id LIKE 'Strombidium%' BEGIN SELECT RAISE(ABORT, 'disk says no'); END"))
    with pytest.raises(ImportFailed, match="nothing was written.*disk says no"):
        import_sources(project, [src], format="class-folders", progress=False)
    assert _state(project) == before
    assert list(project.cache_dir.iterdir()) == []


def test_missing_source_and_unknown_content(project, tmp_path):
    with pytest.raises(ImportFailed, match="no such file or folder"):
        import_sources(project, [tmp_path / "nope"], progress=False)
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("hello")
    with pytest.raises(ImportFailed, match="found no images"):
        import_sources(project, [tmp_path / "empty"], progress=False)
    assert _state(project) == ([], 0, [])


def test_corrupt_nested_zip_is_a_failure_and_the_table_beside_it_is_imported(project, copy_shared):
    src, tsv = _ecotaxa_copy(copy_shared)
    (src / "more.zip").write_bytes(b"PK\x03\x04 this is not really a ZIP")
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (3, 1)
    assert r.failed_messages == [f"{src}/more.zip: not a readable ZIP file (File is not a zip file); ZIP skipped"]
    with pytest.raises(ImportFailed, match="more.zip: not a readable ZIP file"):
        import_sources(project, [src], strict=True, progress=False)


def test_one_bad_source_among_several_is_skipped(project, copy_shared, tmp_path):
    src, _ = _ecotaxa_copy(copy_shared)
    bad = tmp_path / "garbage.zip"
    bad.write_bytes(b"not a zip at all")
    r = import_sources(project, [bad, src], progress=False)
    assert (r.added, r.failed) == (3, 1)
    assert r.failed_messages == [f"{bad}: not a readable ZIP file (File is not a zip file); source skipped"]
    assert r.formats == {str(src): "ecotaxa"}
    with pytest.raises(ImportFailed, match="garbage.zip: not a readable ZIP file"):
        import_sources(project, [bad], progress=False)  # alone, it is the whole import: an error


def test_malformed_type_row_is_still_a_type_row_and_odd_markers_are_reported(project, copy_shared):
    src, tsv = _ecotaxa_copy(copy_shared)
    lines = tsv.read_text().splitlines()
    types = lines[1].split("\t")  # object_id, object_lat, object_lon, object_date, object_time
    types[1], types[2], types[3] = "[f", "f", "[x]"
    tsv.write_text("\n".join([lines[0], "\t".join(types)] + lines[2:]) + "\n")
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (3, 0)  # not "img_rank '[t]' is not a number" on every row
    assert r.notes == [f"{tsv}:2: column 'object_lat': type marker '[f' is not [t] or [f]; read as [f]",
                       f"{tsv}:2: column 'object_lon': type marker 'f' is not [t] or [f]; read as [f]",
                       f"{tsv}:2: column 'object_date': type marker '[x]' is not [t] or [f]; column left untyped"]
    with project.session() as s:
        cols = dict(s.get(Meta, "ecotaxa_columns").value)
    assert (cols["object_id"], cols["object_lat"], cols["object_lon"], cols["object_date"]) == ("t", "f", "f", "")
    with pytest.raises(ImportFailed, match="type marker '\\[f' is not"):
        import_sources(project, [src], strict=True, progress=False)
