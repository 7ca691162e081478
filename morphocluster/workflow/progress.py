"""Progress of a project and its work queue, for the home page and the screens that pick work."""

from __future__ import annotations

import threading

from sqlalchemy import String, and_, case, cast, exists, func, literal_column, select

from ..labels import unnamed_approved
from ..store import Event, Node, Object, User, utcnow

GROW_ACTIONS = ("grow_accept", "grow_until")
# the node an event is about, written as the index ix_events_node has it (store.models)
_EVENT_NODE = {"sqlite": "json_extract(events.payload, '$.node')",
               "postgresql": "(events.payload ->> 'node')"}
_COUNTS: dict = {}  # database url -> (highest object id, number of objects)
_COUNTS_LOCK = threading.Lock()


def object_count(s) -> int:
    """Return the number of objects: counted once per process, then only the rows added since.

    Objects are only ever added (ids grow, none is deleted), so the rows above the highest id
    seen last time are the new ones; count(*) of the whole table would read all of it each time.
    """
    key = str(s.get_bind().url)
    top = s.scalar(select(func.max(Object.id))) or 0
    with _COUNTS_LOCK:
        seen = _COUNTS.get(key)
    if seen is not None and seen[0] == top:
        return seen[1]
    if seen is not None and seen[0] < top:
        n = seen[1] + s.scalar(select(func.count()).select_from(Object).where(
            Object.id > seen[0], Object.id <= top))
    else:  # first time in this process (or the table shrank): count it all once
        n = s.scalar(select(func.count()).select_from(Object).where(Object.id <= top))
    with _COUNTS_LOCK:
        _COUNTS[key] = (top, n)
    return n


def grown_clause(s):
    """A condition on Node: the node has been grown (a grow decision of it not undone)."""
    dialect = s.get_bind().dialect.name
    about = literal_column(_EVENT_NODE.get(dialect, _EVENT_NODE["sqlite"]))
    # SQLite: "+" drops the column's integer affinity, which would keep the index out of use
    node = cast(Node.id, String) if dialect == "postgresql" else literal_column("+nodes.id")
    return exists().where(and_(about == node, Event.action.in_(GROW_ACTIONS),
                               Event.undone_by.is_(None))).correlate(Node)


def progress(p) -> dict:
    """Return the counts shown on the home page (from the nodes table; cheap at any size)."""
    with p.session() as s:
        total = object_count(s)
        by_status = dict(s.execute(select(Node.status, func.count(Node.id))
                                   .where((Node.status != "candidate") | (Node.n_members > 0))
                                   .group_by(Node.status)).all())
        labelled = s.scalar(select(func.coalesce(func.sum(Node.n_members), 0))
                            .where(Node.status == "approved")) or 0
        grown = s.scalar(select(func.count()).select_from(Node).where(
            Node.status == "approved", grown_clause(s)))  # only approved nodes are grown
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
        grown = case((grown_clause(s), 1), else_=0)
        appr = s.execute(select(Node.id, Node.name, Node.n_members, claimer, grown.label("grown"))
                         .outerjoin(User, User.id == Node.claimed_by)
                         .where(Node.status == "approved", Node.n_members > 0)
                         .order_by(grown, Node.n_members.desc(), Node.id).limit(limit)).all()
    return {"validate": [r._asdict() for r in cand], "grow": [r._asdict() for r in appr]}
