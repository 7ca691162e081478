"""Labels of a suggestion model from another project (a new instrument): find the ones that
name no node here and create their nodes, so that their suggestions can be sorted."""

from __future__ import annotations

from sqlalchemy import select

from ..store import Node
from ..suggest.data import label_targets
from ._core import Change


def adopt_labels(project, user_id, labels) -> dict:
    """Create approved nodes for labels (paths 'a>b') the project has no node for yet.

    For a model trained elsewhere (a new instrument). One event ('suggest_adopt'); return
    label -> node id of every label given.
    """
    with project.transaction() as s:
        have = label_targets(s)[1]
        ch = Change(s, user_id)
        out, new = {}, 0
        for lab in labels:
            if lab in have:
                out[lab] = have[lab]
                continue
            parent = None
            for part in str(lab).split(">"):
                under = Node.parent_id.is_(None) if parent is None else Node.parent_id == parent
                q = select(Node).where(Node.name == part, Node.status == "approved", under)
                node = s.scalars(q.order_by(Node.id)).first()
                if node is None:
                    node = ch.create_node(name=part, parent_id=parent, status="approved",
                                          approved_by=user_id, params={"from": "suggest"})
                    new += 1
                parent = node.id
            out[lab] = have[lab] = parent
        if new:
            ch.finish("suggest_adopt", {"n": new}, bump=False)
    return out


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
