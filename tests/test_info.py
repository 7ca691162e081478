"""`morphocluster info` on a project holding the bundled PlanktonSet sample."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from morphocluster.cli import main
from morphocluster.importers import import_sources
from morphocluster.info import format_summary, summarize

SAMPLE = Path(__file__).resolve().parent.parent / "data" / "planktonset-sample"


def test_summary_of_bundled_sample(project):
    r = import_sources(project, [SAMPLE], labels_from_folders=True, progress=False)
    assert (r.added, r.failed) == (300, 0)
    s = summarize(project)
    assert s["objects"] == 300
    assert sum(s["image_sizes_px"].values()) == 300
    assert s["imported_labels"] == {c.name: 50 for c in SAMPLE.iterdir() if c.is_dir()}
    assert s["imported_statuses"] == {"validated": 300}
    assert s["imports"] == 1 and s["last_imports"][0]["added"] == 300
    assert s["last_imports"][0]["format"] == "class-folders"
    text = format_summary(s)
    assert "Objects: 300" in text and "Imported labels: 6 categories" in text
    assert "class-folders: added 300, skipped 0, failed 0" in text


def test_info_cli_json_and_errors(tmp_path):
    runner = CliRunner()
    proj = tmp_path / "p"
    runner.invoke(main, ["init", str(proj)])
    runner.invoke(main, ["import", str(proj), str(SAMPLE / "trichodesmium_puff"), "-q"])
    res = runner.invoke(main, ["info", str(proj), "--json"])
    assert res.exit_code == 0
    data = json.loads(res.output)
    assert data["objects"] == 50 and data["imported_labels"] == {}
    not_proj = tmp_path / "empty"
    not_proj.mkdir()
    res = runner.invoke(main, ["info", str(not_proj)])
    assert res.exit_code == 1 and "not a morphocluster project" in res.output
