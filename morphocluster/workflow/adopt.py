"""Nodes for labels given by name: the labels of a suggestion model from another project (a new
instrument) that name no node here, so that their suggestions can be sorted, and a label typed
for a wrongly suggested object."""

from __future__ import annotations

from sqlalchemy import select

from ..store import Node, utcnow
from ..suggest.data import label_targets
from ._core import Change, WorkflowError


def adopt_labels(project, user_id, labels) -> dict:
    """Create approved nodes for labels (paths 'a>b') the project has no node for yet.

    For a model trained elsewhere (a new instrument). One event ('suggest_adopt'); return
    label -> node id of every label given.
    """
    with project.transaction() as s:
        have = label_targets(s)[1]
        ch = Change(s, user_id)
        out = {lab: label_node(s, ch, user_id, lab, have) for lab in labels}
        if ch.created:
            ch.finish("suggest_adopt", {"n": len(ch.created)}, bump=False)
    return out


def label_node(s, ch: Change, user_id, lab: str, have: dict) -> int:
    """Return the id of the approved node that carries label `lab` (a path 'a>b'), creating
    the missing nodes of its path through `ch`; `have` (label -> node id) is kept up to date."""
    if lab in have:
        return have[lab]
    parent = None
    for part in str(lab).split(">"):
        part = part.strip()
        under = Node.parent_id.is_(None) if parent is None else Node.parent_id == parent
        q = select(Node).where(Node.name == part, Node.status == "approved", under)
        node = s.scalars(q.order_by(Node.id)).first()
        if node is None:
            node = ch.create_node(name=part, parent_id=parent, status="approved",
                                  approved_by=user_id, approved_at=utcnow(), params={"from": "suggest"})
        parent = node.id
    have[lab] = parent
    return parent


def label_for_name(s, name: str) -> tuple[dict, str]:
    """Return (label -> node id, the label that `name` means): a label path, or the short name
    a node is shown by ('copepod', or 'copepod<calanoida' where names repeat), or else `name`
    itself, a label still to be made (`label_node`)."""
    _, have, display = label_targets(s)
    name = str(name).strip()
    if not name or name.startswith("#"):
        raise WorkflowError(f"{name!r} is not a label name")
    if name in have:
        return have, name
    for lab, shown in display.items():
        if shown == name and lab in have:
            return have, lab
    ends = sorted(lab for lab in have if lab.rsplit(">", 1)[-1] == name)
    if len(ends) > 1:
        raise WorkflowError(f"{name!r} names several labels ({', '.join(ends[:4])}): type the path")
    return have, (ends[0] if ends else name)


def missing_labels(project, state) -> list[str]:
    """Return the labels of a model from another project that name no approved node here.

    Their suggestions never show (`node_id` -1) until `adopt_missing` creates the nodes.
    Unnamed labels ('#<node id>' of the other project) are left out: they name nothing.
    """
    from . import suggest as sw  # imports this module at its end

    if state is None or state.stamp != sw.EXTERNAL:
        return []
    with project.session() as s:
        have = label_targets(s)[1]
    return sorted(str(c) for c in state.model.classes_
                  if str(c) not in have and not str(c).startswith("#"))


def adopt_missing(project, user_id, state=None) -> dict:
    """Create approved nodes for `missing_labels` (one event) and send the state's suggestions
    of those labels to them; return label -> node id."""
    from . import suggest as sw

    st = state or sw.refresh(project)
    labels = missing_labels(project, st)
    if not labels:
        return {}
    out = adopt_labels(project, user_id, labels)
    sw._retarget(project, st)
    return out
