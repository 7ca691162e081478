"""`morphocluster simulate --assist --learn`: the learn job inside the simulated annotator, on
real images, learning only from what the annotator labelled."""

from __future__ import annotations

import json

from click.testing import CliRunner

from morphocluster.cli import main
from morphocluster.features.extract import extract_features
from morphocluster.features.learn_data import learn_labels
from morphocluster.simulate import imported_truth
from test_features_helpers import import_small


def test_simulate_learn_reads_only_the_annotators_labels(project, shared_data, tmp_path):
    import_small(project, shared_data, tmp_path, per_class=30)  # 90 objects, labels imported
    extract_features(project, "efficientnet-lite0+morphometric", size=64, num_workers=0, progress=False)
    n = len(imported_truth(project))
    assert n == 90 and len(learn_labels(project, imported=True)) == 90
    out = tmp_path / "out"
    res = CliRunner().invoke(main, ["simulate", str(project.root), "--assist", "--learn",
                                    "--learn-epochs", "1", "--out", str(out)])
    assert res.exit_code == 0, res.output
    r = json.loads((out / "best+assist+learn.json").read_text())
    rows = r["learning"]
    assert [x["where"].split(" ", 2)[2] for x in rows] == ["before assist", "after assist"]
    assert rows[0]["where"].split()[1] == rows[1]["where"].split()[1]  # the same round
    for x in rows:
        # what the job trained and checked on is what the annotator had labelled, never the truth
        # of the objects it had not (all 90 are in the imported labels)
        assert 40 <= x["n_labels"] + x["n_heldout"] <= x["labelled_before"] < n
        assert x["cpu_seconds"] > 0 and x["steps"] >= 1
    assert r["learn_cpu_seconds"] == round(sum(x["cpu_seconds"] for x in rows), 1)
    assert "CPU time of learning (s)" in res.output and "best+assist+learn" in res.output
    # the simulation ran on a copy: the project itself has no learnt set and no sorting
    assert project.config["active_features"] == "efficientnet-lite0+morphometric"
    assert not list(project.features_dir.glob("learned-*"))
    assert learn_labels(project, imported=False) == {}
