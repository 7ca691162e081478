"""The simulated annotator on the sort-suggestions screen (`morphocluster simulate --assist`).

`assist` is a phase for `Simulator(extra_phases=...)`: after the seed clusters of a round are
validated and grown, it retrains the suggestion model and, for each label, accepts the remaining
suggestions above the lowest confidence whose held-out precision estimate reaches
`accept_precision` (one click), then looks at screens of the most confident remaining
suggestions (one click per wrong object it rejects, one to confirm the screen) while a screen is
worth it. Objects flagged unknown stay in the pool for the next clustering round.

Cost model (same as the other screens): one click per shown object rejected, one click to
confirm a screen, one click for an accept-above-threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

from .workflow import WorkflowError
from .workflow import suggest as wf

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99)


@dataclass
class AssistSettings:
    accept_precision: float = 0.97   # accept above the lowest confidence estimated this precise
    min_heldout: int = 5             # held-out objects of the label the estimate needs
    min_accept: int = 5              # an accept-above click must gain at least this many objects
    passes: int = 2                  # retrain-and-sort passes per round
    max_screens: int = 4             # screens per label per pass
    min_gain: float = 4.0            # stop a label when a screen gains fewer objects per click
    min_confidence: float = 0.3      # never show suggestions less confident than this
    final_passes: int = 3            # passes after the last round (assist_final)


def _click(sim, kind: str, n: int, fallback: str) -> None:
    from .simulate.annotator import CLICK_KINDS

    sim.click(kind if kind in CLICK_KINDS else fallback, n)


def _accept_threshold(model, label, st: AssistSettings):
    """Lowest confidence whose held-out precision estimate reaches the target, or None."""
    for t in THRESHOLDS:
        prec, n = model.precision_at(label, t)
        if n >= st.min_heldout and prec >= st.accept_precision:
            return t
    return None


def sort_pass(sim, st: AssistSettings) -> int:
    """One retrain-and-sort pass over every label; return the objects labelled."""
    p, u = sim.project, sim.user_id
    try:
        state = wf.refresh(p, wait=True)
    except Exception as exc:  # too few labels yet: nothing to suggest
        sim.log(f"assist: no model ({exc})")
        return 0
    if state is None:
        return 0
    gained = 0
    for row in wf.overview(p, state):
        nid, label = row["node_id"], row["label"]
        t = _accept_threshold(state.model, label, st)
        if t is not None and wf.accept_preview(p, nid, t, state)["n"] >= st.min_accept:
            gained += wf.accept_above(p, u, nid, t, state=state)
            _click(sim, "accept", 1, "save")
        for _ in range(st.max_screens):
            try:
                scr = wf.screen(p, nid, 0, sim.settings.page_size, state=state)
            except WorkflowError:
                break
            keep = [i for i, c in enumerate(scr.confidence) if c >= st.min_confidence]
            if not keep:
                break
            pks = [scr.pks[i] for i in keep]
            truth = sim.show(pks)
            wrong = [pk for pk, lab in zip(pks, truth) if lab != scr.name]
            good = len(pks) - len(wrong)
            wf.decide(p, u, nid, pks, wrong, members_version=scr.members_version)
            sim.click("reject", len(wrong))
            _click(sim, "confirm", 1, "judge")
            gained += good
            sim.snapshot()
            if good / (len(wrong) + 1) < st.min_gain:
                break
    return gained


def assist(sim, r: int, settings: AssistSettings | None = None) -> None:
    """Phase: sort by suggestions after the round's clusters are validated and grown."""
    st = settings or getattr(sim, "assist_settings", None) or AssistSettings()
    for i in range(st.passes):
        n = sort_pass(sim, st)
        sim.log(f"assist round {r} pass {i}: {n} objects labelled, clicks {sim.total_clicks}")
        if n == 0:
            break


def assist_final(sim, r: int) -> None:
    """Final phase: more passes once no clustering round is left."""
    st = getattr(sim, "assist_settings", None) or AssistSettings()
    for i in range(st.final_passes):
        n = sort_pass(sim, st)
        sim.log(f"assist final pass {i}: {n} objects labelled, clicks {sim.total_clicks}")
        if n == 0:
            break


def phases(settings: AssistSettings | None = None) -> dict:
    """Keyword arguments for `Simulator` that add assisted sorting."""
    def assist_phase(sim, r):
        assist(sim, r, settings)

    def assist_final_phase(sim, r):
        if settings is not None:
            sim.assist_settings = settings
        assist_final(sim, r)

    assist_phase.__name__ = "assist"
    assist_final_phase.__name__ = "assist_final"
    return {"extra_phases": [assist_phase], "final_phases": [assist_final_phase]}
