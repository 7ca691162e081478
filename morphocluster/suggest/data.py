"""What the suggestion model learns from: labelled objects, their labels, rejections, targets.

A label is the path of names of an approved node (`labels.node_labels`, e.g. 'copepod' or
'crustacea>copepod'); approved nodes without any name are labels of their own ('#<node id>').
Nodes that share a label are one class; suggestions go to the biggest of them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from ..labels import node_labels
from ..store import Membership, Node, Rejection

STATUS_WEIGHT = {"validated": 1.0, "predicted": 0.5, "cluster": 0.5}


@dataclass
class LabelSet:
    pks: np.ndarray           # int64 Object.ids of labelled objects
    labels: np.ndarray        # label per object (str)
    status: np.ndarray        # membership status per object
    label_of_node: dict       # approved node id -> label
    target: dict              # label -> node id that suggestions of that label go to
    display: dict             # label -> short name to show

    def weights(self, include_predicted: bool = True) -> np.ndarray:
        w = np.array([STATUS_WEIGHT.get(s, 0.5) for s in self.status])
        return w if include_predicted else np.where(self.status == "validated", w, 0.0)


def label_targets(session) -> tuple[dict, dict, dict]:
    """Return (approved node id -> label, label -> node id its suggestions go to: the largest
    node of that label, label -> short name); reads the nodes only, not their members."""
    named = node_labels(session)
    approved = dict(session.execute(select(Node.id, Node.n_members).where(Node.status == "approved")).all())
    label_of = {nid: (named[nid].path if nid in named else f"#{nid}") for nid in approved}
    display = {}
    for nid, lab in label_of.items():
        display.setdefault(lab, named[nid].display if nid in named else f"node {nid}")
    best: dict = {}
    for nid, lab in sorted(label_of.items()):
        if lab not in best or approved[nid] > approved[best[lab]]:
            best[lab] = nid
    return label_of, best, display


def label_set(session) -> LabelSet:
    """Read every member of an approved node with its label, in object order.

    The order is fixed because the model's cross-validation folds are drawn over positions:
    the same labels must give the same model, whatever order they were stored in."""
    label_of, best, display = label_targets(session)
    rows = session.execute(select(Membership.object_pk, Membership.node_id, Membership.status)
                           .join(Node, Node.id == Membership.node_id)
                           .where(Node.status == "approved")
                           .order_by(Membership.object_pk)).all()
    pks = np.fromiter((r[0] for r in rows), np.int64, len(rows))
    labels = np.array([label_of[r[1]] for r in rows], dtype=object)
    status = np.array([r[2] or "cluster" for r in rows], dtype=object)
    return LabelSet(pks, labels, status, label_of, best, display)


def rejected_labels(session, label_of_node: dict) -> dict[int, set]:
    """Return Object.id -> labels it was rejected for (through any node of that label)."""
    out: dict[int, set] = defaultdict(set)
    for nid, pk in session.execute(select(Rejection.node_id, Rejection.object_pk)):
        lab = label_of_node.get(nid)
        if lab is not None:
            out[pk].add(lab)
    return out
