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


def test_info_tells_what_an_interrupted_run_left(project):
    """A features run stopped part way, an index behind the objects, a job whose process died."""
    from morphocluster.features.extract import extract_features
    from morphocluster.index import build_index
    from morphocluster.store import Job

    import_sources(project, [SAMPLE / "trichodesmium_puff"], progress=False)
    extract_features(project, "morphometric", name="m", num_workers=0, progress=False)
    build_index(project)
    assert "Index: flat over 50 objects" in format_summary(summarize(project))
    import_sources(project, [SAMPLE / "acantharia_protist"], progress=False)
    extract_features(project, "pixels", name="px", batch_size=8, num_workers=0, progress=False,
                     limit=16, activate=False)
    with project.transaction() as s:
        s.add(Job(kind="cluster", state="running", message="round 2"))
    text = format_summary(summarize(project))
    assert "Objects without features: 50 (imported since): run `morphocluster features`" in text
    assert "Index: flat over 50 objects" in text and "behind" not in text
    assert "Half-done feature set: px (16 of 100 objects done); `morphocluster features` resumes it" in text
    assert "Job 1 (cluster): interrupted (started " in text and "last said: round 2" in text
    assert "the process that ran it is gone, so it will not finish" in text
    extract_features(project, "morphometric", name="m", num_workers=0, progress=False)  # appends
    text = format_summary(summarize(project))
    assert "without features" not in text
    assert "Index: flat over 50 objects; behind the features: run `morphocluster index` again" in text
