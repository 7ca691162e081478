"""Hostile and careless tables (issue 16, points 8-10): each is reported with file and line, and
nothing already stored is lost. The tables are built here from copies of the real samples."""

from __future__ import annotations

import csv
import shutil

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from morphocluster.cli import main
from morphocluster.importers import ImportFailed, import_sources
from morphocluster.store import Object

E = "ecotaxa-samples"
N2 = f"{E}/import_test/m106_mn01_n2_sml"  # 3 objects (lines 3-5), 89 columns, images beside


def _table(copy_shared, rel=N2):
    src = copy_shared(rel)
    tsv = next(src.glob("ecotaxa_*.tsv"))
    rows = [line.split("\t") for line in tsv.read_text(encoding="utf-8").splitlines()]
    return src, tsv, rows


def _write(tsv, rows):
    tsv.write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")


def _objects(project):
    with project.session() as s:
        return {o.object_id: o for o in s.scalars(select(Object))}


def _stored(project):
    """Everything an import must not change: ids, labels, statuses, metadata, image bytes."""
    return {k: (o.imported_label, o.imported_status, o.meta, project.image_path(o.path).read_bytes())
            for k, o in _objects(project).items()}


def test_a_row_one_field_short_is_refused_not_shifted(project, copy_shared):
    src, tsv, rows = _table(copy_shared)
    at = rows[0].index("object_area")
    del rows[3][at]  # line 4: object_area missing, object_mean's value would land in it
    _write(tsv, rows)
    with pytest.raises(ImportFailed, match=rf"{tsv.name}:4: row has 88 fields but the header has 89"):
        import_sources(project, [src], strict=True, progress=False)
    assert _objects(project) == {}
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (2, 1)
    assert r.failed_messages[0].startswith(f"{tsv}:4: row has 88 fields but the header has 89")
    assert "m106_mn01_n2_sml_1081" not in _objects(project)


def test_a_row_without_its_empty_last_columns_is_kept_with_a_warning(project, shared_data):
    """Real EcoTaxa data drops trailing empty fields (import_mixed_states: 91 fields, 92 columns)."""
    src = shared_data / E / "import_mixed_states"
    with pytest.raises(ImportFailed, match=r"_pls.tsv:3: row has 91 fields but the header has 92"):
        import_sources(project, [src], strict=True, progress=False)
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (1, 0)
    [note] = [n for n in r.notes if "91 fields" in n]
    assert "_pls.tsv:3:" in note and "acq_sub_part" in note


def test_a_stray_quote_stays_a_character_and_swallows_no_row(project, copy_shared):
    src, tsv, rows = _table(copy_shared)
    rows[2][rows[0].index("object_link")] = '"big one, see notes'
    _write(tsv, rows)
    with pytest.raises(ImportFailed, match=rf"{tsv.name}:3: .*quote"):
        import_sources(project, [src], strict=True, progress=False)
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (3, 0)
    assert any(n.startswith(f"{tsv}:3: ") and "quote" in n for n in r.notes)
    objs = _objects(project)
    assert objs["m106_mn01_n2_sml_1"].meta["object_link"] == '"big one, see notes'
    assert objs["m106_mn01_n2_sml_1081"].meta["object_area"] == "929.0"  # its own row, intact


def test_quoted_fields_of_real_exports_are_still_unquoted(project, shared_data):
    r = import_sources(project, [shared_data / E / "import_various_states"], progress=False)
    assert r.failed == 0 and not [n for n in r.notes if "quote" in n]
    assert "m106_mn01_n2_sml_1333" in _objects(project)  # written "m106_mn01_n2_sml_1333\t"


def test_index_csv_row_with_a_stray_quote_is_reported_and_the_next_rows_kept(project, shared_data, tmp_path):
    src = tmp_path / "idx"
    (src / "imgs").mkdir(parents=True)
    pngs = sorted((shared_data / "ifcb-sample/training_data").rglob("*.png"))[:5]
    lines = ["object_id,path,note"]
    for i, p in enumerate(pngs):
        shutil.copy(p, src / "imgs" / p.name)
        lines.append(f'o{i},imgs/{p.name},{chr(34) + "unfinished" if i == 1 else "ok"}')
    (src / "index.csv").write_text("\n".join(lines) + "\n")
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (4, 1)
    assert r.failed_messages[0].startswith(f"{src}/index.csv:3: ") and "quote" in r.failed_messages[0]
    assert sorted(_objects(project)) == ["o0", "o2", "o3", "o4"]


@pytest.mark.parametrize("name", ["object_area", "Object_Area"])
def test_a_duplicated_column_refuses_the_table(project, copy_shared, name):
    src, tsv, rows = _table(copy_shared)
    rows[0][rows[0].index("object_mean")] = name  # column 22 repeats column 21
    _write(tsv, rows)
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (0, 1)
    assert r.failed_messages == [f"{tsv}:1: column {name!r} appears twice in the header (columns 21 "
                                 "and 22); file skipped"]


def test_bad_numbers_and_impossible_dates_are_reported_and_left_out(project, copy_shared):
    src, tsv, rows = _table(copy_shared)
    h = rows[0]
    rows[2][h.index("object_area")] = "12,5"
    rows[3][h.index("object_date")] = "20231345"
    rows[4][h.index("object_time")] = "256199"
    _write(tsv, rows)
    with pytest.raises(ImportFailed, match=rf"{tsv.name}:3: column 'object_area'"):
        import_sources(project, [src], strict=True, progress=False)
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (3, 0)
    notes = "\n".join(r.notes)
    assert f"{tsv}:3: column 'object_area' (21): '12,5' is not a number" in notes
    assert f"{tsv}:4: column 'object_date' (4): '20231345' is not a date" in notes
    assert f"{tsv}:5: column 'object_time' (5): '256199' is not a time" in notes
    objs = _objects(project)
    assert "object_area" not in objs["m106_mn01_n2_sml_1"].meta
    assert objs["m106_mn01_n2_sml_1"].meta["object_mean"] == "175.529998779297"  # the rest is kept
    assert "object_date" not in objs["m106_mn01_n2_sml_1081"].meta
    assert "object_time" not in objs["m106_mn01_n2_sml_1111"].meta


def test_real_samples_raise_no_value_warnings(project, shared_data):
    for name in ("import_test", "import_sparse", "UVP6_example.zip", "import de categories ambigues"):
        r = import_sources(project, [shared_data / E / name], strict=True, progress=False)
        assert r.failed == 0 and not [n for n in r.notes if "is not a" in n], r.notes


def test_a_table_with_only_its_header_is_named(project, copy_shared):
    src, tsv, rows = _table(copy_shared)
    _write(tsv, rows[:2])
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (0, 1)
    assert r.failed_messages == [f"{tsv}: no object rows below the header and type rows; file skipped"]


def test_update_with_a_status_but_no_category_changes_nothing(project, copy_shared, tmp_path):
    src, tsv, rows = _table(copy_shared)
    import_sources(project, [src], progress=False)
    before = _stored(project)
    h = rows[0]
    rows[2][h.index("object_annotation_category")] = ""
    rows[2][h.index("object_annotation_status")] = "validated"
    bare = tmp_path / "bare"
    bare.mkdir()
    _write(bare / tsv.name, rows)  # the table alone, without its images
    r = import_sources(project, [bare], update=True, progress=False)
    assert f"{bare / tsv.name}:3: object 'm106_mn01_n2_sml_1': object_annotation_status 'validated' " \
           "without a category; status ignored" in r.notes
    assert _stored(project) == before
    assert _objects(project)["m106_mn01_n2_sml_1"].meta["object_annotation_status"] == "predicted"


def test_a_second_import_with_bad_rows_leaves_the_first_intact(project, copy_shared, tmp_path):
    src, tsv, rows = _table(copy_shared)
    import_sources(project, [src], progress=False)
    before = _stored(project)
    h = rows[0]
    rows[2][h.index("object_annotation_category")] = "copepod"  # changed label
    rows[2][h.index("object_link")] = '"oops'
    rows[3][h.index("object_area")] = "n/a"
    del rows[4][h.index("object_mean")]
    rows.append(["new_1"] + rows[2][1:])  # a new object with the same image
    _write(tsv, rows)
    for update in (False, True):
        with pytest.raises(ImportFailed):
            import_sources(project, [src], update=update, strict=True, progress=False)
        assert _stored(project) == before
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (1, 1) and r.notes
    after = _stored(project)
    assert {k: after[k] for k in before} == before


def test_cli_writes_every_problem_to_a_report_file(project, copy_shared, tmp_path):
    src, tsv, rows = _table(copy_shared)
    h = rows[0]
    for i in range(14):  # 14 rows whose image is missing
        rows.append([f"ghost_{i}"] + rows[2][1:])
        rows[-1][h.index("img_file_name")] = f"ghost_{i}.jpg"
    _write(tsv, rows)
    project.close()
    res = CliRunner().invoke(main, ["import", str(project.root), str(src), "-q"])
    assert res.exit_code == 3, res.output
    assert "... and 4 more" in res.output
    [path] = list((project.root / "logs").glob("import-*.tsv"))
    assert f"Full report: {path}" in res.output
    with open(path, encoding="utf-8", newline="") as f:
        got = list(csv.DictReader(f, delimiter="\t"))
    problems = [g for g in got if g["kind"] == "problem"]
    assert len(problems) == 14 and {g["file"] for g in problems} == {str(tsv)}
    assert sorted(int(g["line"]) for g in problems) == list(range(6, 20))
    assert all("ghost_" in g["message"] for g in problems)
    mine = tmp_path / "report.tsv"
    res = CliRunner().invoke(main, ["import", str(project.root), str(src), "-q", "--report", str(mine)])
    assert f"Full report: {mine}" in res.output
    assert sum(1 for line in mine.read_text().splitlines() if line.startswith("problem\t")) == 14
