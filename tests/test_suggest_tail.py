"""The final passes of assisted sorting in the long tail: a class first named on a screen gets
suggestions of its own in the next pass (simulate.assist, `final_retrain_new`)."""

from sqlalchemy import select

from morphocluster.simulate import Simulator, imported_truth, preset, reset_annotations
from morphocluster.simulate.assist import AssistSettings, phases
from morphocluster.store import Event, Node
from test_workflow_setup import wf  # noqa: F401


def _run(p, truth, retrain_new: bool):
    reset_annotations(p)
    logs, named = [], set()

    def before_final(sim, r):  # the classes named by clustering and validation
        with p.session() as s:
            named.update(s.scalars(select(Node.name).where(Node.status == "approved")))

    st = AssistSettings(final_retrain_new=retrain_new, passes=0, model={"unknown_factor": 10.0})
    kw = phases(st)
    kw["final_phases"].insert(0, before_final)
    res = Simulator(p, truth, preset("best", rounds=(12,), page_size=8), log=logs.append, **kw).run()
    with p.session() as s:
        screens = [(e.payload["node"], s.get(Node, e.payload["node"]).name)
                   for e in s.scalars(select(Event).where(Event.action == "suggest_screen").order_by(Event.id))]
    return res.to_dict(), logs, named, screens


def _first_new(screens, named) -> int:
    return next(i for i, (_, name) in enumerate(screens) if name not in named)


def test_a_class_named_on_a_screen_gets_screens_of_its_own_next(wf):
    p = wf.project
    truth = imported_truth(p)
    res, logs, named, screens = _run(p, truth, True)
    assert len(named) == 2 and len(set(truth.values()) - named) == 1  # one class left to name
    # the first screen (a named class) gave the third class its name, the pass stopped there,
    # and the retrained model's first screen is that class's own
    assert any("cut: new class named" in line for line in logs)
    assert screens[0][1] in named and _first_new(screens, named) == 1
    res0, logs0, named0, screens0 = _run(p, truth, False)
    assert named0 == named and not any("cut" in line for line in logs0)
    assert _first_new(screens0, named) > 1  # without: the pass goes on with the old labels
    assert res["whole_set_precision"] >= 0.95 and res0["whole_set_precision"] >= 0.95
