"""Learning features inside the simulated annotator (`morphocluster simulate --learn`).

The learn job (`features.learn`) runs where a real annotator would start it: after the first
round's clusters are validated and grown, and again after its first pass over the suggestions
(`POINTS`). It reads only the labels the annotator gave (never the imported truth:
`imported=False`), switches the project to the new features when its held-out check says so,
and costs no clicks; its wall and CPU time are recorded in `sim.learning` and reported.
"""

from __future__ import annotations

import time

POINTS = ("before_assist", "after_assist")  # of round 0


def learn_now(sim, where: str, settings=None, name: str | None = None) -> dict:
    """Run the learn job on the project as the annotator has left it; return its report."""
    from ..features.learn import learn
    from ..workflow import grow, outcomes

    t = time.perf_counter()
    rep = learn(sim.project, settings, name=name, imported=False, progress=False)
    if rep["switched"]:
        grow.clear_cache()
        outcomes.clear_cache(sim.project)
    row = {"where": where, "clicks_before": sim.total_clicks, "name": rep["name"],
           "switched": rep["switched"], "heldout_new": rep["check"]["new"],
           "heldout_old": rep["check"]["old"], "n_labels": rep["n_labels"],
           "n_heldout": rep["n_heldout"], "n_pseudo": rep["n_pseudo"], "steps": rep["steps"],
           "seconds": round(time.perf_counter() - t, 1), "cpu_seconds": rep["cpu_seconds"]}
    sim.learning.append(row)
    sim.log(f"learn ({where}): {rep['check'].get('reason')}; {row['seconds']:.0f} s, "
            f"{row['cpu_seconds']:.0f} CPU s")
    return rep


def phases(settings=None, points=None, rounds=(0,)) -> dict:
    """{"before": [...], "after": [...]}: phases to put before and after the assist phase."""
    out = {"before": [], "after": []}
    for where in points or POINTS:
        def phase(sim, r, where=where):
            if r in rounds:
                learn_now(sim, f"round {r} {where.replace('_', ' ')}", settings)

        phase.__name__ = f"learn_{where}"
        out["before" if where == "before_assist" else "after"].append(phase)
    return out
