"""Labels of objects as the cluster tree gives them, streamed for exports, the web UI and suggest.

An object's label is the name of the approved node it belongs to, or, where that node has no
name, of its nearest named ancestor. `label_path` joins the names of the named ancestors with
'>'. Where one name is used in two places of the tree, the display name follows EcoTaxa's
convention `name<parent` (more ancestors are added until it is unique). The status is the
membership's: 'validated' (a human saw the object) or 'predicted' (accepted without being shown);
`status="validated"` keeps the labels a human saw only (a predicted object is then unlabelled).
The annotator is the user who added the object to the node, or, for members that were in the
cluster when it was approved, the user who approved it (with the approval time).
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Iterator, NamedTuple

from sqlalchemy import func, select

from .store import Membership, Node, Object, User

WHICH = ("validated", "all")
STATUSES = ("any", "validated")  # which labels count: validated and predicted, or validated only
CHUNK = 5000


class LabelRow(NamedTuple):
    pk: int                       # Object.id
    object_id: str
    path: str                     # image path relative to the project's images/ folder
    label: str | None             # display name (unique), None if unlabelled
    name: str | None              # the plain node name
    label_path: str | None        # 'a>b>c'
    status: str | None            # 'validated' | 'predicted' | None
    annotator: str | None         # user name
    annotated_at: datetime | None  # UTC, naive
    node_id: int | None           # the approved node that labels it
    meta: dict | None             # imported metadata (only with with_meta=True)


@dataclass(frozen=True)
class NodeLabel:
    """What an approved node gives its members."""

    name: str
    display: str
    path: str
    names: tuple  # the named ancestors' names, root first, ending with name
    approved_by: int | None = None
    approved_at: datetime | None = None


def node_labels(session) -> dict[int, NodeLabel]:
    """Return {approved node id: NodeLabel} for every approved node that has a label."""
    # approved nodes and their ancestors (every ancestor is someone's parent): not the thousands
    # of candidates and dissolved nodes that clustering rounds leave
    parents = select(Node.parent_id).where(Node.parent_id.is_not(None))
    rows = session.execute(select(Node.id, Node.parent_id, Node.name, Node.status, Node.approved_by,
                                  Node.approved_at)
                           .where((Node.status == "approved") | Node.id.in_(parents))).all()
    approval = {r.id: (r.approved_by, r.approved_at) for r in rows if r.status == "approved"}
    parent = {r.id: r.parent_id for r in rows}
    # a dissolved node was given back: its name labels nothing any more
    name = {r.id: (r.name.strip() if r.name and r.name.strip() and r.status != "dissolved" else None)
            for r in rows}
    named_chain: dict[int, tuple] = {}

    def chain(nid: int) -> tuple:
        # iterative walk to the root so deep trees do not hit the recursion limit
        stack, seen = [], set()
        cur = nid
        while cur is not None and cur not in named_chain and cur not in seen:
            seen.add(cur)
            stack.append(cur)
            cur = parent.get(cur)
        base = named_chain.get(cur, ()) if cur is not None else ()
        for n in reversed(stack):
            base = base + (name[n],) if name.get(n) else base
            named_chain[n] = base
        return named_chain[nid]

    approved = {r.id: chain(r.id) for r in rows if r.status == "approved"}
    approved = {k: v for k, v in approved.items() if v}
    return {nid: NodeLabel(names[-1], disp, ">".join(names), names, *approval[nid])
            for nid, names, disp in _displays(approved)}


def _displays(approved: dict[int, tuple]):
    """Yield (node id, names, display name); ambiguous names get '<parent' (EcoTaxa style)."""
    places: dict[str, set] = {}
    for names in approved.values():
        places.setdefault(names[-1], set()).add(names)
    display_of: dict[tuple, str] = {}
    for nm, paths in places.items():
        for names in paths:
            if len(paths) == 1:
                display_of[names] = nm
                continue
            # the fewest nearest ancestors that tell this place from the others
            for d in range(1, max(len(p) for p in paths)):
                ctx = names[:-1][-d:]
                if all(p[:-1][-d:] != ctx for p in paths if p != names):
                    break
            display_of[names] = "<".join((nm,) + tuple(reversed(ctx)))
    for nid, names in approved.items():
        yield nid, names, display_of[names]


def node_display(session, node: Node) -> str | None:
    """A node's name as its label is shown: 'egg<Fish' where another validated node is 'egg'
    (the whole tree is read only then)."""
    if not node.name or node.status != "approved" or session.scalar(
            select(func.count()).select_from(Node).where(Node.name == node.name,
                                                          Node.status == "approved")) < 2:
        return node.name
    shown = node_labels(session).get(node.id)
    return shown.display if shown else node.name


def user_names(session) -> dict[int, str]:
    return dict(session.execute(select(User.id, User.username)).all())


def extra_images(meta: dict | None) -> list[dict]:
    """Return an object's further images ({"rank", "path", "file"}) kept by an EcoTaxa import;
    imports before they were copied listed bare file names, which name nothing stored."""
    return [e for e in (meta or {}).get("_extra_images") or () if isinstance(e, dict)]


def unnamed_approved(session) -> tuple[int, list[int]]:
    """Return (objects, node ids) of approved nodes that no name labels, on them or above them:
    those objects count as sorted but export without a label."""
    named = node_labels(session)
    rows = [(i, n) for i, n in session.execute(select(Node.id, Node.n_members).where(
        Node.status == "approved", Node.n_members > 0)) if i not in named]
    return sum(n for _, n in rows), sorted(i for i, _ in rows)


def object_labels(project, which: str = "validated", with_meta: bool = False,
                  chunk: int = CHUNK, status: str = "any") -> Iterator[LabelRow]:
    """Stream one LabelRow per object, ordered by Object.id.

    which='validated': only labelled objects (members of an approved node that has a name);
    which='all': every object, unlabelled ones with label None. status='validated': only the
    labels a human saw; a predicted object is unlabelled (left out, or label None with 'all').
    """
    if which not in WHICH:
        raise ValueError(f"labels: {which!r}, expected one of {', '.join(WHICH)}")
    if status not in STATUSES:
        raise ValueError(f"status: {status!r}, expected one of {', '.join(STATUSES)}")
    seen_only = status == "validated"
    with project.session() as s:
        labels = node_labels(s)
        users = user_names(s)
        cols = [Object.id, Object.object_id, Object.path, Membership.node_id, Membership.status,
                Membership.added_by, Membership.added_at]
        if with_meta:
            cols.append(Object.meta)
        q = select(*cols)
        if which == "all":
            q = q.select_from(Object).outerjoin(Membership, Membership.object_pk == Object.id)
        else:
            q = (q.select_from(Object).join(Membership, Membership.object_pk == Object.id)
                 .join(Node, Node.id == Membership.node_id).where(Node.status == "approved"))
            if seen_only:
                q = q.where(Membership.status == "validated")
        for lo, hi in id_windows(s, chunk):
            for r in s.execute(q.where(Object.id >= lo, Object.id < hi).order_by(Object.id)):
                nl = labels.get(r.node_id) if r.node_id is not None else None
                if seen_only and r.status != "validated":
                    nl = None
                meta = r.meta if with_meta else None
                if nl is None:
                    if which == "all":
                        yield LabelRow(r.id, r.object_id, r.path, None, None, None, None, None,
                                       None, None, meta)
                    continue
                status = r.status if r.status in ("validated", "predicted") else "predicted"
                # members that were in the cluster when it was approved carry no added_by:
                # whoever approved the node labelled them, then
                by, at = (r.added_by, r.added_at) if r.added_by is not None \
                    else (nl.approved_by, nl.approved_at or r.added_at)
                yield LabelRow(r.id, r.object_id, r.path, nl.display, nl.name, nl.path, status,
                               users.get(by), at, r.node_id, meta)


def id_windows(session, size: int = CHUNK):
    """Yield [lo, hi) ranges of Object.id covering every object, `size` ids each.

    Queries restricted to one window never sort more than `size` rows, whatever plan the
    database picks (an ORDER BY over a join would otherwise sort the whole table in memory).
    """
    # min and max apart: together, SQLite scans the table instead of reading two index ends
    lo, hi = session.scalar(select(func.min(Object.id))), session.scalar(select(func.max(Object.id)))
    if lo is None:
        return
    hook, first = _WINDOW_HOOK.get(), lo
    while lo <= hi:
        if hook is not None:
            hook((lo - first) / (hi - first + 1))
        yield lo, lo + size
        lo += size


_WINDOW_HOOK: contextvars.ContextVar = contextvars.ContextVar("id_window_hook", default=None)


@contextmanager
def on_windows(fn):
    """Call fn(fraction of the ids done) before each window `id_windows` yields in this thread:
    how an export job reports progress (and is cancelled: fn may raise) without a list of ids."""
    token = _WINDOW_HOOK.set(fn)
    try:
        yield
    finally:
        _WINDOW_HOOK.reset(token)


def count_labelled(project) -> int:
    """Return how many objects carry a label."""
    with project.session() as s:
        labels = node_labels(s)
        if not labels:
            return 0
        n = 0
        ids = list(labels)
        for i in range(0, len(ids), 500):
            n += s.scalar(select(func.count()).select_from(Membership)
                          .where(Membership.node_id.in_(ids[i:i + 500])))
        return n


def object_record(project, pk: int) -> dict | None:
    """Return one object's stored fields and the node it is filed in (None: no such object)."""
    with project.session() as s:
        obj = s.get(Object, int(pk))
        if obj is None:
            return None
        row = s.execute(select(Membership.status, Node.id, Node.name, Node.status)
                        .join(Node, Node.id == Membership.node_id)
                        .where(Membership.object_pk == obj.id)).first()
        return {"pk": obj.id, "object_id": obj.object_id, "width": obj.width,
                "height": obj.height, "meta": obj.meta or {}, "imported_label": obj.imported_label,
                "extra_images": extra_images(obj.meta),
                "imported_status": obj.imported_status,
                "node": dict(zip(("membership", "id", "name", "status"), row)) if row else None}


SUBSTRING_ROWS = 20_000  # newest objects looked through for a part in the middle of an id


def find_objects(project, text: str, limit: int = 48, scan: int = SUBSTRING_ROWS):
    """Return ((Object.id, object_id), ...) that `text` names, and whether the search was partial.

    The object of that id (or internal id, `#12`); else those whose id starts with it, ignoring
    case (an index walk, among all objects); else, to fill up to `limit`, those whose id contains
    it among the newest `scan` objects only (partial: True when there are more): a middle part is
    no index lookup, and reading 10 M ids on every search is not worth it.
    """
    text = (text or "").strip()
    if not text:
        return [], False
    with project.session() as s:
        hit = s.execute(select(Object.id, Object.object_id).where(Object.object_id == text)).all()
        # '#12' is an internal id: ASCII digits that a 64-bit id column can hold
        if not hit and text.startswith("#") and text[1:].isascii() and text[1:].isdigit() \
                and len(text) <= 20 and int(text[1:]) < 2**63:
            hit = s.execute(select(Object.id, Object.object_id).where(Object.id == int(text[1:]))).all()
        if hit:
            return [tuple(r) for r in hit], False
        like = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        if s.get_bind().dialect.name == "sqlite":  # LIKE ignores ASCII case: the NOCASE index
            q = (select(Object.id, Object.object_id).where(Object.object_id.like(like, escape="\\"))
                 .order_by(Object.object_id.collate("NOCASE")))
        else:  # PostgreSQL: the lower(object_id) text_pattern_ops index
            q = select(Object.id, Object.object_id).where(
                func.lower(Object.object_id).like(func.lower(like), escape="\\"))
        rows = sorted((tuple(r) for r in s.execute(q.limit(limit))), key=lambda r: r[1].casefold())
        if len(rows) >= limit:
            return rows, False
        newest = s.execute(select(Object.id, Object.object_id).order_by(Object.id.desc())
                           .limit(scan + 1)).all()
    needle, have = text.casefold(), {r[0] for r in rows}
    for pk, oid in newest[:scan]:
        if pk not in have and needle in oid.casefold():
            rows.append((pk, oid))
            if len(rows) >= limit:
                break
    return rows, len(newest) > scan and len(rows) < limit
