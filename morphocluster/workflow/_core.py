"""Shared machinery of the workflow: errors, node look-up, claims and reversible changes.

Every decision goes through one `Change`: it moves objects, edits nodes, adds rejections,
keeps `Node.n_members` right, bumps `Node.members_version` of every touched node and writes
ONE event whose payload holds `reverse`, everything `undo` needs to put things back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import object_session

from ..store import Membership, Node, Rejection, User, log_event, utcnow

CHUNK = 900  # stay below SQLite's bound-parameter limit
NODE_FIELDS = ("name", "status", "parent_id", "approved_by", "approved_at", "round")


class WorkflowError(RuntimeError):
    """An action that cannot be done: unknown node, wrong state, claimed by someone else, ..."""


@dataclass
class Page:
    """One screen of objects: Object.ids in display order, where they start, how many there are."""

    pks: list[int]
    offset: int
    total: int
    members_version: int
    distances: list[float] = field(default_factory=list)


def chunks(seq, n: int = CHUNK):
    seq = list(seq)
    for i in range(0, len(seq), n):
        yield seq[i:i + n]


def get_node(s, node_id: int, statuses=None) -> Node:
    """Return the node or raise WorkflowError; optionally require one of `statuses`."""
    node = s.get(Node, int(node_id)) if node_id is not None else None
    if node is None:
        raise WorkflowError(f"node {node_id} not found")
    if statuses is not None and node.status not in statuses:
        if node.status == "dissolved":
            into = (node.params or {}).get("merged_into")
            raise WorkflowError(f"node {node_id} was merged into node {into}" if into else
                                f"node {node_id} was dissolved: its objects went back to the pool")
        wanted = " or ".join("validated" if st == "approved" else st for st in statuses)
        have = "validated" if node.status == "approved" else node.status
        raise WorkflowError(f"node {node_id} is {have} (now), not {wanted}: reload the page")
    return node


def check_claim(node: Node, user_id) -> None:
    """Raise WorkflowError if another user holds an unexpired claim on the node."""
    if (node.claimed_by is not None and node.claimed_by != user_id
            and node.claimed_until is not None and node.claimed_until > utcnow()):
        s = object_session(node)
        who = s.get(User, node.claimed_by) if s is not None else None
        raise WorkflowError(f"node {node.id} is claimed by {who.username if who else node.claimed_by} "
                            f"until {node.claimed_until:%H:%M:%S} UTC")


def check_version(node: Node, members_version) -> None:
    """Raise WorkflowError if the screen showed another version of the node's members."""
    if members_version is not None and int(members_version) != node.members_version:
        raise WorkflowError(f"node {node.id} changed since it was shown (someone decided on it "
                            "meanwhile); reload it")


def claim(s, node: Node, user_id, minutes: float) -> bool:
    """Claim a node atomically; False if someone else holds an unexpired claim."""
    now = utcnow()
    res = s.execute(
        update(Node)
        .where(Node.id == node.id)
        .where((Node.claimed_by.is_(None)) | (Node.claimed_by == user_id) | (Node.claimed_until < now))
        .values(claimed_by=user_id, claimed_until=now + timedelta(minutes=minutes))
        .execution_options(synchronize_session=False)
    )
    s.expire(node, ["claimed_by", "claimed_until"])
    return res.rowcount == 1


def free_of_approved(ch: Change, pks) -> list:
    """Return `pks`; raise if any of them already belongs to an approved node."""
    cur = ch.current(pks)
    taken = sorted(p for p, (nid, _) in cur.items() if ch.s.get(Node, nid).status == "approved")
    if taken:
        raise WorkflowError(f"objects {taken[:5]} already belong to an approved node; reload")
    return list(pks)


def name_in_use(s, name: str | None, node_id: int | None = None) -> str | None:
    """Return `name` stripped, or the spelling another live node already gives it when the two
    differ only in case ('Acantharia' where 'acantharia' exists), so one class stays one label.
    Refuse the separators of label paths and display names ('>' and '<')."""
    name = (name or "").strip() or None
    if name is None:
        return None
    if ">" in name or "<" in name:
        raise WorkflowError(f"{name!r}: a name cannot contain '>' or '<', which join the levels of "
                            "a label ('a>b', or 'b<a' as EcoTaxa shows it); put the node under its "
                            "parent node instead")
    rows = s.execute(select(Node.name, func.count()).where(
        func.lower(Node.name) == name.lower(), Node.status.in_(("candidate", "approved")),
        Node.id != (node_id if node_id is not None else -1)).group_by(Node.name)).all()
    spellings = {n: c for n, c in rows if n and n.casefold() == name.casefold()}
    if not spellings or name in spellings:
        return name
    return max(sorted(spellings), key=spellings.get)


def parent_for_name(s, name: str | None, node: Node) -> int | None:
    """Return the parent that a top-level `node` named `name` should move under: the one
    parent that every other approved node of that name has (a class put under an umbrella
    earlier), so that the same name is the same label. None: leave it where it is."""
    if not name or node.parent_id is not None:
        return None
    parents = set(s.scalars(select(Node.parent_id).where(
        Node.name == name, Node.status == "approved", Node.id != node.id)))
    return parents.pop() if len(parents) == 1 and None not in parents else None


def member_pks(s, node_id: int) -> list[int]:
    return list(s.scalars(select(Membership.object_pk).where(Membership.node_id == node_id)
                          .order_by(Membership.object_pk)))


def _json_value(v):
    return v.isoformat() if isinstance(v, datetime) else v


def _from_json(field, v):
    if field.endswith("_at") and isinstance(v, str):
        return datetime.fromisoformat(v)
    return v


class Change:
    """Accumulate one reversible decision inside a session; `finish` writes its event."""

    def __init__(self, s, user_id):
        self.s = s
        self.user_id = user_id
        self.moves: dict[int, list] = {}      # pk -> [prev_node, prev_status, new_node, new_status]
        self.node_prev: dict[int, dict] = {}  # node id -> previous values of edited fields
        self.created: list[int] = []
        self.rejections: list[list[int]] = []
        self.touched: set[int] = set()

    # --- objects ------------------------------------------------------------------------------
    def current(self, pks) -> dict[int, tuple]:
        """Return pk -> (node_id, status) of the given objects that are in a node."""
        out = {}
        for part in chunks(pks):
            for pk, nid, st in self.s.execute(
                    select(Membership.object_pk, Membership.node_id, Membership.status)
                    .where(Membership.object_pk.in_(part))):
                out[pk] = (nid, st)
        return out

    def assign(self, pks, node_id, status=None) -> int:
        """Put objects into `node_id` with `status` (None: back to the unlabelled pool)."""
        pks = sorted({int(p) for p in pks})
        if not pks:
            return 0
        self.s.flush()  # pending node edits must reach the database before expire_all below
        cur = self.current(pks)
        same_node, moved = [], []
        for pk in pks:
            prev = cur.get(pk, (None, None))
            if prev == (node_id, status):
                continue
            rec = self.moves.get(pk)
            if rec is None:
                self.moves[pk] = [prev[0], prev[1], node_id, status]
            else:
                rec[2], rec[3] = node_id, status
            if prev[0] is not None:
                self.touched.add(prev[0])
            (same_node if prev[0] == node_id and node_id is not None else moved).append(pk)
        if node_id is not None:
            self.touched.add(node_id)
        for part in chunks(same_node):
            self.s.execute(update(Membership).where(Membership.object_pk.in_(part))
                           .values(status=status).execution_options(synchronize_session=False))
        for part in chunks(moved):
            self.s.execute(delete(Membership).where(Membership.object_pk.in_(part))
                           .execution_options(synchronize_session=False))
        if node_id is not None and moved:
            now = utcnow()
            self.s.execute(Membership.__table__.insert(), [
                {"object_pk": pk, "node_id": node_id, "status": status, "added_by": self.user_id,
                 "added_at": now} for pk in moved])
        self.s.expire_all()
        return len(same_node) + len(moved)

    def reject(self, node_id: int, pks) -> None:
        """Add Rejection rows (existing ones are kept, not duplicated)."""
        pks = sorted({int(p) for p in pks})
        have = set()
        for part in chunks(pks):
            have.update(self.s.scalars(select(Rejection.object_pk).where(
                Rejection.node_id == node_id, Rejection.object_pk.in_(part))))
        new = [pk for pk in pks if pk not in have]
        if new:
            self.s.execute(Rejection.__table__.insert(), [
                {"node_id": node_id, "object_pk": pk, "user_id": self.user_id, "created_at": utcnow()}
                for pk in new])
            self.rejections.extend([node_id, pk] for pk in new)

    # --- nodes --------------------------------------------------------------------------------
    def set_node(self, node: Node, **fields) -> None:
        prev = self.node_prev.setdefault(node.id, {})
        for k, v in fields.items():
            if k not in prev and node.id not in self.created:
                prev[k] = _json_value(getattr(node, k))
            setattr(node, k, v)
        self.touched.add(node.id)

    def create_node(self, **fields) -> Node:
        fields.setdefault("created_by", self.user_id)
        node = Node(**fields)
        self.s.add(node)
        self.s.flush()
        self.created.append(node.id)
        self.touched.add(node.id)
        return node

    # --- the event ----------------------------------------------------------------------------
    def finish(self, action: str, payload: dict | None = None, bump: bool = True):
        """Recount and bump touched nodes, then write the decision's one event."""
        self.s.flush()
        for nid in sorted(self.touched):
            node = self.s.get(Node, nid)
            if node is None:
                continue
            node.n_members = self.s.scalar(
                select(func.count()).select_from(Membership).where(Membership.node_id == nid)) or 0
            if bump:
                node.members_version = (node.members_version or 0) + 1
        payload = dict(payload or {})
        payload["reverse"] = {
            "moves": [[pk, *rec] for pk, rec in sorted(self.moves.items())],
            "nodes": {str(k): v for k, v in self.node_prev.items() if v},
            "nodes_after": {str(k): {f: _json_value(getattr(self.s.get(Node, k), f)) for f in v}
                            for k, v in self.node_prev.items() if v and self.s.get(Node, k)},
            "created": self.created,
            "rejections": self.rejections,
        }
        return log_event(self.s, self.user_id, action, payload)


def restore_node_fields(change: Change, node: Node, prev: dict, after: dict | None = None) -> int:
    """Put back a node's previous field values, except those changed again since; return skipped."""
    after = after or {}
    keep = {k: v for k, v in prev.items()
            if k not in after or _json_value(getattr(node, k)) == after[k]}
    change.set_node(node, **{k: _from_json(k, v) for k, v in keep.items()})
    return len(prev) - len(keep)
