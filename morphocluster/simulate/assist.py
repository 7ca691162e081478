"""The simulated annotator on the sort-suggestions screen (`morphocluster simulate --assist`).

`assist` is a phase for `Simulator(extra_phases=...)`: after the seed clusters of a round are
validated and grown, it retrains the suggestion model and works through each label:

1. Confidence bands from the top (>= 0.99, 0.97-0.99, ...): it checks a random sample screen of
   the band (dealing with the wrong ones, confirming the rest); if the sample is at least
   `target_precision` right (or `min_precision`, while the expected errors fit in the error
   budget that the whole-set precision goal leaves), it accepts the rest of the band with one
   click, and goes on to the next band; the first band that fails stops the descent.
2. Screens of the most confident suggestions left, while a screen gains at least `min_gain`
   objects per click.

Whether a check or a screen is worth its clicks is judged from the outcomes of the screens
seen so far (`workflow.suggest.field_precision`): the annotator learns how far to trust the
model's confidence on the objects still unlabelled.

A wrong object on a screen is moved to its runner-up label when that is its class, else given
its class by name (`relabel`; or, with `relabel` off, only rejected). Objects flagged unknown,
or left over, stay in the pool for the next clustering round. After the last round
(`assist_final`) nothing is held back as unknown, and screens are shown while they beat
labelling by hand. Cost model (same as the other screens): one click per shown object
rejected, moved or given its label by name (typing counts as one, as for naming a node, and
as the whole-set figure counts each object left to label by hand), one click to confirm a
screen, one click for an accept-above-threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..workflow import WorkflowError
from ..workflow import suggest as wf

BANDS = (0.99, 0.97, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5)
GAIN_WEIGHT = 0.05  # of the latest screen in `sim.other_gain`, a moving average that growing
#                     compares its screens with


@dataclass
class AssistSettings:
    target_precision: float = 0.96   # accept a band when its checked sample is this precise
    min_precision: float = 0.75      # ... or this precise, while the error budget lasts
    error_budget: float = 0.03       # share of all objects accepted bands may get wrong: whole-set
    #                                  goal 95 % less a margin for the clusters' own errors
    min_band: int = 100              # smaller bands are merged with the next one down
    check_margin: float = 0.1        # check a band only if screens suggest it is this close
    passes: int = 2                  # retrain-and-sort passes per round
    max_screens: int = 10            # screens of the most confident left, per label and pass
    min_gain: float = 1.5            # show a screen only if expected to gain this many objects per click
    min_confidence: float = 0.3      # never show suggestions less confident than this
    final_passes: int = 3            # passes after the last round (assist_final)
    final_retrain_new: bool = True   # in the final passes, retrain as soon as a screen named a
    #                                  class the model does not know (the long tail of small
    #                                  classes: its next screens can then suggest that class)
    max_retrains: int = 200          # ... at most this many such extra retrains
    final_min_gain: float = 1.0      # min_gain of the final passes: once no round is left, what a
    #                                  screen does not label is labelled by hand at 1 per click
    spend_budget: bool = False       # at the very end, accept the best remaining bands of all
    #                                  labels while the error budget lasts (`spend_budget`)
    spend_floor: float = 0.5         # ... never a band whose checked sample is below this
    relabel: bool = True             # give a wrong object its class by name (one click, as
    #                                  labelling it by hand would be) instead of only rejecting it
    final_min_confidence: float = 0.0  # min_confidence of the final passes, when relabelling
    final_model: dict | None = None  # model parameters of the final passes (None: `model`)
    final_far_too: bool = True       # the final passes have the objects far from every label
    #                                  suggested too (the suggestions overview's switch): no
    #                                  clustering round is left to explore them
    model: dict = field(default_factory=dict)  # SuggestionModel parameters (e.g. unknown_factor)


def _click(sim, kind: str, n: int, fallback: str) -> None:
    from .annotator import CLICK_KINDS

    sim.click(kind if kind in CLICK_KINDS else fallback, n)


def _look(sim, state, nid, scr, band=None, relabel=False):
    """Show a screen, deal with the wrong ones, confirm the rest; return (good, shown, moved).

    A wrong object whose runner-up label (shown under it) is its class is moved there with
    one click. With `relabel`, any other wrong object is given its class by name (one click,
    the same as labelling it by hand later; a class no node carries yet gets a new node);
    without, it is rejected (one click) and stays unlabelled.
    """
    truth = sim.show(scr.pks)
    alts = scr.alternatives or [None] * len(scr.pks)
    wrong, moved, typed = [], {}, 0
    for pk, lab, alt in zip(scr.pks, truth, alts):
        if lab == scr.name:
            continue
        if alt is not None and alt[1] == lab:
            moved[pk] = alt[2]
        elif relabel and lab is not None:
            moved[pk], typed = str(lab), typed + 1
            sim._assist_typed.add(str(lab))
        else:
            wrong.append(pk)
    wf.decide(sim.project, sim.user_id, nid, scr.pks, wrong, members_version=scr.members_version,
              band=band, moved=moved)
    sim.click("reject", len(wrong))
    _click(sim, "move", len(moved) - typed, "reject")
    _click(sim, "relabel", typed, "reject")
    sim._assist_wrong += len(wrong) + len(moved)
    sim._assist_moved += len(moved)
    _click(sim, "confirm", 1, "judge")
    sim.snapshot()
    gain = (len(scr.pks) - len(wrong)) / (len(wrong) + len(moved) + 1)
    sim.other_gain += GAIN_WEIGHT * (gain - sim.other_gain)  # what these screens gain lately
    return len(scr.pks) - len(wrong) - len(moved), len(scr.pks), len(moved)


def _may_accept(sim, st: AssistSettings, good: int, shown: int, n_rest: int) -> bool:
    """Accept the rest of a checked band? Yes if the sample reaches `target_precision`, or if
    it reaches `min_precision` and the errors it likely brings fit in what is left of the
    error budget (the share of the whole set that may be wrong and still meet the goal)."""
    p = good / shown
    if p >= st.target_precision:
        return True
    if p < st.min_precision:
        return False
    p_low = max(0.0, p - math.sqrt(p * (1 - p) / shown))  # one standard error below
    errors = n_rest * (1 - p_low)
    if errors > st.error_budget * sim._assist_n - sim._assist_errors:
        return False
    sim._assist_errors += errors
    return True


def sort_bands(sim, state, nid, st: AssistSettings) -> int:
    """Check and accept confidence bands from the top while their samples are precise enough."""
    p, u, size = sim.project, sim.user_id, sim.settings.page_size
    hi, gained = 2.0, 0
    for lo in BANDS:
        conf = wf.band_confidences(state, nid, lo, hi)
        n = len(conf)
        if n == 0 or (n < st.min_band and lo != BANDS[-1]):
            continue
        if wf.field_precision(p, conf, nid).mean() < st.min_precision - st.check_margin:
            break  # not worth a check: screens of such suggestions were seldom this precise
        scr = wf.screen(p, nid, 0, size, state=state, band=(lo, hi))
        if not scr.pks:
            break
        good, shown, moved = _look(sim, state, nid, scr, band=(lo, hi), relabel=st.relabel)
        gained += good + moved
        if not _may_accept(sim, st, good, shown, n - shown):
            break
        if n > shown:
            gained += wf.accept_above(p, u, nid, lo, state=state, below=hi)
            _click(sim, "accept", 1, "save")
        hi = lo
    return gained


def _move_rate(sim) -> float:
    """Share of the wrong suggestions seen so far whose runner-up label was their class: each
    such one is labelled by its click (a move), which makes a screen worth more."""
    return sim._assist_moved / (sim._assist_wrong + 10)  # + 10: no credit before evidence


def _retrain(sim, params: dict):
    """Retrain and predict now; return the state, or None when there is no model yet."""
    try:
        return wf.refresh(sim.project, wait=True, **params)
    except Exception as exc:  # noqa: BLE001 - too few labels yet: nothing to suggest
        sim.log(f"assist: no model ({exc})")
        return None


def sort_pass(sim, st: AssistSettings, min_gain: float | None = None, model: dict | None = None,
              final: bool = False) -> int:
    """One retrain-and-sort pass over every label; return the objects labelled.

    A final pass with `final_retrain_new` stops after the first screen that named a class no
    label of the model has (`sim._assist_cut` is then True), so that the next pass knows it."""
    p = sim.project
    sim._assist_cut = False
    min_gain = st.min_gain if min_gain is None else min_gain
    min_conf = st.final_min_confidence if final and st.relabel else st.min_confidence
    state = _retrain(sim, st.model if model is None else model)
    if state is None:
        return 0
    gained = 0
    rows = wf.overview(p, state)
    known = {str(k) for k in state.preds.display} | {str(v) for v in state.preds.display.values()}
    cut = final and st.final_retrain_new
    for row in rows:
        nid = row["node_id"]
        sim._assist_typed = set()
        gained += sort_bands(sim, state, nid, st)
        if cut and sim._assist_typed - known:
            sim._assist_cut = True
            return gained
        for _ in range(st.max_screens):
            try:
                scr = wf.screen(p, nid, 0, sim.settings.page_size, state=state)
            except WorkflowError:
                break
            keep = [i for i, c in enumerate(scr.confidence) if c >= min_conf]
            if not keep:
                break
            q = wf.field_precision(p, [scr.confidence[i] for i in keep], nid)
            wrong = (1 - q).sum()
            if (q.sum() + _move_rate(sim) * wrong) / (wrong + 1) < min_gain:
                break  # expected to gain too little per click
            scr.pks = [scr.pks[i] for i in keep]
            good, shown, moved = _look(sim, state, nid, scr, relabel=st.relabel)
            gained += good + moved
            if cut and sim._assist_typed - known:
                sim._assist_cut = True
                return gained
            if (good + moved) / (shown - good + 1) < min_gain:
                break
        if cut and sim._assist_typed - known:
            sim._assist_cut = True
            return gained
    return gained


def _start(sim) -> None:
    """First assisted phase of a simulation: nothing learnt in an earlier run may carry over."""
    if getattr(sim, "_assist_started", False):
        return
    from ..suggest import model_path

    wf.forget(sim.project)
    model_path(sim.project).unlink(missing_ok=True)
    sim._assist_started = True
    sim._assist_n = len(sim.project_objects())
    sim._assist_errors = 0.0  # expected wrong objects among the accepted bands so far
    sim._assist_wrong = sim._assist_moved = 0  # wrong objects on screens; moved of them
    sim._assist_typed = set()  # classes given by name on the screens of the current label


def assist(sim, r: int, settings: AssistSettings | None = None) -> None:
    """Phase: sort by suggestions after the round's clusters are validated and grown."""
    _start(sim)
    st = settings or getattr(sim, "assist_settings", None) or AssistSettings()
    for i in range(st.passes):
        n = sort_pass(sim, st)
        sim.log(f"assist round {r} pass {i}: {n} objects labelled, clicks {sim.total_clicks}")
        if n == 0:
            break


def assist_final(sim, r: int) -> None:
    """Final phase: once no clustering round is left, spend the error budget (if asked to),
    then more passes, in which no object is held back as unknown."""
    _start(sim)
    st = getattr(sim, "assist_settings", None) or AssistSettings()
    wf.set_far_too(sim.project, st.final_far_too)
    if st.spend_budget:
        n = spend_budget(sim, st)
        sim.log(f"assist final budget: {n} objects labelled, clicks {sim.total_clicks}")
    i = retrains = 0
    while i < st.final_passes:
        n = sort_pass(sim, st, st.final_min_gain, st.final_model, final=True)
        cut = sim._assist_cut and retrains < st.max_retrains
        sim.log(f"assist final pass {i}{' (cut: new class named)' if cut else ''}: {n} objects "
                f"labelled, clicks {sim.total_clicks}")
        if cut:
            retrains += 1
            continue
        if n == 0:
            break
        i += 1


def spend_budget(sim, st: AssistSettings) -> int:
    """Accept whole confidence bands, the most precise first over all labels, while the
    expected errors fit in what is left of the error budget.

    Every object left unlabelled costs a click on a screen where it is wrong (or by hand); an
    accepted band costs one click and its wrong objects. So the budget goes furthest on the
    bands expected to be most precise (`field_precision`, learnt from the screens). A band of
    at least `min_band` objects is checked with a random sample screen first, and accepted only
    if the sample says it fits; a smaller one (which a sample would mostly use up) is accepted
    on the estimate.
    """
    p, size = sim.project, sim.settings.page_size
    state = _retrain(sim, st.model if st.final_model is None else st.final_model)
    if state is None:
        return 0
    chunks = []
    for row in wf.overview(p, state):
        nid, hi = row["node_id"], 2.0
        for lo in BANDS + (0.0,):
            conf = wf.band_confidences(state, nid, lo, hi)
            if len(conf) >= st.min_band or (lo == 0.0 and len(conf)):
                chunks.append((float(wf.field_precision(p, conf, nid).mean()), nid, lo, hi, len(conf)))
                hi = lo
    chunks.sort(key=lambda c: -c[0])
    gained = 0
    for est, nid, lo, hi, n in chunks:
        left = st.error_budget * sim._assist_n - sim._assist_errors
        if est < st.spend_floor or n * (1 - est) > left:
            continue  # not expected to fit: a sample screen would be clicks for nothing
        if n < st.min_band:
            gained += _accept(sim, nid, lo, hi, state, n * (1 - est))
            continue
        try:
            scr = wf.screen(p, nid, 0, size, state=state, band=(lo, hi))
        except WorkflowError:
            continue
        if not scr.pks:
            continue
        good, shown, moved = _look(sim, state, nid, scr, band=(lo, hi), relabel=st.relabel)
        gained += good + moved
        q = good / shown
        q_low = max(0.0, q - math.sqrt(q * (1 - q) / shown))
        rest = scr.total - shown
        if q < st.spend_floor or rest <= 0 or rest * (1 - q_low) > left:
            continue
        gained += _accept(sim, nid, lo, hi, state, rest * (1 - q_low))
    sim.log(f"assist budget: {sim._assist_errors:.0f} of {st.error_budget * sim._assist_n:.0f} "
            "expected errors used")
    return gained


def _accept(sim, nid, lo, hi, state, errors: float) -> int:
    n = wf.accept_above(sim.project, sim.user_id, nid, lo, state=state, below=hi)
    _click(sim, "accept", 1, "save")
    sim._assist_errors += errors
    return n


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
