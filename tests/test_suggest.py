"""Suggestion model and the sort-suggestions workflow on a small project of real images."""

import numpy as np
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from morphocluster.cli import main
from morphocluster.store import Event, Membership, Node, Rejection
from morphocluster.suggest import SuggestError, SuggestionModel, load_model, model_path, predict, train
from morphocluster.workflow import WorkflowError, undo
from morphocluster.workflow import suggest as ws
from test_workflow_setup import CLASSES, member_set, wf  # noqa: F401


def _labelled(wf, n=20):
    """Approve one node per class holding its first n objects (validated)."""
    return [wf.make_node(wf.by_class[c][:n], status="approved", name=c, member_status="validated")
            for c in CLASSES]


def _status(p, pks):
    with p.session() as s:
        return dict(s.execute(select(Membership.object_pk, Membership.status)
                              .where(Membership.object_pk.in_(list(pks)))).all())


@pytest.fixture(autouse=True)
def _fresh_state():
    yield
    ws._STATES.clear()


def test_model_fits_calibrates_and_round_trips(tmp_path):
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(3, 32)) * 3
    y = np.repeat(np.arange(3), 60)
    X = (centres[y] + rng.normal(size=(180, 32))).astype(np.float32)
    m = SuggestionModel(n_components=16, cv=3).fit(X, np.array(["a", "b", "c"])[y])
    assert list(m.classes_) == ["a", "b", "c"]
    assert 0.05 < m.temperature_ < 20
    P = m.predict_proba(X)
    assert P.shape == (180, 3) and np.allclose(P.sum(1), 1, atol=1e-5)
    assert (m.predict(X) == np.array(["a", "b", "c"])[y]).mean() > 0.95
    assert len(m.oof_confidence_) == 180  # every object held out once
    prec, n = m.precision_at("a", 0.5)
    assert n > 0 and 0.9 <= prec <= 1.0
    # far from every class: flagged by the distance ratio
    far = (centres[0] + 40 * rng.normal(size=(5, 32))).astype(np.float32)
    assert (m.distance_ratio(far, np.zeros(5, int)) > m.unknown_factor).all()
    path = m.save(tmp_path / "m.npz")
    m2 = SuggestionModel.load(path)
    assert np.allclose(m2.predict_proba(X), P, atol=1e-5)
    with pytest.raises(ValueError):
        SuggestionModel().fit(X, np.zeros(len(X)))  # one label only


def test_more_labels_of_one_class_leave_the_others_references_and_radius_alone():
    """Else confirming one label's screen turned other labels' suggestions 'unknown'."""
    rng = np.random.default_rng(2)
    centres = rng.normal(size=(3, 32)) * 3
    y = np.repeat(np.arange(3), 300)
    X = (centres[y] + rng.normal(size=(900, 32))).astype(np.float32)
    names = np.array(["a", "b", "c"])
    from morphocluster.suggest.model import fit_projection

    proj = fit_projection(X, 16, 0)[:2]  # fixed per feature set, as `suggest.train` keeps it
    first = SuggestionModel(n_components=16, cv=3).fit(X[100:], names[y[100:]], projection=proj)
    more = SuggestionModel(n_components=16, cv=3).fit(X, names[y], projection=proj)
    for c in (1, 2):  # 'b' and 'c' kept their objects; 'a' got 100 more
        assert np.allclose(first.ref_[first.ref_class_ == c], more.ref_[more.ref_class_ == c], atol=1e-4)
        assert first.radius_[c] == pytest.approx(more.radius_[c], rel=0.01)


def test_train_predict_on_project(wf):
    p = wf.project
    with pytest.raises(SuggestError, match="at least 2 labels"):
        train(p)
    _labelled(wf)
    m = train(p)
    assert model_path(p).is_file() and set(m.classes_) == set(CLASSES)
    preds = predict(p, load_model(p))
    labelled = {pk for c in CLASSES for pk in wf.by_class[c][:20]}
    assert set(preds.pks.tolist()).isdisjoint(labelled)
    assert len(preds) == 3 * 40 - len(labelled)
    truth = {pk: c for c in CLASSES for pk in wf.by_class[c]}
    acc = np.mean([truth[int(pk)] == lab for pk, lab in zip(preds.pks, preds.label)])
    assert acc > 0.6
    assert ((preds.confidence > 0) & (preds.confidence <= 1)).all()
    assert (preds.node_id > 0).all()
    # no copy of all objects' projection is kept: a new process predicts the same from the
    # saved model and the working matrix
    import morphocluster.suggest as sg
    from morphocluster.features import matrix

    assert not (p.cache_dir / "suggest_projection.npz").exists()
    sg._PROJECTIONS.clear()
    matrix._CACHE.clear()
    again = predict(p, load_model(p))
    assert np.array_equal(again.label, preds.label)
    assert np.allclose(again.confidence, preds.confidence, atol=1e-6)


def test_screen_reject_confirm_and_undo(wf):
    p = wf.project
    nodes = _labelled(wf)
    st = ws.refresh(p, wait=True)
    assert st is not None and ws.overview(p, st)
    nid = nodes[0]
    scr = ws.screen(p, nid, 0, 50)
    assert scr.pks and scr.confidence == sorted(scr.confidence, reverse=True)
    assert len(scr.pks) <= 50
    bad, good = scr.pks[:2], scr.pks[2:]
    before = member_set(p, nid)
    ws.decide(p, wf.A, nid, scr.pks, bad, members_version=scr.members_version)
    assert member_set(p, nid) == before | set(good)
    assert set(_status(p, good).values()) == {"validated"}
    with p.session() as s:
        assert set(s.scalars(select(Rejection.object_pk).where(Rejection.node_id == nid))) == set(bad)
        assert s.scalar(select(func.count()).select_from(Event).where(
            Event.action == "suggest_screen")) == 1
    # rejected objects never come back for that label, even after retraining
    st = ws.refresh(p, wait=True)
    preds = st.preds
    for pk in bad:
        i = np.flatnonzero(preds.pks == pk)
        assert len(i) == 1 and preds.label[i[0]] != CLASSES[0]
    assert not set(bad) & set(ws.screen(p, nid, 0, 50).pks)
    # one undo puts the screen back
    undo.undo_last(p, wf.A)
    assert member_set(p, nid) == before
    with p.session() as s:
        assert s.scalar(select(func.count()).select_from(Rejection)) == 0


def test_runner_up_and_moving_an_object_to_it(wf):
    p = wf.project
    nodes = _labelled(wf)
    st = ws.refresh(p, wait=True)
    pr = st.preds
    assert pr.runner_up is not None and len(pr.runner_up) == len(pr)
    assert all(r in CLASSES and r != lab for r, lab in zip(pr.runner_up, pr.label))
    nid, other = nodes[0], nodes[1]
    scr = ws.screen(p, nid, 0, 50)
    assert len(scr.alternatives) == len(scr.pks)
    node_of = dict(zip(CLASSES, nodes))
    for pk, alt in zip(scr.pks, scr.alternatives):  # runner-up label, its name and its node
        r = pr.runner_up[np.flatnonzero(pr.pks == pk)[0]]
        assert alt == (r, r, node_of[r])
    move = [pk for pk, alt in zip(scr.pks, scr.alternatives) if alt[2] == other][:2]
    assert move, "no object of this screen has the second label as its runner-up"
    bad = [pk for pk in scr.pks if pk not in move][:1]
    before, before_other = member_set(p, nid), member_set(p, other)
    r = ws.decide(p, wf.A, nid, scr.pks, bad, members_version=scr.members_version,
                  moved={pk: other for pk in move})
    assert r == {"confirmed": len(scr.pks) - len(move) - 1, "rejected": 1, "moved": len(move), "new_nodes": 0}
    assert member_set(p, other) == before_other | set(move)
    assert set(_status(p, move).values()) == {"validated"}
    assert not (member_set(p, nid) - before) & (set(move) | set(bad))
    with p.session() as s:  # never suggested for the first label again
        assert set(s.scalars(select(Rejection.object_pk).where(Rejection.node_id == nid))) == set(bad) | set(move)
        ev = s.scalars(select(Event).where(Event.action == "suggest_screen")).one()
        assert ev.payload["moved"] == len(move) and ev.payload["rejected"] == len(move) + 1
    # one undo puts both nodes back
    undo.undo_last(p, wf.A)
    assert member_set(p, nid) == before and member_set(p, other) == before_other
    with pytest.raises(WorkflowError, match="among those shown"):
        ws.decide(p, wf.A, nid, scr.pks[:3], [], moved={scr.pks[4]: other})
    cand = wf.make_node(wf.by_class[CLASSES[2]][30:32])  # a candidate, not a label yet
    with pytest.raises(WorkflowError):
        ws.decide(p, wf.A, nid, scr.pks[:3], [], moved={scr.pks[0]: cand})
    assert member_set(p, nid) == before and member_set(p, other) == before_other


def test_labelling_a_wrong_suggestion_by_name(wf):
    """A wrong object can be given any label by name: an existing node's, or a new one."""
    p = wf.project
    nodes = _labelled(wf)
    nid, other = nodes[0], nodes[1]
    scr = ws.screen(p, nid, 0, 50, state=ws.refresh(p, wait=True))
    a, b, c = scr.pks[:3]
    before, before_other = member_set(p, nid), member_set(p, other)
    with p.session() as s:
        n_nodes = s.scalar(select(func.count()).select_from(Node))
    r = ws.decide(p, wf.A, nid, scr.pks, [], members_version=scr.members_version,
                  moved={a: f" {CLASSES[1]} ", b: "salpa", c: "salpa"})
    assert r["moved"] == 3 and r["new_nodes"] == 1 and r["rejected"] == 0
    assert member_set(p, other) == before_other | {a}
    with p.session() as s:
        salpa = s.scalars(select(Node).where(Node.name == "salpa")).one()
        assert salpa.status == "approved" and salpa.approved_at is not None
        assert set(s.scalars(select(Membership.object_pk).where(Membership.node_id == salpa.id))) == {b, c}
        assert set(s.scalars(select(Rejection.object_pk).where(Rejection.node_id == nid))) == {a, b, c}
    assert set(_status(p, [a, b, c]).values()) == {"validated"}
    st = ws.refresh(p, wait=True)  # the new label is learnt like any other
    assert "salpa" in list(st.model.classes_)
    undo.undo_last(p, wf.A)  # one undo takes the new node away too
    assert member_set(p, nid) == before and member_set(p, other) == before_other
    with p.session() as s:
        assert s.scalar(select(func.count()).select_from(Node).where(Node.status != "deleted")) == n_nodes
        assert not s.scalars(select(Node).where(Node.name == "salpa", Node.status == "approved")).all()
    for bad, msg in (("  ", "not a label name"), ("#3", "not a label name")):
        with pytest.raises(WorkflowError, match=msg):
            ws.decide(p, wf.A, nid, scr.pks[:3], [], moved={a: bad})
    assert member_set(p, nid) == before
    # the screen's own label typed on one of its objects: confirmed with the others
    r = ws.decide(p, wf.A, nid, scr.pks[:3], [], moved={a: CLASSES[0].upper()})
    assert r["confirmed"] == 3 and r["moved"] == 0 and set(scr.pks[:3]) <= member_set(p, nid)


def test_label_for_name_takes_paths_short_names_and_refuses_ambiguous_ones(wf):
    from morphocluster.workflow.adopt import label_for_name

    p = wf.project
    cop = wf.make_node(wf.by_class[CLASSES[0]][5:6], status="approved", name="copepoda")
    fish = wf.make_node(wf.by_class[CLASSES[1]][5:6], status="approved", name="fish")
    egg1 = wf.make_node(wf.by_class[CLASSES[0]][:2], status="approved", name="egg", parent_id=cop)
    wf.make_node(wf.by_class[CLASSES[1]][:2], status="approved", name="egg", parent_id=fish)
    wf.make_node(wf.by_class[CLASSES[2]][:2], status="approved", name="calanoida", parent_id=cop)
    with p.session() as s:
        have, lab = label_for_name(s, "copepoda>egg")
        assert lab == "copepoda>egg" and have[lab] == egg1
        assert label_for_name(s, "calanoida")[1] == "copepoda>calanoida"
        assert label_for_name(s, "salpa")[1] == "salpa"  # not there yet: made when used
        assert label_for_name(s, "Calanoida")[1] == "copepoda>calanoida"  # case aside
        assert label_for_name(s, "COPEPODA>EGG")[1] == "copepoda>egg"
        with pytest.raises(WorkflowError, match="names several labels"):
            label_for_name(s, "egg")


def test_accept_above_sets_predicted(wf):
    p = wf.project
    nodes = _labelled(wf)
    st = ws.refresh(p, wait=True)
    nid = nodes[1]
    prev = ws.accept_preview(p, nid, 0.0, st)
    assert prev["n"] > 0 and prev["precision"] is not None
    n = ws.accept_above(p, wf.A, nid, 0.0, state=st)
    assert n == prev["n"]
    added = member_set(p, nid) - set(wf.by_class[CLASSES[1]][:20])
    assert len(added) == n and set(_status(p, added).values()) == {"predicted"}
    assert ws.accept_preview(p, nid, 0.0, st)["n"] == 0
    undo.undo_last(p, wf.A)
    assert member_set(p, nid) == set(wf.by_class[CLASSES[1]][:20])


def test_decide_refuses_bad_input(wf):
    p = wf.project
    nodes = _labelled(wf)
    ws.refresh(p, wait=True)
    scr = ws.screen(p, nodes[0])
    with pytest.raises(WorkflowError, match="among those shown"):
        ws.decide(p, wf.A, nodes[0], scr.pks[:3], scr.pks[3:5])
    with pytest.raises(WorkflowError, match="already belong"):
        ws.decide(p, wf.A, nodes[0], wf.by_class[CLASSES[1]][:2])


def test_cli_train_predict_accept_and_model_file(wf, tmp_path):
    p = wf.project
    _labelled(wf)
    r = CliRunner()
    res = r.invoke(main, ["suggest", str(p.root), "--train", "--predict", "--model",
                          str(tmp_path / "m.npz"), "--out", str(tmp_path / "pred.csv")])
    assert res.exit_code == 0, res.output
    assert "trained on 60 objects" in res.output and (tmp_path / "m.npz").is_file()
    rows = (tmp_path / "pred.csv").read_text().splitlines()
    assert rows[0] == "object_id,label,node_id,confidence,unknown" and len(rows) == 61
    res = r.invoke(main, ["suggest", str(p.root), "--accept-above", "0.0", "--label", CLASSES[2]])
    assert res.exit_code == 0, res.output
    assert "accepted" in res.output and "estimated precision" in res.output
    res = r.invoke(main, ["suggest", str(p.root), "--accept-above", "0.5"])
    assert res.exit_code != 0 and "--label" in res.output
    res = r.invoke(main, ["suggest", str(p.root), "--model", str(tmp_path / "nope.npz"), "--predict"])
    assert res.exit_code != 0 and "nope.npz" in res.output
    assert not ws.far_too(p)
    res = r.invoke(main, ["suggest", str(p.root), "--far-too"])
    assert res.exit_code == 0 and "far from every label: suggested too" in res.output and ws.far_too(p)
    assert "of them far from every label (suggested too: --far-too)" in res.output  # the summary too
    r.invoke(main, ["suggest", str(p.root), "--no-far-too"])
    assert not ws.far_too(p)


def test_sample_check_of_a_band_then_accept(wf):
    p = wf.project
    nodes = _labelled(wf)
    st = ws.refresh(p, wait=True)
    nid = nodes[2]
    n_all = ws.accept_preview(p, nid, 0.0, st)["n"]
    scr = ws.screen(p, nid, 0, 5, state=st, band=(0.0, 2.0))
    assert len(scr.pks) == min(5, n_all) and scr.total == n_all
    assert scr.confidence == sorted(scr.confidence, reverse=True)
    truth = {pk: c for c in CLASSES for pk in wf.by_class[c]}
    wrong = [pk for pk in scr.pks if truth[pk] != CLASSES[2]]
    ws.decide(p, wf.A, nid, scr.pks, wrong, band=(0.0, 2.0))
    prev = ws.accept_preview(p, nid, 0.0, st)
    assert prev["n_checked"] == len(scr.pks)
    assert prev["checked"] == pytest.approx(1 - len(wrong) / len(scr.pks))
    assert prev["n"] == n_all - len(scr.pks)
    # a band below does not count the check made above it
    assert ws.accept_preview(p, nid, 0.0, st, below=0.0)["n_checked"] == 0
    n = ws.accept_above(p, wf.A, nid, 0.0, state=st)
    assert n == prev["n"] and ws.accept_preview(p, nid, 0.0, st)["n_checked"] == 0


def test_screen_outcomes_and_checks_survive_a_restart_and_follow_undo(wf):
    p = wf.project
    nodes = _labelled(wf)
    st = ws.refresh(p, wait=True)
    nid = nodes[1]
    scr = ws.screen(p, nid, 0, 6, state=st, band=(0.0, 2.0))
    ws.decide(p, wf.A, nid, scr.pks, scr.pks[:2], band=(0.0, 2.0))
    h = ws.history(p)
    assert sorted(h.right) == [0.0, 0.0] + [1.0] * (len(scr.pks) - 2)
    assert set(h.node) == {nid} and np.all((h.confidence >= 0) & (h.confidence <= 1))
    checked = ws.accept_preview(p, nid, 0.0, st)
    assert checked["n_checked"] == len(scr.pks)
    # a new server process (nothing in memory) reads the same from the event log
    ws.forget(p)
    assert ws.checked_precision(p, nid, 0.0) == (checked["checked"], len(scr.pks))
    assert len(ws.history(p).node) == len(scr.pks)
    conf = ws.history(p).confidence
    # the screens' outcomes move the estimate away from the model's own confidence
    assert not np.allclose(ws.field_precision(p, conf, nid), conf)
    # undoing the screen takes its outcomes back
    undo.undo_last(p, wf.A)
    assert len(ws.history(p).node) == 0 and ws.checked_precision(p, nid, 0.0) == (None, 0)
    assert np.allclose(ws.field_precision(p, conf, nid), conf)


def test_resolve_label_by_path_or_unique_last_name():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(90, 8)).astype(np.float32)
    y = np.repeat(["copepoda>calanoida", "copepoda>egg", "fish>egg"], 30)
    X[y == "copepoda>egg"] += 3
    m = SuggestionModel(n_components=4, cv=2).fit(X, y)
    assert m.resolve_label("copepoda>egg") == "copepoda>egg"
    assert m.resolve_label(" calanoida ") == "copepoda>calanoida"
    with pytest.raises(ValueError, match="names several labels"):
        m.resolve_label("egg")
    with pytest.raises(ValueError, match="is not one of the model's labels"):
        m.resolve_label("salpa")


def test_the_same_labels_stored_in_another_order_give_the_same_model(wf):
    """Nodes made in another order (other ids, so the database may return members in another
    order) give the same model: its cross-validation folds do not depend on storage order."""
    from morphocluster.simulate.reset import reset_annotations

    p = wf.project
    _labelled(wf)
    first = train(p)
    reset_annotations(p)
    for c in reversed(CLASSES):
        wf.make_node(wf.by_class[c][:20], status="approved", name=c, member_status="validated")
    again = train(p)
    assert list(again.classes_) == list(first.classes_)
    assert np.array_equal(again.oof_confidence_, first.oof_confidence_)
    assert np.array_equal(again.coef_, first.coef_) and again.temperature_ == first.temperature_
