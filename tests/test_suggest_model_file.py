"""A saved suggestion model brought into another project: its labels adopted, or refused
before anything changes when it was trained on other features."""

from __future__ import annotations

from click.testing import CliRunner
from sqlalchemy import func, select

from morphocluster.cli import main
from morphocluster.suggest import model_path, predict, train
from test_suggest import _labelled
from test_workflow_setup import CLASSES, wf  # noqa: F401


def test_model_file_into_a_new_project_adopts_its_labels(wf, tmp_path):
    from morphocluster.features.h5 import feature_path, load_features, set_active, write_features
    from morphocluster.project import Project
    from morphocluster.store import Node, Object

    p = wf.project
    _labelled(wf)
    train(p)
    new = Project.create(tmp_path / "new")
    ids, X = load_features(p)
    with p.session() as s:
        rows = [{"object_id": o.object_id, "path": o.path} for o in s.scalars(select(Object))]
    with new.transaction() as s:
        s.execute(Object.__table__.insert(), rows)
    write_features(feature_path(new, "pix16"), ids, X)
    set_active(new, "pix16")
    res = CliRunner().invoke(main, ["suggest", str(new.root), "--model", str(model_path(p)), "--predict"])
    assert res.exit_code == 0, res.output
    with new.session() as s:
        names = set(s.scalars(select(Node.name).where(Node.status == "approved")))
    assert names == set(CLASSES)
    preds = predict(new)
    assert len(preds) == len(ids) and (preds.node_id > 0).all()
    # the adopted model is kept (not retrained on the new project's few labels) and accepts
    res = CliRunner().invoke(main, ["suggest", str(new.root), "--accept-above", "0.0",
                                    "--label", CLASSES[0]])
    assert res.exit_code == 0 and "accepted" in res.output, res.output
    new.close()


def test_a_model_for_other_features_is_refused_before_anything_changes(wf, tmp_path):
    from morphocluster.features.h5 import feature_path, load_features, set_active, write_features
    from morphocluster.project import Project
    from morphocluster.store import Node, Object

    p = wf.project
    ids, X = load_features(p)
    made = {"extractor": "pixels", "preprocessing": {"invert": False, "size": 16}}
    write_features(feature_path(p, "pix16"), ids, X, attrs=made)
    _labelled(wf)
    train(p)
    new = Project.create(tmp_path / "new")
    with p.session() as s:
        rows = [{"object_id": o.object_id, "path": o.path} for o in s.scalars(select(Object))]
    with new.transaction() as s:
        s.execute(Object.__table__.insert(), rows)

    def run(name, X2, attrs):
        write_features(feature_path(new, name), ids, X2, attrs=attrs)
        set_active(new, name)
        return CliRunner().invoke(main, ["suggest", str(new.root), "--model", str(model_path(p)), "--predict"])

    res = run("inverted", X, {**made, "preprocessing": {"invert": True, "size": 16}})
    assert res.exit_code != 0 and "its preprocessing is" in res.output and '"invert": true' in res.output
    res = run("narrow", X[:, :-3], made)
    assert res.exit_code != 0 and "trained on 'pix16' features" in res.output and "'narrow', has" in res.output
    with new.session() as s:  # neither left a node or the model behind
        assert s.scalar(select(func.count()).select_from(Node)) == 0
    assert not model_path(new).exists()
    res = run("same", X, made)
    assert res.exit_code == 0 and "created a node for 3 of them" in res.output, res.output
    assert "give --user NAME" in res.output
    new.close()
