"""What decided suggestion screens taught: outcomes per confidence, and sample checks.

Both are read from the event log ('suggest_screen' events carry the model's confidence and the
verdict of every shown object), so they survive a restart and an undo takes them back.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from .. import suggest as sg
from ..store import Event

_CACHE: dict = {}  # project root -> (last event id, History)


def clear_cache(project=None) -> None:
    """Forget cached histories (after the event log was emptied)."""
    if project is None:
        _CACHE.clear()
    else:
        _CACHE.pop(str(project.root.resolve()), None)


@dataclass
class History:
    """What the decided screens taught, read from the event log (undone ones left out)."""

    node: np.ndarray                # per screened object: node id,
    confidence: np.ndarray          # the model's confidence when shown,
    right: np.ndarray               # 1.0 if confirmed, 0.0 if rejected
    checks: dict                    # node id -> [(lo, hi, shown, wrong)] since its last accept


def history(project) -> History:
    """Return the screens' outcomes and sample checks, kept in the event log so that they
    survive a restart and follow an undo (cached until the next event)."""
    key = str(project.root.resolve())
    with project.session() as s:
        last = sg.last_event_id(s)
        hit = _CACHE.get(key)
        if hit is not None and hit[0] == last:
            return hit[1]
        rows = s.execute(select(Event.action, Event.payload).where(
            Event.action.in_(("suggest_screen", "suggest_accept")), Event.undone_by.is_(None))
            .order_by(Event.id)).all()
    node, conf, right, checks = [], [], [], {}
    for action, pl in rows:
        nid = int(pl.get("node", -1))
        if action == "suggest_accept":
            checks.pop(nid, None)  # an accept-above uses up the checks made before it
            continue
        for c, ok in pl.get("outcomes", ()):
            node.append(nid)
            conf.append(c)
            right.append(ok)
        if pl.get("band"):
            lo, hi = pl["band"]
            n = int(pl.get("n", 0)) + int(pl.get("rejected", 0))
            checks.setdefault(nid, []).append((float(lo), float(hi), n, int(pl.get("rejected", 0))))
    h = History(np.array(node, np.int64), np.array(conf, np.float64), np.array(right, np.float64),
                checks)
    _CACHE[key] = (last, h)
    return h


EDGES = np.array([0.0, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.97, 0.99, 1.01])


def field_precision(project, confidence, node_id=None, prior: float = 20.0,
                    node_prior: float = 10.0) -> np.ndarray:
    """Estimate P(right | confidence) from the outcomes of the screens decided so far.

    Per confidence bin, the share of screened objects that were right, shrunk toward the model's
    own confidence with `prior` pseudo-objects: held-out validated objects are typical ones,
    the objects still unlabelled often are not, so the screens' outcomes are the better guide.
    With `node_id`, that node's own outcomes count first (shrunk toward all nodes' with
    `node_prior`): some labels are sorted well, others not.
    """
    c = np.asarray(confidence, np.float64)
    out = np.clip(c, 0.0, 1.0)
    h = history(project)
    if not len(h.node):
        return out
    hn, hc, ok = h.node, h.confidence, h.right
    hb, cb = np.digitize(hc, EDGES) - 1, np.digitize(c, EDGES) - 1
    for b in np.unique(cb):
        m, here = hb == b, cb == b
        glob = (ok[m].sum() + prior * c[here]) / (m.sum() + prior)
        if node_id is not None:
            mn = m & (hn == int(node_id))
            glob = (ok[mn].sum() + node_prior * glob) / (mn.sum() + node_prior)
        out[here] = glob
    return out


def checked_precision(project, node_id, threshold: float, below: float = 2.0):
    """Precision of accepting [threshold, below) measured on the sample screens checked in it
    (since the node's last accept-above)."""
    rows = [c for c in history(project).checks.get(int(node_id), [])
            if c[0] >= float(threshold) - 1e-9 and c[1] <= float(below) + 1e-9]
    n = sum(c[2] for c in rows)
    return ((n - sum(c[3] for c in rows)) / n, n) if n else (None, 0)
