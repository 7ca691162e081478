"""Progress of a project and its work queue, for the home page and the screens that pick work."""

from __future__ import annotations

from sqlalchemy import case, func, select

from ..labels import unnamed_approved
from ..store import Event, Node, Object, User, utcnow

GROW_ACTIONS = ("grow_accept", "grow_until")


def progress(p) -> dict:
    """Return the counts shown on the home page (from the nodes table; cheap at any size)."""
    with p.session() as s:
        total = s.scalar(select(func.count()).select_from(Object))  # count(*): SQLite's fast path
        by_status = dict(s.execute(select(Node.status, func.count(Node.id))
                                   .where((Node.status != "candidate") | (Node.n_members > 0))
                                   .group_by(Node.status)).all())
        labelled = s.scalar(select(func.coalesce(func.sum(Node.n_members), 0))
                            .where(Node.status == "approved")) or 0
        grown = s.scalar(select(func.count()).select_from(_grown().subquery()))
        n_unnamed, unnamed = unnamed_approved(s)
        labels = s.execute(
            select(Node.name, func.sum(Node.n_members), func.count(Node.id))
            .where(Node.status == "approved", Node.n_members > 0)  # not umbrellas of no objects
            .group_by(Node.name).order_by(func.sum(Node.n_members).desc())).all()
        parents = select(Node.parent_id).where(Node.parent_id.is_not(None), Node.status != "dissolved")
        empty = s.scalar(select(func.count()).select_from(Node).where(
            Node.status == "approved", Node.n_members == 0, Node.name.is_not(None),
            Node.id.not_in(parents)))  # named, no objects, no children: a model's labels, waiting
    total = total or 0
    return {"objects": total, "labelled": int(labelled),
            "fraction": (labelled / total) if total else 0.0,
            "candidates": by_status.get("candidate", 0), "approved": by_status.get("approved", 0),
            "grown": grown or 0,
            # approved but labelled by no name (none on the node or above it): not exported
            "unnamed": n_unnamed, "unnamed_nodes": unnamed[:8], "empty_labels": empty or 0,
            "labels": [{"name": n or "(unnamed)", "objects": int(c or 0), "nodes": k}
                       for n, c, k in labels]}


def queue(p, limit: int = 15) -> dict:
    """Return the candidate nodes waiting for validation and the approved nodes to grow."""
    with p.session() as s:
        # who is working on a node: an unexpired claim only
        claimer = case((Node.claimed_until > utcnow(), User.username), else_=None).label("claimed_by")
        cand = s.execute(select(Node.id, Node.name, Node.n_members, claimer)
                         .outerjoin(User, User.id == Node.claimed_by)
                         .where(Node.status == "candidate", Node.n_members > 0)
                         .order_by(Node.n_members.desc(), Node.id).limit(limit)).all()
        # nodes not grown yet first, largest first: "Grow next" moves on to a new node
        grown = Node.id.in_(_grown())
        appr = s.execute(select(Node.id, Node.name, Node.n_members, claimer, grown.label("grown"))
                         .outerjoin(User, User.id == Node.claimed_by)
                         .where(Node.status == "approved", Node.n_members > 0)
                         .order_by(grown, Node.n_members.desc(), Node.id).limit(limit)).all()
    return {"validate": [r._asdict() for r in cand], "grow": [r._asdict() for r in appr]}


def _grown():
    """A query of the ids of the nodes that have been grown (a grow decision not undone)."""
    return (select(Event.payload["node"].as_integer()).distinct()
            .where(Event.action.in_(GROW_ACTIONS), Event.undone_by.is_(None)))
