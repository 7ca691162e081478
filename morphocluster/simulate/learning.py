"""Learning features inside the simulated annotator (`morphocluster simulate --learn`).

The learn job (`features.learn`) runs where a real annotator would start it: once something is
sorted, i.e. in the first round after whose validation and growth the annotator has given at
least twice `learn_check.MIN_HELD` labels, of two classes or more (the fewest the held-out
check runs on): round 0 on a large set, a later one where classes are too small for the first
round's clusters. It runs again after that round's first pass over the suggestions (`POINTS`).
It reads only the labels the annotator gave (never the imported truth: `imported=False`),
switches the project to the new features when its held-out check says so, and costs no
clicks; its wall and CPU time are recorded in `sim.learning` and reported.
"""

from __future__ import annotations

import time

POINTS = ("before_assist", "after_assist")  # of the first round with enough sorted labels


def learn_now(sim, where: str, settings=None, name: str | None = None) -> dict:
    """Run the learn job on the project as the annotator has left it; return its report."""
    from ..features.learn import learn
    from ..workflow import grow, outcomes

    t = time.perf_counter()
    labelled = sim.measure()[0]  # objects the annotator has labelled: all the job may learn from
    rep = learn(sim.project, settings, name=name, imported=False, progress=False)
    if rep["switched"]:
        grow.clear_cache()
        outcomes.clear_cache(sim.project)
    row = {"where": where, "clicks_before": sim.total_clicks, "labelled_before": labelled,
           "name": rep["name"],
           "switched": rep["switched"], "heldout_new": rep["check"]["new"],
           "heldout_old": rep["check"]["old"], "n_labels": rep["n_labels"],
           "n_heldout": rep["n_heldout"], "n_pseudo": rep["n_pseudo"], "steps": rep["steps"],
           "seconds": round(time.perf_counter() - t, 1), "cpu_seconds": rep["cpu_seconds"]}
    sim.learning.append(row)
    sim.log(f"learn ({where}): {rep['check'].get('reason')}; {row['seconds']:.0f} s, "
            f"{row['cpu_seconds']:.0f} CPU s")
    return rep


def with_learning(extra: dict, assist: bool, epochs: int | None = None) -> dict:
    """The Simulator keywords `extra` with the learn job's phases put around the assist phase
    (or after validation and growth, without it)."""
    from ..features.learn import LearnSettings

    lp = phases(LearnSettings(epochs=epochs), points=None if assist else ("before_assist",))
    return {**extra, "extra_phases": lp["before"] + list(extra.get("extra_phases", [])) + lp["after"]}


def phases(settings=None, points=None, min_labels: int | None = None) -> dict:
    """{"before": [...], "after": [...]}: phases to put before and after the assist phase."""
    from ..features.learn_check import MIN_HELD
    from ..features.learn_data import learn_labels

    need = 2 * MIN_HELD if min_labels is None else min_labels  # a held-out check can run
    state = {"round": None}

    def due(sim, r, where) -> bool:
        if state["round"] is None and where == "before_assist":
            lab = learn_labels(sim.project, imported=False)
            if len(lab) >= need and len(set(lab.values())) >= 2:
                state["round"] = r
        return state["round"] == r

    out = {"before": [], "after": []}
    for where in points or POINTS:
        def phase(sim, r, where=where):
            if due(sim, r, where):
                learn_now(sim, f"round {r} {where.replace('_', ' ')}", settings)

        phase.__name__ = f"learn_{where}"
        out["before" if where == "before_assist" else "after"].append(phase)
    return out
