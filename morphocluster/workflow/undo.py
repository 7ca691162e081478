"""Undo a user's last decision and read the event log."""

from __future__ import annotations

from collections import defaultdict

from sqlalchemy import delete, func, select

from ..store import Event, Membership, Node, NodeCache, Rejection, utcnow
from ._core import Change, WorkflowError, chunks, restore_node_fields

NOT_UNDOABLE = ("undo",)


def undo_last(project, user_id) -> dict:
    """Reverse the user's last decision that is not undone yet; return what was undone.

    Objects that someone changed again since are left as they are now (counted as `skipped`;
    node fields changed since, as `skipped_fields`). A decision that made a node which someone
    has since worked on, put objects or nodes into, or holds a claim on is not undone
    (WorkflowError): that would take their work away with the node; nor an approve of a node
    grown since (it would unlabel its growth).
    """
    with project.transaction() as s:
        ev = s.scalars(select(Event).where(Event.user_id == user_id, Event.undone_by.is_(None),
                                           Event.action.not_in(NOT_UNDOABLE))
                       .order_by(Event.id.desc())).first()
        if ev is None:
            raise WorkflowError("nothing to undo")
        rev = (ev.payload or {}).get("reverse")
        if rev is None:
            raise WorkflowError(f"event {ev.id} ({ev.action}) cannot be undone")
        _refuse_unlabelling(s, ev, rev)
        ch = Change(s, user_id)
        # back to the previous membership, unless someone changed the object again since
        cur = ch.current([m[0] for m in rev["moves"]])
        groups, skipped, fields = defaultdict(list), 0, 0
        made = set(rev["created"])
        for pk, prev_node, prev_status, new_node, new_status in rev["moves"]:
            if cur.get(pk, (None, None)) != (new_node, new_status):
                if new_node in made:  # someone worked on a node this decision made
                    raise WorkflowError(
                        f"cannot undo this {ev.action}: node {new_node}, which it made, has been "
                        "worked on since (by someone else); decide on that node instead")
                skipped += 1
                continue
            groups[(prev_node, prev_status)].append(pk)
        for nid in made:
            node = s.get(Node, nid)
            if node is not None and node.claimed_by not in (None, user_id) and \
                    node.claimed_until is not None and node.claimed_until > utcnow():
                raise WorkflowError(f"cannot undo this {ev.action}: someone is working on node "
                                    f"{nid}, which it made; decide on that node instead")
        for (nid, st), pks in groups.items():
            if nid is not None and s.get(Node, nid) is None:
                nid, st = None, None
            ch.assign(pks, nid, st)
        after = rev.get("nodes_after", {})
        for nid, prev in rev["nodes"].items():
            node = s.get(Node, int(nid))
            if node is not None:
                fields += restore_node_fields(ch, node, prev, after.get(nid))
        by_node = defaultdict(list)
        for nid, pk in rev["rejections"]:
            by_node[nid].append(pk)
        for nid, pks in by_node.items():
            for part in chunks(pks):
                s.execute(delete(Rejection).where(Rejection.node_id == nid,
                                                  Rejection.object_pk.in_(part)))
        s.flush()
        for nid in reversed(rev["created"]):
            _drop_created(ch, s, nid, ev.action)
        new = ch.finish("undo", {"event": ev.id, "action": ev.action, "skipped": skipped,
                                 "skipped_fields": fields})
        ev.undone_by = new.id
        return {"event": ev.id, "action": ev.action, "skipped": skipped, "skipped_fields": fields,
                "node": (ev.payload or {}).get("node")}


def _refuse_unlabelling(s, ev: Event, rev: dict) -> None:
    """Refuse to turn a validated node back into a candidate while it holds objects that
    someone added after the decision (growing it): the undo would unlabel their work."""
    moved = {m[0] for m in rev["moves"]}
    for nid, prev in rev["nodes"].items():
        node = s.get(Node, int(nid))
        if prev.get("status") != "candidate" or node is None or node.status != "approved":
            continue
        since = [pk for pk in s.scalars(select(Membership.object_pk).where(
            Membership.node_id == node.id, Membership.added_at > ev.created_at)) if pk not in moved]
        if since:
            raise WorkflowError(
                f"cannot undo this {ev.action}: node {node.id} has {len(since)} object"
                f"{'s' * (len(since) != 1)} added since (it was grown), which would lose their "
                "label; remove those first, or dissolve or split the node instead")


def _drop_created(ch: Change, s, nid: int, action: str) -> None:
    """Delete a node the undone event created; refuse (rolling the undo back) if it is in use."""
    node = s.get(Node, nid)
    if node is None:
        return
    busy = s.scalar(select(func.count()).select_from(Membership).where(Membership.node_id == nid))
    kids = s.scalar(select(func.count()).select_from(Node).where(Node.parent_id == nid))
    if busy or kids:
        held = " and ".join(x for x in (f"{busy} object{'s' * (busy != 1)}" if busy else "",
                                        f"{kids} node{'s' * (kids != 1)}" if kids else "") if x)
        raise WorkflowError(
            f"cannot undo this {action}: node {nid}, which it made, holds {held} put there since "
            "(by someone else); dissolve or merge that node instead, or undo their decisions first")
    s.execute(delete(Rejection).where(Rejection.node_id == nid))
    s.execute(delete(NodeCache).where(NodeCache.node_id == nid))
    ch.touched.discard(nid)
    s.delete(node)
    s.flush()


def log(project, limit: int = 50, offset: int = 0, user_id=None) -> list[dict]:
    """Return events newest first (without their undo data)."""
    with project.session() as s:
        q = select(Event).order_by(Event.id.desc())
        if user_id is not None:
            q = q.where(Event.user_id == user_id)
        rows = s.scalars(q.offset(offset).limit(limit)).all()
        return [{"id": e.id, "user_id": e.user_id, "created_at": e.created_at, "action": e.action,
                 "undone_by": e.undone_by,
                 "payload": {k: v for k, v in (e.payload or {}).items() if k != "reverse"}}
                for e in rows]
