"""`morphocluster learn` and features.learn: real projects of real PlanktonSet images, real
(tiny) training at 32 px, a few steps each.

Resumed after a stop and after a SIGKILL; a worse set refused, a better one switched to; only
the labels an annotator gave with imported=False; the CLI's summary and errors.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from morphocluster.cli import main
from morphocluster.features import load_features
from morphocluster.features.extract import extract_features
from morphocluster.features.learn import CHECKPOINT, LearnSettings, learn
from morphocluster.features.learn_data import learn_labels, split_holdout
from morphocluster.store import Membership, Node, Object
from test_features_helpers import CLASSES, import_small

pytestmark = pytest.mark.usefixtures("shared_data")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(**kw) -> LearnSettings:
    return LearnSettings(**{"size": 32, "batch_size": 8, "epochs": 1, **kw})


def base_features(p):
    extract_features(p, "efficientnet-lite0+morphometric", size=64, num_workers=0, progress=False)


def objects(p) -> dict[str, list[int]]:
    """Imported label -> Object.ids, and "" -> every Object.id in order; also object_ids."""
    with p.session() as s:
        rows = s.execute(select(Object.id, Object.object_id, Object.imported_label).order_by(Object.id)).all()
    by: dict = {"": [r[0] for r in rows], "object_id": [r[1] for r in rows]}
    for pk, _, lab in rows:
        by.setdefault(lab, []).append(pk)
    return by


def approve(p, name: str, validated: list[int], predicted: list[int] = (), status: str = "approved") -> int:
    """A node as sorting leaves it: validated members (the annotator saw them) and predicted ones."""
    with p.transaction() as s:
        node = Node(name=name, status=status, round=1, n_members=len(validated) + len(predicted),
                    members_version=1)
        s.add(node)
        s.flush()
        s.add_all(Membership(object_pk=pk, node_id=node.id, status="validated") for pk in validated)
        s.add_all(Membership(object_pk=pk, node_id=node.id, status="predicted") for pk in predicted)
        return node.id


def checkpoint(p) -> dict:
    import torch

    return torch.load(p.features_dir / CHECKPOINT, map_location="cpu", weights_only=False)


def assert_complete_set(p, name):
    ids, X = load_features(p, name)
    assert list(ids) == objects(p)["object_id"] and np.isfinite(X).all()
    assert not (p.features_dir / CHECKPOINT).exists()
    assert json.loads((p.features_dir / f"{name}.learn.json").read_text())["name"] == name


# ---------------------------------------------------------------- labels: only what was shown

def test_learn_labels_sorting_only_and_with_imported(project, shared_data, tmp_path):
    import_small(project, shared_data, tmp_path, per_class=4)
    by = objects(project)
    imported = learn_labels(project)
    assert imported == {pk: c for c in CLASSES for pk in by[c]}  # class folders, status validated
    assert learn_labels(project, imported=False) == {}  # nothing sorted: no label at all

    a, b = by[CLASSES[0]], by[CLASSES[1]]
    approve(project, "round-thing", validated=a[:3], predicted=a[3:])
    approve(project, "not-yet", validated=b[:2], status="candidate")  # not approved: not a label
    assert learn_labels(project, imported=False) == {pk: "round-thing" for pk in a[:3]}
    both = learn_labels(project)
    assert {pk: both[pk] for pk in a[:3]} == {pk: "round-thing" for pk in a[:3]}  # sorting wins
    assert {pk: both[pk] for pk in a[3:] + b} == {pk: imported[pk] for pk in a[3:] + b}

    train, held = split_holdout(both, 0.5, seed=0)
    assert set(train).isdisjoint(held) and {**train, **held} == both
    assert len(held) == sum(int(0.5 * n) for n in (3, 1, 4, 4))  # per label, rounded down


def test_imported_false_trains_on_the_sorting_labels_alone(project, shared_data, tmp_path):
    import_small(project, shared_data, tmp_path, per_class=4)
    by = objects(project)
    rep = learn(project, tiny(), imported=False, num_workers=0)
    assert rep["n_labels"] == 0 and rep["n_heldout"] == 0 and rep["n_pseudo"] == 0  # nothing sorted yet
    assert rep["switched"] is False and rep["check"]["new"] is None
    assert_complete_set(project, rep["name"])

    a = by[CLASSES[0]]
    approve(project, "sorted", validated=a[:3], predicted=a[3:])
    # a run on the imported labels, stopped; one on the sorting's alone does not go on with it
    stopped = learn(project, tiny(), num_workers=0, max_steps=1)
    assert stopped["stopped_at"] == 1 and len(checkpoint(project)["train"]) > 3
    stopped = learn(project, tiny(), imported=False, num_workers=0, max_steps=1)
    assert stopped["resumed_from"] == 0 and stopped["stopped_at"] == 1
    ck = checkpoint(project)
    assert {**ck["train"], **ck["held"]} == {pk: "sorted" for pk in a[:3]} and ck["pseudo"] == {}
    rep = learn(project, tiny(), imported=False, num_workers=0)
    assert rep["resumed_from"] == 1 and rep["n_labels"] + rep["n_heldout"] == 3
    assert rep["n_classes"] == 1 and rep["switched"] is False
    assert_complete_set(project, rep["name"])


# ---------------------------------------------------------------- resume

def test_resumes_after_sigkill_and_after_a_stop(project, shared_data, tmp_path):
    import_small(project, shared_data, tmp_path, per_class=4)
    base_features(project)
    ck = project.features_dir / CHECKPOINT
    code = ("import sys; from morphocluster.project import Project; "
            "from morphocluster.features.learn import LearnSettings, learn; "
            "learn(Project.open(sys.argv[1]), LearnSettings(size=32, batch_size=8, epochs=3), "
            "num_workers=0, checkpoint_every=1, progress=False)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(project.root)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    t0 = time.time()
    while not ck.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
        assert time.time() - t0 < 300, "no checkpoint written"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(60) == -signal.SIGKILL
    killed_at = checkpoint(project)["step"]
    assert killed_at >= 1
    assert not (project.features_dir / f"{checkpoint(project)['name']}.h5").exists()

    stopped = learn(project, tiny(epochs=3), num_workers=0, max_steps=2)
    assert stopped["resumed_from"] == killed_at and stopped["stopped_at"] == killed_at + 2
    rep = learn(project, tiny(epochs=3), num_workers=0)
    assert rep["resumed_from"] == killed_at + 2 and rep["steps"] == 9  # 3 epochs of 12 images, 4 + 4 labelled
    assert rep["name"] == stopped["name"] == "learned-1"
    assert rep["n_labels"] + rep["n_heldout"] == 12
    assert_complete_set(project, "learned-1")
    with h5py.File(project.features_dir / "learned-1.h5") as h:  # the active set had morphometrics
        assert str(h.attrs["extractor"]) == f"learned:{rep['weights']}+morphometric"


def test_default_length_is_about_steps_with_labels_or_without(tmp_path):
    """16,000 images: epochs of 500 steps (32 of the run + 32 labelled each) or of 250 (64 of
    the run), as many as make about STEPS steps (twice as many with labels was a bug)."""
    from types import SimpleNamespace

    from morphocluster.features.learn import STEPS
    from morphocluster.features.learn_train import train

    n = 16_000
    images = np.zeros((n, 32, 32), np.uint8)
    for labels, per_epoch in (({i: "a" if i % 2 else "b" for i in range(100)}, 500), ({}, 250)):
        run = {"train": labels, "pseudo": {}, "step": 0, "state": None, "name": "x"}
        out = train(SimpleNamespace(features_dir=tmp_path), run, images, np.arange(n), LearnSettings(),
                    "cpu", tmp_path / CHECKPOINT, lambda *a: None, None, max_steps=0)
        assert out is None and run["steps"] == run["epochs"] * per_epoch
        assert abs(run["steps"] - STEPS) <= per_epoch / 2, (run["steps"], STEPS)


# ---------------------------------------------------------------- the held-out check and the switch

def external_set(p, tmp_path, name, X):
    path = tmp_path / f"{name}.h5"
    with h5py.File(path, "w") as h:
        h["object_id"] = np.array(objects(p)["object_id"], dtype="S")
        h["features"] = X.astype(np.float32)
    extract_features(p, f"external:{path}", name=name, progress=False)
    from morphocluster.index import build_index

    build_index(p)


def index_files(p) -> dict:
    return {f.name: f.read_bytes() for f in sorted(p.index_dir.iterdir())}


def test_refuses_a_worse_set_and_switches_to_a_better_one(project, shared_data, tmp_path):
    import_small(project, shared_data, tmp_path, per_class=14)  # 42 labels: 21 held out
    by = objects(project)
    truth = np.array([[float(lab == c) for c in CLASSES] + [0.0] for lab in
                      (next(c for c in CLASSES if pk in by[c]) for pk in by[""])])
    truth += np.random.default_rng(0).normal(0, 0.01, truth.shape)
    external_set(project, tmp_path, "truth", truth)  # the true label, one-hot: nothing beats it
    before = index_files(project)
    assert project.config["active_features"] == "truth" and before

    rep = learn(project, tiny(batch_size=16), num_workers=0)
    ck = rep["check"]
    assert rep["n_heldout"] == 21 and ck["old"] == 1.0 and ck["new"] <= 1.0 and not ck["better"]
    assert rep["switched"] is False and "learned-1 is not better, truth stays active" in ck["reason"]
    assert project.config["active_features"] == "truth" and index_files(project) == before
    assert_complete_set(project, "learned-1")  # written, not used

    noise = np.random.default_rng(1).normal(size=(len(by[""]), 8))
    external_set(project, tmp_path, "noise", noise)
    rep = learn(project, tiny(batch_size=16), num_workers=0)
    ck = rep["check"]
    assert rep["name"] == "learned-2" and ck["new"] > ck["old"] and rep["switched"] is True
    assert project.config["active_features"] == "learned-2"
    meta = json.loads((project.index_dir / "learned-2.json").read_text())
    assert meta["features"] == "learned-2" and meta["n"] == 42
    assert (project.features_dir / "learned-1.h5").is_file()  # the refused set is still there


# ---------------------------------------------------------------- CLI

def test_cli_learn_prints_both_figures_and_resumes(project, shared_data, tmp_path):
    import re

    import_small(project, shared_data, tmp_path, per_class=14)
    base_features(project)
    runner = CliRunner()
    stopped = learn(project, tiny(batch_size=16), num_workers=0, max_steps=1)  # same as the options below
    opts = ["--size", "32", "--batch-size", "16", "--epochs", "1", "--workers", "0", "--no-switch"]
    res = runner.invoke(main, ["learn", str(project.root), *opts, "--name", "other"])
    assert res.exit_code == 1 and "an unfinished learn run writes 'learned-1'" in res.output

    res = runner.invoke(main, ["learn", str(project.root), *opts])
    assert res.exit_code == 0, res.output
    report = json.loads((project.features_dir / "learned-1.learn.json").read_text())
    ck = report["check"]
    assert report["resumed_from"] == stopped["stopped_at"] == 1 and "resumed from step 1" in res.output
    line = next(x for x in res.output.splitlines() if x.startswith("held-out accuracy:"))
    shown = [float(v) / 100 for v in re.findall(r"([\d.]+)% \(\d+ of 21\)", line)]
    assert shown == pytest.approx([ck["old"], ck["new"]], abs=6e-4)  # both figures
    assert "with efficientnet-lite0+morphometric (active)" in line and "with learned-1" in line
    assert "labels: 21 trained on (3 classes), 21 held out" in res.output
    assert "not switched" in res.output and re.search(r"time: [\d,]+ s wall, [\d,]+ s CPU", res.output)
    assert f"report: {project.root}/features/learned-1.learn.json" in res.output
    assert project.config["active_features"] == "efficientnet-lite0+morphometric"  # --no-switch
    assert_complete_set(project, "learned-1")


def test_cli_learn_errors_and_help(tmp_path):
    runner = CliRunner()
    assert runner.invoke(main, ["init", str(tmp_path / "empty")]).exit_code == 0
    res = runner.invoke(main, ["learn", str(tmp_path / "empty"), "--workers", "0"])
    assert res.exit_code == 1 and "no objects; import images first" in res.output
    res = runner.invoke(main, ["learn", str(tmp_path / "empty"), "--holdout", "2"])
    assert res.exit_code == 2 and "--holdout" in res.output
    res = runner.invoke(main, ["learn", str(tmp_path / "empty"), "--name", "../x", "--workers", "0"])
    assert res.exit_code == 1 and "is not a feature set name" in res.output
    res = runner.invoke(main, ["learn", str(tmp_path / "nowhere")])
    assert res.exit_code == 1 and "not a morphocluster project" in res.output

    code = ("import sys; from click.testing import CliRunner; from morphocluster.cli import main; "
            "r = CliRunner().invoke(main, ['learn', '--help']); print(r.output); "
            "print('HEAVY', [m for m in ('torch', 'faiss', 'sklearn') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO).stdout
    assert "HEAVY []" in out and "whole feature network" in out
    for opt in ("--name", "--epochs", "--size", "--batch-size", "--device", "--workers", "--invert",
                "--no-labels", "--no-imported", "--no-pseudo", "--holdout", "--no-switch", "--seed"):
        assert opt in out, opt
    assert "[default: 64" in out  # --size


def test_learn_params_checks_every_field():
    from morphocluster.features.learn_job import learn_arguments, learn_params

    form = {"name": " mine ", "epochs": "2", "size": "48", "batch_size": "16", "holdout": "0.3",
            "seed": "7", "device": "cpu", "invert": "on", "no_imported": "1", "no_pseudo": "",
            "no_switch": "0"}
    params = learn_params(form)
    assert params == {"name": "mine", "epochs": 2, "size": 48, "batch_size": 16, "holdout": 0.3,
                      "seed": 7, "device": "cpu", "invert": True, "no_imported": True}
    st, kw = learn_arguments(params)
    assert (st.epochs, st.size, st.batch_size, st.holdout, st.seed, st.invert) == (2, 48, 16, 0.3, 7, True)
    assert st.pseudo_confidence == LearnSettings().pseudo_confidence
    assert kw == {"name": "mine", "device": "cpu", "imported": False, "switch": True, "labels": None}
    st, kw = learn_arguments(learn_params({"no_labels": True}))
    assert kw["labels"] == {} and st.pseudo_confidence == 1.0  # self-supervised: no pseudo-labels either
    assert learn_params({"size": "", "epochs": None}) == {}
    for field, value, message in [("size", "abc", "size: 'abc' is not a whole number"),
                                  ("size", "16", "size: 16 is out of range (32 to 1024)"),
                                  ("epochs", "1.5", "not a whole number"),
                                  ("batch_size", True, "not a whole number"),
                                  ("holdout", "nan", "out of range (0 to 0.9)"),
                                  ("holdout", "x", "holdout: 'x' is not a number"),
                                  ("device", "tpu", "device: 'tpu' is not one of auto, cpu, cuda"),
                                  ("name", "../up", "is not a feature set name"),
                                  ("name", ".hidden", "is not a feature set name"),
                                  ("invert", "maybe", "invert: 'maybe' is not on or off")]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            learn_params({field: value})


def test_pseudo_labels_come_from_a_model_that_has_not_seen_the_held_out_ones(project, shared_data, tmp_path):
    from morphocluster import suggest as sg

    import_small(project, shared_data, tmp_path, per_class=6)
    base_features(project)
    by = objects(project)
    for c in CLASSES:
        approve(project, c, by[c][:5])
    held = {by[CLASSES[0]][0], by[CLASSES[1]][0]}
    assert sg.train(project, save=False).meta_["n_train"] == 15
    model = sg.train(project, save=False, exclude=held)
    assert model.meta_["n_train"] == 13 and model.meta_["n_validated"] == 13
