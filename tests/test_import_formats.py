"""index.csv sources (folder and ZIP), format detection, tree routing and the CLI."""

from __future__ import annotations

import zipfile

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from morphocluster.cli import main
from morphocluster.importers import ImportFailed, detect, import_sources
from morphocluster.store import Object

IFCB = "ifcb-sample/training_data"


def _index_source(shared_data, folder):
    pngs = sorted((shared_data / IFCB).rglob("*.png"))[:6]
    (folder / "imgs").mkdir(parents=True)
    rows = ["object_id,path,note"]
    for i, p in enumerate(pngs):
        (folder / "imgs" / p.name).write_bytes(p.read_bytes())
        rows.append(f"obj{i},imgs/{p.name},{'first' if i == 0 else ''}")
    (folder / "index.csv").write_text("\n".join(rows) + "\n")
    return pngs


def test_index_csv_folder_and_zip(project, shared_data, tmp_path):
    src = tmp_path / "idx"
    pngs = _index_source(shared_data, src)
    assert detect(src) == "index-csv"
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (6, 0)
    with project.session() as s:
        objs = {o.object_id: o for o in s.scalars(select(Object))}
    assert sorted(objs) == [f"obj{i}" for i in range(6)]
    assert objs["obj0"].meta == {"note": "first"} and objs["obj1"].meta is None
    assert project.image_path(objs["obj2"].path).read_bytes() == pngs[2].read_bytes()
    z = tmp_path / "idx.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in src.rglob("*"):
            zf.write(f, f.relative_to(src).as_posix())
    assert detect(z) == "index-csv"
    r = import_sources(project, [z], progress=False)
    assert (r.added, r.skipped, r.failed) == (0, 6, 0)


def test_index_csv_bad_rows(project, shared_data, tmp_path):
    src = tmp_path / "idx"
    _index_source(shared_data, src)
    with open(src / "index.csv", "a") as f:
        f.write("obj9,imgs/missing.png,\nobj10,../../etc/passwd,\nobj11,imgs/x.png,a,b\n")
    r = import_sources(project, [src], progress=False)
    assert (r.added, r.failed) == (6, 3)
    idx = f"{src}/index.csv"
    assert r.failed_messages == [
        f"{idx}:9: path '../../etc/passwd' is empty or points outside the source folder; row skipped",
        f"{idx}:10: row has 4 fields but the header has 3; row skipped",
        f"{idx}:8: image file imgs/missing.png not found; row skipped",
    ]


def test_tree_zip_is_routed_to_tree_import(project, shared_data):
    tree = shared_data / "morphocluster-example" / "tree.zip"
    assert detect(tree) == "morphocluster-tree"
    # the example's images are not shipped: none of its objects is in the project
    with pytest.raises(ImportFailed):
        import_sources(project, [tree], progress=False)


def test_cli_import_and_info(tmp_path, shared_data):
    runner = CliRunner()
    proj = tmp_path / "p"
    assert runner.invoke(main, ["init", str(proj)]).exit_code == 0
    res = runner.invoke(main, ["import", str(proj), str(shared_data / IFCB), "--labels-from-folders", "-q"])
    assert res.exit_code == 0, res.output
    assert "added 30, skipped 0 (already in the project), failed 0" in res.output
    res = runner.invoke(main, ["import", str(proj), str(shared_data / "ecotaxa-samples" / "import_update")])
    assert res.exit_code == 3  # some rows failed, the rest is imported
    assert "image file m106_mn01_n2_sml_1333.jpg not found" in res.output
    res = runner.invoke(main, ["import", str(proj), str(shared_data / "ecotaxa-samples" / "import_test"),
                               "--strict"])
    assert res.exit_code == 0 and "added 3, skipped 8" in res.output
    res = runner.invoke(main, ["import", str(proj), str(shared_data / "ecotaxa-samples" / "import_update"),
                               "--strict"])
    assert res.exit_code == 1 and "--strict: nothing was imported" in res.output
    assert "row skipped" not in res.output  # nothing is skipped: the whole import stops
    res = runner.invoke(main, ["info", str(proj)])
    assert res.exit_code == 0 and "Objects: 43" in res.output
    assert "Strombidium-like" in res.output
    help_ = runner.invoke(main, ["import", "--help"]).output
    assert "--strict" in help_ and "one transaction" in help_


@pytest.mark.parametrize("sep,hint", [(";", "';'"), ("\t", "tabs")])
def test_cli_exit_1_when_every_row_failed_and_delimiter_hint(tmp_path, shared_data, sep, hint):
    runner = CliRunner()
    proj = tmp_path / "p"
    assert runner.invoke(main, ["init", str(proj)]).exit_code == 0
    src = tmp_path / "idx"
    _index_source(shared_data, src)
    index = src / "index.csv"
    index.write_text(index.read_text().replace(",", sep))
    res = runner.invoke(main, ["import", str(proj), str(src), "-q"])
    assert res.exit_code == 1  # not 3: nothing was imported
    found = sep.join(["object_id", "path", "note"])
    assert (f"{index}:1: header must name object_id and path, found {found!r}; "
            f"the columns seem separated by {hint}, but index.csv needs commas; file skipped") in res.output
    assert "Error: nothing was imported" in res.output
    assert "3 some rows failed" in runner.invoke(main, ["import", "--help"]).output
