"""The simulated annotator's assisted-sorting phase (simulate.assist) on real images."""

from sqlalchemy import select

from morphocluster.simulate import Simulator, imported_truth, preset, reset_annotations
from morphocluster.simulate.assist import AssistSettings, phases
from morphocluster.store import Event, Membership, Node
from test_workflow_setup import wf  # noqa: F401


def test_assist_phase_sorts_by_suggestions_and_pays_clicks(wf):
    p = wf.project
    truth = imported_truth(p)
    reset_annotations(p)
    settings = preset("best", rounds=(12,), page_size=8)
    base = Simulator(p, truth, settings).run().to_dict()
    reset_annotations(p)
    sim = Simulator(p, truth, settings, **phases(AssistSettings(min_gain=1.0, final_min_gain=1.0,
                                                         model={"unknown_factor": 10.0})))
    res = sim.run().to_dict()
    with p.session() as s:
        actions = [e.action for e in s.scalars(select(Event))]
        by_status = dict(s.execute(select(Membership.status, Membership.object_pk)
                                   .join(Node, Node.id == Membership.node_id)
                                   .where(Node.status == "approved")).all())
    n_screens = actions.count("suggest_screen")
    assert n_screens > 0 and res["clicks_by_kind"].get("confirm", 0) == n_screens
    assert res["clicks_by_kind"].get("accept", 0) == actions.count("suggest_accept")
    assert res["labelled"] > base["labelled"]
    assert "validated" in by_status
    # every object a screen showed was paid for: rejected ones one click each, and so are those
    # moved to their runner-up label or given their class by name (counted among the rejected
    # of the screen's label)
    screens = _events(p, "suggest_screen")
    rejected = sum(e.payload["rejected"] for e in screens)
    moved = sum(e.payload.get("moved", 0) for e in screens)
    clicks = res["clicks_by_kind"]
    assert moved > 0 and clicks.get("move", 0) + clicks.get("relabel", 0) == moved
    assert clicks.get("reject", 0) >= rejected - moved
    # each went to a node named with its true class, made on the spot where there was none
    with p.session() as s:
        names = dict(s.execute(select(Node.id, Node.name)).all())
    for e in screens:
        for pk, _, _, node, status in e.payload["reverse"]["moves"]:
            if node != e.payload["node"] and node is not None:
                assert status == "validated" and names[node] == truth[pk]


def test_without_relabel_wrong_suggestions_are_only_rejected(wf):
    p = wf.project
    truth = imported_truth(p)
    reset_annotations(p)
    settings = preset("best", rounds=(12,), page_size=8)
    st = AssistSettings(min_gain=1.0, final_min_gain=1.0, relabel=False, model={"unknown_factor": 10.0})
    res = Simulator(p, truth, settings, **phases(st)).run().to_dict()
    screens = _events(p, "suggest_screen")
    assert screens and res["clicks_by_kind"].get("relabel", 0) == 0
    assert res["clicks_by_kind"].get("move", 0) == sum(e.payload.get("moved", 0) for e in screens)


def _events(p, action):
    with p.session() as s:
        return list(s.scalars(select(Event).where(Event.action == action)))


def test_spend_budget_checks_each_band_before_accepting_it(wf):
    p = wf.project
    truth = imported_truth(p)
    reset_annotations(p)
    settings = preset("best", rounds=(12,), page_size=8)
    # relabel off: on so few objects, screens that relabel sort everything before the budget
    st = AssistSettings(min_gain=1.0, final_min_gain=1.0, final_passes=0, spend_budget=True, relabel=False,
                        spend_floor=0.0, min_band=3, error_budget=0.5, model={"unknown_factor": 10.0})
    sim = Simulator(p, truth, settings, **phases(st))
    res = sim.run().to_dict()
    with p.session() as s:
        events = [(e.action, e.payload) for e in s.scalars(select(Event).order_by(Event.id))]
    accepts = [i for i, (a, _) in enumerate(events) if a == "suggest_accept"]
    assert accepts and res["clicks_by_kind"]["accept"] == len(accepts)
    for i in accepts:  # a random-sample check of that node's band came right before
        action, payload = events[i - 1]
        assert action == "suggest_screen" and payload.get("band")
        assert payload["node"] == events[i][1]["node"]
    # the errors it expected to make stay within the budget it was given
    assert sim._assist_errors <= st.error_budget * res["objects"] + 1e-9
