"""Validate seed clusters: claim the next one, page its members, approve, clean, dissolve."""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from ..store import Node, utcnow
from ._core import (Change, Page, WorkflowError, check_claim, check_version, claim, get_node, member_pks,
                    name_in_use, parent_for_name)
from ._stats import kmeans, member_features, node_stats
from .adopt import move_to_labels, split_own, targets_arg

EDITABLE = ("candidate", "approved")


def next_node(project, user_id, claim_minutes: float = 30, round: int | None = None) -> int | None:
    """Claim and return the id of the next candidate node to validate (largest first).

    A user's own unexpired claim comes back first; claims of others are skipped until they expire.
    Returns None when nothing is left.
    """
    with project.transaction() as s:
        now = utcnow()
        q = select(Node).where(Node.status == "candidate", Node.n_members > 0)
        if round is not None:
            q = q.where(Node.round == round)
        own = s.scalars(q.where(Node.claimed_by == user_id, Node.claimed_until > now)
                        .order_by(Node.n_members.desc(), Node.id)).first()
        if own is not None:
            claim(s, own, user_id, claim_minutes)
            return own.id
        free = q.where((Node.claimed_by.is_(None)) | (Node.claimed_until <= now))
        for node in s.scalars(free.order_by(Node.n_members.desc(), Node.id)):
            if claim(s, node, user_id, claim_minutes):
                return node.id
    return None


def take(project, user_id, node_id, claim_minutes: float = 30) -> bool:
    """Claim a candidate node that a user opens (from the queue, a link), unless someone else
    holds it; return whether the user holds it now. Claims are not decisions: no event."""
    with project.session() as s:  # a read first: most views need no write (and no write lock)
        node = get_node(s, node_id)
        if node.status != "candidate":
            return False
    with project.transaction() as s:
        node = get_node(s, node_id)
        return node.status == "candidate" and claim(s, node, user_id, claim_minutes)


def release(project, user_id, node_id) -> None:
    """Give up a claim (no event: claims are not decisions)."""
    with project.transaction() as s:
        node = get_node(s, node_id)
        if node.claimed_by == user_id:
            node.claimed_by, node.claimed_until = None, None


def members(project, node_id, offset: int = 0, limit: int = 50) -> Page:
    """Return one page of a node's members, most to least typical."""
    with project.session() as s:
        node = get_node(s, node_id)
        version = node.members_version
        all_pks = member_pks(s, node.id)
    order = [int(p) for p in node_stats(project, node_id).order]
    if len(order) != len(all_pks):  # members without features go last
        have = set(order)
        order += [p for p in all_pks if p not in have]
    return Page(order[offset:offset + limit], offset, len(order), version)


def approve(project, user_id, node_id, name: str | None = None, seen_pks=None,
            members_version: int | None = None, moved=None, removed=()) -> str | None:
    """Approve a candidate node (optionally naming it); return its name.

    Members in `seen_pks` become 'validated', the others 'predicted'; without `seen_pks` all are
    'validated'. `moved` (member -> another label, as for `remove`) and `removed` (members marked
    wrong: back to the pool, never offered to it again) leave first. One event.
    """
    moved = targets_arg(moved)
    with project.transaction() as s:
        node = get_node(s, node_id, ("candidate",))
        check_claim(node, user_id)
        check_version(node, members_version)
        moved, own = split_own(s, moved, node.id)  # given this node's own label: they stay
        removed = sorted({int(p) for p in removed} - set(moved) - set(own))
        ch = Change(s, user_id)
        if moved or removed:
            _check_members(ch, node, list(moved) + removed)
            ch.reject(node.id, list(moved) + removed)
            ch.assign(removed, None)
            move_to_labels(s, ch, user_id, moved, node.id)
        pks = member_pks(s, node.id)
        if not pks:
            raise WorkflowError(f"node {node.id} has no members left: there is nothing to approve")
        seen = set(pks) if seen_pks is None else {int(p) for p in seen_pks}
        ch.assign([p for p in pks if p in seen], node.id, "validated")
        ch.assign([p for p in pks if p not in seen], node.id, "predicted")
        fields = {"status": "approved", "approved_by": user_id, "approved_at": utcnow()}
        if name is not None:
            fields["name"] = name_in_use(s, name, node.id)
        parent = parent_for_name(s, fields.get("name", node.name), node)
        if parent is not None:  # the class already lives under an umbrella: join it there
            fields["parent_id"] = parent
        ch.set_node(node, **fields)
        node.claimed_by, node.claimed_until = None, None
        ch.finish("approve", {"node": node.id, "name": node.name, "n": len(pks), "moved": len(moved),
                              "removed": len(removed)})
        return node.name


def remove(project, user_id, node_id, object_pks, members_version: int | None = None,
           moved=None) -> int:
    """Put members back into the unlabelled pool and reject them for this node.

    `moved` (member -> another approved node's id, or a label name; a new name makes a node):
    rejected here too, and each goes straight to that label as 'validated'. One event.
    """
    moved = targets_arg(moved)
    with project.transaction() as s:
        node = get_node(s, node_id, EDITABLE)
        check_claim(node, user_id)
        check_version(node, members_version)
        moved, own = split_own(s, moved, node.id)  # given this node's own label: they stay
        pks = sorted({int(p) for p in object_pks} - set(own) | set(moved))
        ch = Change(s, user_id)
        _check_members(ch, node, pks)
        ch.assign([p for p in pks if p not in moved], None)
        ch.reject(node.id, pks)
        move_to_labels(s, ch, user_id, moved, node.id)
        ch.finish("remove", {"node": node.id, "n": len(pks), "moved": len(moved)})
    return len(pks)


def _check_members(ch: Change, node: Node, pks) -> None:
    cur = ch.current(pks)
    strangers = [p for p in pks if cur.get(p, (None,))[0] != node.id]
    if strangers:
        raise WorkflowError(f"objects {strangers[:5]} are not members of node {node.id}")


def remove_from(project, user_id, node_id, rank: int, members_version: int | None = None) -> int:
    """Remove every member from `rank` on (in typicality order): "remove all from here on".

    Only the member at `rank`, the one judged wrong, is rejected for the node; the others were
    not looked at one by one, so they may still be offered to it (and to its label) later."""
    page = members(project, node_id, 0, 10**12)
    if members_version is not None and page.members_version != int(members_version):
        raise WorkflowError(f"node {node_id} changed since it was shown; reload it")
    if not 0 <= int(rank) < page.total:
        raise WorkflowError(f"rank {rank} outside node {node_id} (it has {page.total} members)")
    tail = page.pks[int(rank):]
    with project.transaction() as s:
        node = get_node(s, node_id, EDITABLE)
        check_claim(node, user_id)
        check_version(node, page.members_version)
        ch = Change(s, user_id)
        ch.assign(tail, None)
        ch.reject(node.id, tail[:1])
        ch.finish("remove_from", {"node": node.id, "rank": int(rank), "n": len(tail)})
    return len(tail)


def dissolve(project, user_id, node_id, members_version=None) -> int:
    """Give all members back to the pool and mark the node dissolved. With `members_version`
    (what the screen showed): refuse if the members changed since (someone approved it)."""
    with project.transaction() as s:
        node = get_node(s, node_id, EDITABLE)
        check_claim(node, user_id)
        check_version(node, members_version)
        ch = Change(s, user_id)
        pks = member_pks(s, node.id)
        ch.assign(pks, None)
        ch.set_node(node, status="dissolved")
        node.claimed_by, node.claimed_until = None, None
        ch.finish("dissolve", {"node": node.id, "n": len(pks)})
    return len(pks)


def split(project, user_id, node_id, members_version=None) -> int:
    """Split a node in two by 2-means on its members' features; return the new sibling's id.

    The node keeps the larger part; the other part becomes a new candidate beside it. With
    `members_version`: refuse if the members changed since the screen showed them.
    """
    with project.session() as s:
        node = get_node(s, node_id, EDITABLE)
        check_version(node, members_version)
        pks = member_pks(s, node.id)
    fpks, X = member_features(project, pks)
    if len(fpks) < 2:
        raise WorkflowError(f"node {node_id} has fewer than 2 members with features; nothing to split")
    _, labels = kmeans(X, 2)
    big = int(np.bincount(labels, minlength=2).argmax())
    other = [int(p) for p, lab in zip(fpks, labels) if lab != big]
    with project.transaction() as s:
        node = get_node(s, node_id, EDITABLE)
        check_claim(node, user_id)
        if member_pks(s, node.id) != pks:
            raise WorkflowError(f"node {node_id} changed while splitting; try again")
        ch = Change(s, user_id)
        new = ch.create_node(parent_id=node.parent_id, status="candidate", round=node.round,
                             params={"split_from": node.id})
        ch.assign(other, new.id, "cluster")
        ch.finish("split", {"node": node.id, "new": new.id, "n": len(other)})
        return new.id


def merge(project, user_id, node_id, into_id, members_version=None) -> int:
    """Move all members (and children) of `node_id` into `into_id`; the emptied node is dissolved.

    Into an approved node, validated and predicted members keep their status and proposed
    ('cluster') ones become 'predicted'; into a candidate, all become 'cluster'. With
    `members_version` (of `node_id`, as shown): refuse if its members changed since.
    """
    if int(node_id) == int(into_id):
        raise WorkflowError("cannot merge a node into itself")
    with project.transaction() as s:
        node = get_node(s, node_id, EDITABLE)
        into = get_node(s, into_id, EDITABLE)
        check_claim(node, user_id)
        check_claim(into, user_id)
        check_version(node, members_version)
        if not into.n_members and s.scalar(select(Node.id).where(Node.parent_id == into.id,
                                                                Node.status != "dissolved").limit(1)):
            raise WorkflowError(f"node {into.id} ({into.name or 'unnamed'}) groups other nodes and holds "
                                "no objects of its own: merge into one of its classes, or move this "
                                "node under it")
        ch = Change(s, user_id)
        cur = ch.current(member_pks(s, node.id))
        # into an approved node, members nobody validated become 'predicted'
        status_default = "predicted" if into.status == "approved" else "cluster"
        by_status: dict = {}
        for pk, (_, st) in cur.items():
            st = st if (into.status == "approved" and st != "cluster") else status_default
            by_status.setdefault(st, []).append(pk)
        for st, pks in by_status.items():
            ch.assign(pks, into.id, st)
        for child in s.scalars(select(Node).where(Node.parent_id == node.id)):
            ch.set_node(child, parent_id=node.parent_id if child.id == into.id else into.id)
        ch.set_node(node, status="dissolved", params={**(node.params or {}), "merged_into": into.id})
        node.claimed_by, node.claimed_until = None, None
        ch.finish("merge", {"node": node.id, "into": into.id, "n": len(cur)})
        return len(cur)
