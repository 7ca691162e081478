"""Organise labelled nodes: names, tree moves, umbrellas, "more like this", object labels."""

from __future__ import annotations

import re
from collections import Counter

from sqlalchemy import func, select

from ..store import Membership, Node, Object, utcnow
from ._core import Change, WorkflowError, check_claim, get_node, name_in_use, parent_for_name
from .adopt import label_for_name
from .validate import merge  # noqa: F401  (re-exported: merging is organising too)

LIVE = ("candidate", "approved")


def name(project, user_id, node_id, name: str | None) -> str | None:
    """Name (or rename, or with None/"" unname) a node; return the name it got. A name that
    another node spells with other capitals takes that spelling."""
    with project.transaction() as s:
        node = get_node(s, node_id, LIVE)
        check_claim(node, user_id)
        new = name_in_use(s, name, node.id)
        prev = node.name
        ch = Change(s, user_id)
        parent = parent_for_name(s, new, node) if node.status == "approved" and node.n_members else None
        ch.set_node(node, name=new, **({"parent_id": parent} if parent is not None else {}))
        ch.finish("name", {"node": node.id, "name": new, "previous": prev}, bump=False)
    return new


def _display_names(s) -> dict[int, str]:
    """Return node id -> label of every labelled approved node; `name<parent` where ambiguous."""
    try:
        from ..labels import node_labels
    except ImportError:  # a build without morphocluster.labels: names of named nodes only
        node_labels = None
    if node_labels is not None:
        return {nid: nl.display for nid, nl in node_labels(s).items()}
    rows = s.execute(select(Node.id, Node.name, Node.parent_id)
                     .where(Node.status == "approved", Node.name.is_not(None))).all()
    count = Counter(n for _, n, _ in rows)
    parents = dict(s.execute(select(Node.id, Node.name)).all()) if any(
        c > 1 for c in count.values()) else {}
    out = {}
    for nid, n, pid in rows:
        pname = parents.get(pid) if count[n] > 1 else None
        out[nid] = f"{n}<{pname}" if pname else n
    return out


def known_names(project, prefix: str = "", limit: int = 50, imported: bool = True) -> list[str]:
    """Return names in use and (unless not `imported`) imported categories starting with
    `prefix` (case-insensitive)."""
    p = (prefix or "").strip().lower()
    with project.session() as s:
        names = set(_display_names(s).values())
        names.update(n for n in s.scalars(select(Node.name).where(
            Node.status.in_(LIVE), Node.name.is_not(None)).distinct()))
        if imported:
            names.update(s.scalars(select(Object.imported_label).where(
                Object.imported_label.is_not(None)).distinct()))
    hits = sorted((n for n in names if n.lower().startswith(p)), key=lambda n: (n.lower(), n))
    return hits[:limit]


def find_node(project, text: str) -> int:
    """Return the id of the live node that `text` means: its id ('#12', or '12' where no node is
    called so), or a name as
    the name fields offer it (a label, its path or `name<parent`, case aside; a label that
    several nodes share means its largest node), or a candidate's name when only one has it."""
    text = (text or "").strip()
    if not text:
        raise WorkflowError("type a node's name or id")
    if re.fullmatch(r"#[0-9]+", text):
        return _node_id(text[1:])
    with project.session() as s:
        if re.fullmatch(r"[0-9]+", text):  # a node may be called '3': its name wins, '#3' is the id
            named = s.scalars(select(Node.id).where(Node.name == text, Node.status.in_(LIVE))
                              .order_by(Node.id)).first()
            return named if named is not None else _node_id(text)
        have, lab = label_for_name(s, text)
        if lab in have:
            return have[lab]
        ids = list(s.scalars(select(Node.id).where(
            func.lower(Node.name) == text.lower(), Node.status.in_(LIVE)).order_by(Node.id)))
    if len(ids) > 1:
        raise WorkflowError(f"{text!r} names several nodes ({', '.join(f'#{i}' for i in ids[:6])}): "
                            "type the id of the one you mean")
    if not ids:
        raise WorkflowError(f"no node is called {text!r}: type a name the field offers, or a node id")
    return ids[0]


def _node_id(digits: str) -> int:
    # an id no database column holds (>= 2^63) names no node: refused here, not by the database
    if len(digits) > 19 or int(digits) >= 2**63:
        raise WorkflowError(f"node #{digits[:25]} not found")
    return int(digits)


def namesakes(project, node_id) -> list[int]:
    """Other validated nodes with the same name and parent as this one: together one class."""
    with project.session() as s:
        node = s.get(Node, int(node_id))
        if node is None or not node.name:
            return []
        return list(s.scalars(select(Node.id).where(
            Node.name == node.name, Node.status == "approved", Node.id != node.id,
            Node.parent_id.is_(None) if node.parent_id is None else Node.parent_id == node.parent_id)
            .order_by(Node.id)))


def _ancestors(s, node_id):
    seen = []
    while node_id is not None:
        seen.append(node_id)
        node_id = s.scalar(select(Node.parent_id).where(Node.id == node_id))
        if node_id in seen:
            break
    return seen


def move(project, user_id, node_id, new_parent_id) -> None:
    """Put a node under another, validated node (None: at the top of the tree)."""
    with project.transaction() as s:
        node = get_node(s, node_id, LIVE)
        check_claim(node, user_id)
        if new_parent_id is not None:
            get_node(s, new_parent_id, ("approved",))
            if node.id in _ancestors(s, int(new_parent_id)):
                raise WorkflowError(f"cannot move node {node.id} under itself or a node below it")
        ch = Change(s, user_id)
        ch.set_node(node, parent_id=None if new_parent_id is None else int(new_parent_id))
        ch.finish("move", {"node": node.id, "parent": new_parent_id}, bump=False)


def umbrella(project, user_id, node_ids, name: str) -> int:
    """Group nodes under a new approved umbrella node called `name`; return its id."""
    ids = sorted({int(i) for i in node_ids})
    if not ids:
        raise WorkflowError("no nodes to group")
    if not (name or "").strip():
        raise WorkflowError("an umbrella needs a name")
    with project.transaction() as s:
        nodes = [get_node(s, i, LIVE) for i in ids]
        parents = {n.parent_id for n in nodes}
        ch = Change(s, user_id)
        top = ch.create_node(name=name_in_use(s, name), status="approved", approved_by=user_id,
                             approved_at=utcnow(), parent_id=parents.pop() if len(parents) == 1 else None)
        for n in nodes:
            ch.set_node(n, parent_id=top.id)
        ch.finish("umbrella", {"node": top.id, "children": ids, "name": top.name}, bump=False)
        return top.id


def new_node_from_object(project, user_id, object_pk, name: str | None = None) -> int:
    """Start a new approved node from one object ("more like this"); return its id."""
    with project.transaction() as s:
        if s.get(Object, int(object_pk)) is None:
            raise WorkflowError(f"object {object_pk} not found")
        ch = Change(s, user_id)
        name = name_in_use(s, name)
        node = ch.create_node(name=name, status="approved", approved_by=user_id, approved_at=utcnow(),
                              params={"seed": int(object_pk)})
        parent = parent_for_name(s, name, node)
        if parent is not None:
            node.parent_id = parent
        ch.assign([int(object_pk)], node.id, "validated")
        ch.finish("new_node", {"node": node.id, "object": int(object_pk)})
        return node.id


def tree(project, candidates: bool = True) -> list[dict]:
    """Return every live node with its member count and the count of its whole subtree.

    `candidates=False`: the approved nodes only (and what hangs below them), without reading
    the thousands of waiting candidates a large project has.
    """
    q = select(Node.id, Node.parent_id, Node.name, Node.status, Node.n_members,
               Node.round).where(Node.status.in_(LIVE))
    if not candidates:
        q = q.where((Node.status == "approved") | Node.parent_id.is_not(None))
    with project.session() as s:
        rows = s.execute(q.order_by(Node.id)).all()
        labels = _display_names(s)
    nodes = {r.id: {"id": r.id, "parent_id": r.parent_id, "name": r.name, "label": labels.get(r.id),
                    "status": r.status, "round": r.round, "n_members": r.n_members,
                    "n_total": r.n_members} for r in rows}
    for nid, node in nodes.items():
        seen, pid = {nid}, node["parent_id"]
        while pid in nodes and pid not in seen:
            nodes[pid]["n_total"] += node["n_members"]
            seen.add(pid)
            pid = nodes[pid]["parent_id"]
    return list(nodes.values())


def labels(project) -> dict[int, str]:
    """Return Object.id -> label of every object in a named approved node."""
    with project.session() as s:
        names = _display_names(s)
        rows = s.execute(select(Membership.object_pk, Membership.node_id)
                         .where(Membership.node_id.in_(list(names)))).all() if names else []
    return {pk: names[nid] for pk, nid in rows}


def object_label(project, object_pk) -> str | None:
    """Return an object's label: the (display) name of its approved node, else None."""
    with project.session() as s:
        nid = s.scalar(select(Membership.node_id).where(Membership.object_pk == int(object_pk)))
        return _display_names(s).get(nid) if nid is not None else None


def counts(project) -> dict[str, int]:
    """Return how many objects are labelled, in candidates, and unassigned."""
    with project.session() as s:
        total = s.scalar(select(func.count()).select_from(Object)) or 0
        by = dict(s.execute(select(Node.status, func.count()).select_from(Membership)
                            .join(Node, Node.id == Membership.node_id).group_by(Node.status)).all())
    return {"objects": total, "approved": by.get("approved", 0), "candidate": by.get("candidate", 0),
            "unassigned": total - sum(by.values())}
