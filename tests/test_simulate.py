import json
from collections import Counter

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from morphocluster.simulate import Simulator, imported_truth, preset, reset_annotations
from morphocluster.store import Event, Node
from test_workflow_setup import wf  # noqa: F401


def _scrub(v):
    """Drop run times from event payloads: they differ between identical runs."""
    if isinstance(v, dict):
        return {k: _scrub(x) for k, x in v.items() if k not in ("reverse", "timings")}
    return v


def _run(project, truth, **over):
    reset_annotations(project)
    sim = Simulator(project, truth, preset("best", rounds=(12, 6), page_size=8, **over))
    res = sim.run().to_dict()
    with project.session() as s:
        events = [(e.action, _scrub(e.payload))
                  for e in s.scalars(select(Event).order_by(Event.id))]
    return sim, res, events


def test_show_reveals_and_click_counts(wf):
    truth = imported_truth(wf.project)
    sim = Simulator(wf.project, truth, preset("best"))
    pk = next(iter(truth))
    assert sim.seen == {} and sim.show([pk]) == [truth[pk]] and sim.seen == {pk: truth[pk]}
    sim.click("approve")
    sim.click("reject", 3)
    assert sim.total_clicks == 4 and sim.clicks == Counter(approve=1, reject=3)
    with pytest.raises(ValueError, match="unknown click kind"):
        sim.click("think")


@pytest.mark.parametrize("grow", ["direct", "pages"])
def test_unshown_truth_changes_nothing(wf, grow):
    p = wf.project
    truth = imported_truth(p)
    sim, res, events = _run(p, truth, grow=grow)
    assert res["labelled"] > 0 and sim.seen
    assert len(sim.seen) < len(truth)  # some objects were never shown
    lie = {pk: (lab if pk in sim.seen else "a lie") for pk, lab in truth.items()}
    sim2, res2, events2 = _run(p, lie, grow=grow)
    assert events2 == events
    assert sim2.clicks == sim.clicks and set(sim2.seen) == set(sim.seen)
    assert res2["labelled"] == res["labelled"]


@pytest.mark.parametrize("relabel", [False, True])
def test_clicks_match_the_actions_taken(wf, relabel):
    p = wf.project
    sim, res, events = _run(p, imported_truth(p), grow="direct", relabel=relabel)
    # one click each, but for events that only give objects their class by name
    acts = Counter(a for a, pl in events if not (a in ("remove", "grow_reject") and pl.get("moved")))
    moved = sum(pl.get("moved", 0) for a, pl in events if a in ("remove", "grow_reject", "grow_accept"))
    c = sim.clicks
    assert acts["approve"] == c["approve"] == c["name"]
    assert acts["dissolve"] == c["dissolve"]
    assert acts["remove"] == c["remove"] and acts["remove_from"] == c["remove_from"]
    assert acts["split"] == c["split"] and acts["grow_until"] == c["first_wrong"]
    assert acts["grow_reject"] == c["reject"] and acts["grow_accept"] == c["judge"]
    assert moved == c["relabel"]  # one click per object given its class by name
    assert not relabel or moved == 0  # (this small run removes none one by one: see below)
    assert res["clicks"] == sum(c.values()) and res["clicks_by_kind"] == dict(c)
    assert acts["approve"] > 0
    sim, res, events = _run(p, imported_truth(p), grow="pages")
    acts = Counter(a for a, _ in events)
    assert acts["grow_accept"] == sim.clicks["save"]
    assert res["whole_set_objects_per_click"] == pytest.approx(
        res["objects"] / (res["clicks"] + res["objects"] - res["labelled"]))


def test_relabel_gives_wrong_members_and_candidates_their_class(wf):
    """Members removed one by one and grow candidates rejected one by one go to their class."""
    from morphocluster.simulate.phases import grow_direct, validate_node
    from morphocluster.workflow import grow

    p = wf.project
    truth = imported_truth(p)
    a, b = (wf.by_class[c] for c in sorted(wf.by_class)[:2])
    sim = Simulator(p, truth, preset("best", rounds=(12,), page_size=20, relabel=True, direct_min_gain=1.0))
    nid = wf.make_node(a[:18] + b[:2])  # 90 % one class, seen whole: cleaned, not cut
    validate_node(sim, nid, 0)
    with p.session() as s:
        names = dict(s.execute(select(Node.id, Node.name)).all())
        events = [(e.action, e.payload) for e in s.scalars(select(Event).order_by(Event.id))]
    assert sim.clicks["relabel"] == 2 and sim.clicks["remove"] == 0
    assert [pl["moved"] for act, pl in events if act == "remove"] == [1, 1]
    for pk in b[:2]:
        assert names[_node_of(p, pk)] == truth[pk]
    before = sim.clicks["relabel"]
    grow_direct(sim, nid, names[nid])
    with p.session() as s:
        rej = [e.payload for e in s.scalars(select(Event).where(
            Event.action.in_(("grow_reject", "grow_accept")))) if e.payload.get("moved")]
    moved = [pk for pl in rej for pk, *_ in pl["reverse"]["moves"] if _node_of(p, pk) != nid]
    assert moved and sim.clicks["relabel"] - before == len(moved) == sum(pl["moved"] for pl in rej)
    assert all(_name(p, _node_of(p, pk)) == truth[pk] != names[nid] for pk in moved)
    assert not set(moved) & set(grow.candidates(p, nid, 0, 200).pks)


def _node_of(p, pk):
    from morphocluster.store import Membership

    with p.session() as s:
        return s.scalar(select(Membership.node_id).where(Membership.object_pk == pk))


def _name(p, nid):
    with p.session() as s:
        return s.get(Node, nid).name


def test_cli_simulates_on_a_copy_and_writes_results(wf, tmp_path):
    from morphocluster.cli import main

    p = wf.project
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["simulate", str(p.root), "--truth", "imported-labels",
                                  "--rounds", "3", "--min-cluster-size", "12", "--out", str(out)])
    assert r.exit_code == 0, r.output
    data = json.loads((out / "best.json").read_text())
    assert data["settings"]["rounds"] == [12, 8, 8]
    assert data["whole_set_objects_per_click"] > 0 and data["clicks"] > 0
    assert (out / "curve.png").stat().st_size > 1000 and "whole-set objects per click" in r.output
    with p.session() as s:  # the project itself was not touched
        assert s.scalar(select(func.count()).select_from(Node)) == 0
    # a copy starts from no annotations: the project's own nodes do not count for the annotator
    wf.make_node(wf.by_class["trichodesmium_puff"][:30], status="approved", name="trichodesmium_puff",
                 member_status="validated")
    r2 = CliRunner().invoke(main, ["simulate", str(p.root), "--rounds", "3", "--min-cluster-size",
                                   "12", "--out", str(out)])
    assert r2.exit_code == 0, r2.output
    assert json.loads((out / "best.json").read_text())["labelled"] == data["labelled"]
    r3 = CliRunner().invoke(main, ["simulate", str(p.root), "--in-place"])
    assert r3.exit_code != 0 and "already has nodes" in r3.output


def test_cleaning_plan_picks_the_cheapest_removal():
    from morphocluster.simulate.phases import cleaning_plan

    a, b = "a", "b"
    # two wrong objects early: remove them one by one (2 clicks)
    assert cleaning_plan([a, b, a, b, a, a, a, a], a, 8, 0.5) == (2.0, None, [1, 3])
    # a wrong tail: one "remove from here on" click, losing one good object
    cost, cut, ranks = cleaning_plan([a] * 6 + [b, b, a, b, b], a, 11, 0.5)
    assert (cut, ranks) == (6, []) and cost == pytest.approx(1.5)
    # unseen members behind the cut count as lost too
    assert cleaning_plan([a] * 6 + [b, b, a, b, b], a, 50, 0.5)[1] is None
    # nothing wrong: nothing to do
    assert cleaning_plan([a] * 5, a, 5, 0.5) == (0.0, None, [])
    # relabelling each wrong one labels it too: worth more than a cut that loses good ones
    assert cleaning_plan([a] * 6 + [b, a, b], a, 9, 0.5) == (1.5, 6, [])
    assert cleaning_plan([a] * 6 + [b, a, b], a, 9, 0.5, relabel=True) == (1.0, None, [6, 8])


def test_rounds_schedule():
    from morphocluster.cli.simulate_cmd import rounds_for

    assert rounds_for((64, 32, 16), None) == (64, 32, 16)
    assert rounds_for((64, 32, 16), 2) == (64, 32)
    assert rounds_for((32,), 4) == (32, 16, 8, 8)


def count_phase(sim, r):
    """A stand-in extra phase (used by name below): looks at nothing, pays one click."""
    sim.click("undo")


def test_extra_and_final_phases_by_name(wf):
    p = wf.project
    truth = imported_truth(p)
    sim = Simulator(p, truth, preset("best", rounds=(12, 6), grow="none",
                                     extra_phases=("test_simulate:count_phase",),
                                     final_phases=("test_simulate:count_phase",)))
    assert sim.phases[-1] is count_phase and sim.final_phases == [count_phase]
    sim.run()
    assert sim.clicks["undo"] == 3  # two rounds and the final phase
    with pytest.raises(ValueError, match="module:function"):
        Simulator(p, truth, preset("best", final_phases=("nonsense",)))
