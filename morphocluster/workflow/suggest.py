"""Sort suggestions: confirm or reject the objects the model suggests for one label.

Screens show the objects suggested for one approved node's label, most confident first. The
annotator marks the ones that do not belong (rejected for that node, so that label never comes
back for them) and confirms the rest ('validated'), or accepts every remaining suggestion above
a confidence ('predicted'), seeing the precision estimated on held-out validated objects.
Each decision is one event written through `Change`, so `undo.undo_last` reverses it.

The model retrains in a background thread after decisions (`suggest_state`); screens use the
latest predictions and never wait for training unless asked to (`wait=True`, as the simulator
does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select

from .. import suggest as sg
from ..store import Membership, Meta, Node, Rejection
from ..suggest.data import label_targets
from ._core import Change, WorkflowError, check_claim, check_version, chunks, free_of_approved, get_node
from .adopt import adopt_labels, missing_labels, move_to_labels, split_own, targets_arg  # noqa: F401
from .outcomes import checked_precision, field_precision, history
from .suggest_state import _STATES, EXTERNAL, State, _refresh, _slot, forget, status  # noqa: F401

SCREEN = 50
FAR_KEY = "suggest_far_too"


@dataclass
class Screen:
    node_id: int
    label: str
    name: str
    pks: list
    confidence: list
    offset: int
    total: int                      # suggestions of this label still open
    members_version: int
    stale: bool = False             # decisions happened since the model was trained
    alternatives: list = field(default_factory=list)  # per object: its runner-up label as
    #                                 (label, name, node id) where a node here carries it, else None


def refresh(project, wait: bool = False, force: bool = False, **params) -> State | None:
    """Retrain and predict if decisions happened since the last training (or if `force`).

    In a background thread unless `wait`; return the state to use now (None if there is none
    yet). A model saved from another project is kept until a retrain is forced; its
    suggestions go to the nodes that carry their labels now.
    """
    st = _refresh(project, wait, force, params)
    if st is not None and st.stamp == EXTERNAL:
        _retarget(project, st)
    return st


def far_too(project) -> bool:
    """Whether suggestions include the objects far from every label ("unknown"), which are
    otherwise left for the next clustering round."""
    with project.session() as s:
        row = s.get(Meta, FAR_KEY)
        return bool(row is not None and row.value)


def set_far_too(project, on: bool) -> None:
    """Include (or leave out again) the objects far from every label in the suggestions: for
    the end of a project, when no clustering round is left to find new classes among them."""
    with project.transaction() as s:
        row = s.get(Meta, FAR_KEY)
        if row is None:
            s.add(Meta(key=FAR_KEY, value=bool(on)))
        else:
            row.value = bool(on)


def _with_setting(project, st: State | None) -> State | None:
    if st is not None:
        st.far_too = far_too(project)
    return st


def suggested(preds, far_too: bool) -> np.ndarray:
    """Which predictions are suggestions: those not far from every label, or with `far_too`
    every one but those that all labels were rejected for."""
    return ~preds.unknown | (far_too & ~preds.dead)


def _open(st: State) -> np.ndarray:
    return ~st.done & suggested(st.preds, st.far_too)


def overview(project, state: State | None = None) -> list[dict]:
    """Return one row per label with open suggestions: node, name, counts, most confident first."""
    st = _with_setting(project, state or refresh(project))
    if st is None:
        return []
    p = st.preds
    open_ = _open(st) & (p.node_id >= 0)
    rows = []
    for nid in np.unique(p.node_id[open_]):
        m = open_ & (p.node_id == nid)
        lab = p.label[m][0]
        conf = p.confidence[m]
        rows.append({"node_id": int(nid), "label": lab, "name": p.display.get(lab, lab),
                     "n": int(m.sum()), "n_90": int((conf >= 0.9).sum()),
                     "mean_confidence": float(conf.mean())})
    rows.sort(key=lambda r: (-r["n_90"], -r["n"]))
    return rows


def n_unknown(state: State) -> int:
    """Objects not decided yet that are far from every label (suggested or not: `far_too`)."""
    return int((~state.done & state.preds.unknown).sum())


def _open_order(st: State, node_id: int) -> np.ndarray:
    p = st.preds
    idx = np.flatnonzero(_open(st) & (p.node_id == int(node_id)))
    return idx[np.argsort(-p.confidence[idx], kind="stable")]


def _settled(s, node_id: int, pks) -> set:
    """Objects that are in an approved node or rejected for this node by now."""
    out = set()
    for part in chunks(pks):
        out.update(s.scalars(select(Membership.object_pk).join(Node, Node.id == Membership.node_id)
                             .where(Membership.object_pk.in_(part), Node.status == "approved")))
        out.update(s.scalars(select(Rejection.object_pk).where(
            Rejection.node_id == node_id, Rejection.object_pk.in_(part))))
    return out


def _band(st: State, idx: np.ndarray, band) -> np.ndarray:
    c = st.preds.confidence[idx]
    return idx[(c >= float(band[0])) & (c < float(band[1]))]


def screen(project, node_id: int, offset: int = 0, limit: int = SCREEN,
           state: State | None = None, band=None) -> Screen:
    """Return a screen of the objects suggested for the node's label, most confident first.

    With `band=(lo, hi)`: a random sample of the suggestions with lo <= confidence < hi, to
    check what accepting them all would give (`decide(..., band=...)` records the check).
    """
    limit = max(1, min(int(limit), SCREEN))
    st = _with_setting(project, state or refresh(project))
    if st is None:
        raise WorkflowError("no suggestions yet: the model is still training or there are too "
                            "few labelled objects")
    with project.session() as s:
        node = get_node(s, node_id, ("approved",))
        version, stamp = node.members_version, sg.last_event_id(s)
        for _ in range(3):  # drop objects decided elsewhere since the predictions were made
            order = _open_order(st, node.id)
            if band is not None:
                order = _band(st, order, band)
                rng = np.random.default_rng([int(node.id), int(st.stamp) % 2**32, len(order)])
                take = np.sort(rng.permutation(order)[:limit])
                take = take[np.argsort(-st.preds.confidence[take], kind="stable")]
            else:
                take = order[int(offset):int(offset) + limit]
            gone = _settled(s, node.id, [int(x) for x in st.preds.pks[take]])
            if not gone:
                break
            st.done[take[np.isin(st.preds.pks[take], list(gone))]] = True
        target = label_targets(s)[1]
    p = st.preds
    lab = p.label[take[0]] if len(take) else (p.label[order[0]] if len(order) else "")
    return Screen(int(node_id), lab, p.display.get(lab, lab), [int(x) for x in p.pks[take]],
                  [float(x) for x in p.confidence[take]], int(offset), len(order), version,
                  stale=stamp > st.stamp, alternatives=_alternatives(p, take, target, node.id))


def _alternatives(p, take, target: dict, node_id: int) -> list:
    out = []
    for r in take:
        lab = p.runner_up[r] if p.runner_up is not None else None
        nid = target.get(lab, -1) if lab is not None else -1
        out.append((lab, p.display.get(lab, lab), int(nid)) if nid >= 0 and nid != node_id else None)
    return out


def _mark_done(project, pks) -> None:
    st = _slot(project).state
    if st is not None and len(pks):
        st.done[np.isin(st.preds.pks, np.asarray(list(pks), np.int64))] = True


def decide(project, user_id, node_id, shown_pks, rejected_pks=(), members_version=None,
           band=None, moved=None) -> dict:
    """Confirm a screen: reject `rejected_pks` for the node, the other shown objects join it
    as 'validated'. `moved` (object -> another approved node's id, or a label name, such as
    its runner-up label or one the annotator typed): rejected here too, and each joins that
    node as 'validated'; a name that no node carries yet gets a new approved node.
    One event ('suggest_screen'), undone as one. With the `band` of a sample screen, the
    result is kept as that band's check."""
    moved = targets_arg(moved)
    with project.session() as s:  # objects given this label itself are confirmed like the rest
        moved, _ = split_own(s, moved, node_id)
    shown = sorted({int(p) for p in shown_pks})
    bad = sorted({int(p) for p in rejected_pks} | set(moved))
    if set(bad) - set(shown):
        raise WorkflowError("rejected or moved objects must be among those shown")
    good = [p for p in shown if p not in set(bad)]
    payload = {"node": int(node_id), "n": len(good), "rejected": len(bad), "moved": len(moved)}
    if band is not None:
        payload["band"] = [float(band[0]), float(band[1])]
    slot = _slot(project)
    if slot.state is not None and shown:  # what the model said of each shown object, and if right
        pr, no = slot.state.preds, set(bad)
        rows = np.flatnonzero(np.isin(pr.pks, np.asarray(shown, np.int64)))
        payload["outcomes"] = [[round(float(pr.confidence[r]), 4), int(int(pr.pks[r]) not in no)]
                               for r in rows]
    with project.transaction() as s:
        node = get_node(s, node_id, ("approved",))
        check_claim(node, user_id)
        check_version(node, members_version)
        ch = Change(s, user_id)
        ch.assign(free_of_approved(ch, good), node.id, "validated")
        ch.reject(node.id, bad)
        move_to_labels(s, ch, user_id, moved, node.id)
        if ch.created:
            payload["new_nodes"] = list(ch.created)
        ch.finish("suggest_screen", payload)
    _mark_done(project, shown)
    return {"confirmed": len(good), "rejected": len(bad) - len(moved), "moved": len(moved),
            "new_nodes": len(ch.created)}


def band_confidences(state: State, node_id, lo: float, hi: float = 2.0) -> np.ndarray:
    """Confidences of the node's open suggestions with lo <= confidence < hi."""
    return state.preds.confidence[_band(state, _open_order(state, node_id), (lo, hi))]


def accept_preview(project, node_id, threshold: float, state: State | None = None,
                   below: float = 2.0) -> dict:
    """Return how many open suggestions of the node have threshold <= confidence < below and
    the precision of accepting them: estimated on held-out validated objects (cross-validated)
    and, where sample screens of that range were checked, measured on those."""
    st = _with_setting(project, state or refresh(project))
    if st is None:
        raise WorkflowError("no suggestions yet")
    idx = _band(st, _open_order(st, node_id), (threshold, below))
    lab = st.preds.label[idx[0]] if len(idx) else None
    prec, n_held = st.model.precision_at(lab, float(threshold)) if lab is not None else (None, 0)
    checked, n_checked = checked_precision(project, node_id, threshold, below)
    return {"n": int(len(idx)), "precision": prec, "n_heldout": n_held, "threshold": float(threshold),
            "checked": checked, "n_checked": n_checked}


class CountChanged(WorkflowError):
    """The suggestions an accept would take are not as many as the annotator was shown."""

    def __init__(self, counted: int, now: int):
        super().__init__(f"the suggestions changed since {counted} were counted: {now} now")
        self.counted, self.now = counted, now


def accept_above(project, user_id, node_id, threshold: float, members_version=None,
                 state: State | None = None, below: float = 2.0, counted: int | None = None) -> int:
    """Accept every open suggestion of the node with threshold <= confidence < below as
    'predicted'. One event ('suggest_accept'). With `counted` (what `accept_preview` showed):
    CountChanged, taking nothing, if that many are not what it would take now (a retrain, or
    decisions elsewhere)."""
    st = _with_setting(project, state or refresh(project))
    if st is None:
        raise WorkflowError("no suggestions yet")
    idx = _band(st, _open_order(st, node_id), (threshold, below))
    if counted is not None and int(counted) != len(idx):
        raise CountChanged(int(counted), len(idx))
    pks = [int(p) for p in st.preds.pks[idx]]
    with project.transaction() as s:
        node = get_node(s, node_id, ("approved",))
        check_claim(node, user_id)
        check_version(node, members_version)
        gone = _settled(s, node.id, pks)
        pks = [p for p in pks if p not in gone]
        ch = Change(s, user_id)
        ch.assign(pks, node.id, "predicted")
        ch.finish("suggest_accept", {"node": node.id, "n": len(pks), "threshold": float(threshold),
                                     "below": float(below)})
    _mark_done(project, pks)
    _mark_done(project, gone)
    return len(pks)


def _retarget(project, state: State) -> None:
    """Send a model from elsewhere's suggestions to the nodes that now carry their labels.

    Its state outlives the decisions here (it is not retrained after each), so nodes made or
    dissolved since it predicted (an adopt, or its undo) must be looked up again: once per
    new event (every decision, undo included, writes one), not on every page.
    """
    with project.session() as s:
        last = sg.last_event_id(s)
        if state.targeted == last:
            return
        target = label_targets(s)[1]
    p = state.preds
    labs, inv = np.unique(p.label.astype(str), return_inverse=True)
    p.node_id = np.array([target.get(lab, -1) for lab in labs], np.int64)[inv]
    state.targeted = last


def adopt_missing(project, user_id, state=None) -> dict:
    """Create approved nodes for `missing_labels` (one event) and send the state's suggestions
    of those labels to them; return label -> node id."""
    st = state or refresh(project)
    labels = missing_labels(project, st)
    if not labels:
        return {}
    out = adopt_labels(project, user_id, labels)
    _retarget(project, st)
    return out


__all__ = ["Screen", "State", "refresh", "forget", "status", "overview", "screen", "decide",
           "accept_preview", "accept_above", "adopt_labels", "adopt_missing", "missing_labels",
           "band_confidences", "history",
           "field_precision", "checked_precision", "WorkflowError"]
