"""Grow an approved node: rank the objects most like it, accept them or reject them.

Candidates are unlabelled objects and members of unapproved candidate nodes, ranked by their
smallest distance to the node's prototypes (FAISS search restricted to allowed objects), never
objects rejected for the node. The ranking is cached per (node, members_version); objects that
got labelled or rejected since are filtered out when a page is served. The page-level search
for the boundary is in `grow_search`.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select

from .. import index
from ..features.matrix import load_matrix
from ..store import Membership, Node, Rejection, utcnow
from ._core import Change, Page, WorkflowError, check_claim, check_version, get_node, member_pks
from ._stats import kmeans, member_features, node_stats
from .adopt import move_to_labels, split_own, targets_arg

_CACHE: dict = {}
_OWN: dict = {}
CHECK_CHUNK = 5_000  # ranked objects checked per query for membership elsewhere
FIRST_DEPTH = 250    # neighbours per prototype ranked for a node's first page (deeper on demand)


def _own(s, node_id: int, version: int, root: str = "") -> np.ndarray:
    """The node's members and the objects rejected for it (the search leaves them out).

    Cached per members version and number of rejections, so paging costs two tiny queries.
    """
    n_rej = s.scalar(select(func.count()).select_from(Rejection).where(Rejection.node_id == node_id))
    key = (root, int(node_id), version, n_rej)
    hit = _OWN.get(key)
    if hit is None:
        members = s.scalars(select(Membership.object_pk).where(Membership.node_id == node_id))
        rejected = s.scalars(select(Rejection.object_pk).where(Rejection.node_id == node_id))
        hit = np.unique(np.fromiter(list(members) + list(rejected), dtype=np.int64))
        if len(_OWN) > 8:
            _OWN.clear()
        _OWN[key] = hit
    return hit


def _offerable(s, node_id: int, pks: np.ndarray, need: int | None = None) -> tuple[np.ndarray, int]:
    """Return (mask, n checked): which of the first `n checked` ranked objects are still
    offerable (in no node but candidates, not rejected). With `need`, stop once that many are
    found: a page costs a few hundred lookups, not one per ranked object."""
    ok = np.ones(len(pks), bool)
    a, size = 0, CHECK_CHUNK if need is None else max(256, 4 * need)
    while a < len(pks):
        part = [int(x) for x in pks[a:a + size]]
        taken = set(s.scalars(select(Membership.object_pk).join(Node, Node.id == Membership.node_id)
                              .where(Membership.object_pk.in_(part),
                                     (Node.status != "candidate") | (Node.id == node_id))))
        taken.update(s.scalars(select(Rejection.object_pk).where(
            Rejection.node_id == node_id, Rejection.object_pk.in_(part))))
        if taken:
            ok[a:a + len(part)] = [x not in taken for x in part]
        a += len(part)
        if need is not None and ok[:a].sum() >= need:
            break
        size = min(CHECK_CHUNK, 2 * size)
    return ok, a


def _n_offerable(s, node_id: int, n_features: int, own: np.ndarray) -> int:
    """How many objects the node could be offered, from the nodes' member counts (no scan)."""
    labelled = s.scalar(select(func.coalesce(func.sum(Node.n_members), 0)).where(
        Node.status != "candidate", Node.id != node_id)) or 0
    return max(0, n_features - int(labelled) - len(own))


def clear_cache() -> None:
    """Forget cached rankings (after annotations were reset outside the workflow)."""
    _OWN.clear()
    _CACHE.clear()


def prototypes(project, node_id: int) -> np.ndarray:
    """Return the prototypes growth ranks by.

    By default those of `nodestats`; the project setting `config["grow"]["n_prototypes"]`
    asks for that many k-means centres of the members instead (the original used 16).
    """
    n = (project.config.get("grow") or {}).get("n_prototypes")
    if not n:
        return np.asarray(node_stats(project, node_id).prototypes, dtype=np.float32)
    with project.session() as s:
        pks = member_pks(s, node_id)
    _, X = member_features(project, pks)
    if len(X) == 0:
        return np.zeros((0, load_matrix(project).X.shape[1]), np.float32)
    return kmeans(X, int(n))[0].astype(np.float32)


def _rank(project, node_id: int, own: np.ndarray, n_pool: int, depth: int):
    """Return (pks, distances, complete) ranked by smallest distance to the prototypes, among
    the `n_pool` objects with features outside `own` (labelled or not: checked afterwards)."""
    protos = prototypes(project, node_id)
    if len(protos) == 0 or n_pool == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), True
    k = min(depth, n_pool)
    # only the node's own objects are named: others' labels are checked on what ranks
    D, I = index.search(project, protos, k, excluded_pks=own)
    d, i = D.ravel(), I.ravel()
    ok = i >= 0
    d, i = d[ok], i[ok]
    order = np.argsort(d, kind="stable")
    d, i = d[order], i[order]
    _, first = np.unique(i, return_index=True)
    first.sort()
    d, i = d[first], i[first]
    complete = k >= n_pool
    if not complete:  # beyond the smallest k-th distance an object might still be missing
        kth = D[:, k - 1][I[:, k - 1] >= 0]
        if len(kth):
            keep = d <= kth.min()
            d, i = d[keep], i[keep]
    return i.astype(np.int64), d.astype(np.float32), complete


def _ranking(project, node_id: int, need: int):
    """Return (offerable pks, distances, members version, how many could be offered)."""
    fm = load_matrix(project)
    n_protos = (project.config.get("grow") or {}).get("n_prototypes")
    with project.session() as s:
        node = get_node(s, node_id)
        version = node.members_version
        own = _own(s, node.id, version, str(project.root))
        n_allowed = _n_offerable(s, node.id, len(fm.pks), own)
        n_pool = len(fm.pks) - int(np.count_nonzero(fm.rows_of(own) >= 0))
        key = (str(project.root), int(node_id), version, fm.name, n_protos)
        hit = _CACHE.get(key)
        while True:
            if hit is None or (not hit[2] and hit[3] < need):
                depth = max(FIRST_DEPTH, 4 * need, 4 * len(hit[0]) if hit else 0)
                hit = _rank(project, node_id, own, n_pool, depth)
                hit = hit + (0,)
            pks, dist, complete, _ = hit
            # labelled elsewhere since, or before; a complete ranking is counted in full
            keep, checked = _offerable(s, node.id, pks, None if complete else need)
            keep, n_ok = keep[:checked], int(keep[:checked].sum())
            hit = (pks, dist, complete, n_ok + len(pks) - checked)  # unchecked: may be offerable
            if complete or n_ok >= need:
                break
    if len(_CACHE) > 32:
        _CACHE.clear()
    _CACHE[key] = hit
    total = n_ok if hit[2] else max(n_allowed, n_ok)
    return pks[:checked][keep], dist[:checked][keep], version, total


def candidates(project, node_id, offset: int = 0, limit: int = 50) -> Page:
    """Return one page of the node's growth candidates, most similar first."""
    with project.session() as s:
        get_node(s, node_id, ("approved", "candidate"))
    need = int(offset) + int(limit)
    pks, dist, version, total = _ranking(project, int(node_id), need)
    if len(pks) < need and len(pks) < total:  # filtered below what was asked: rank deeper
        pks, dist, version, total = _ranking(project, int(node_id), need + (need - len(pks)) * 2)
    sl = slice(int(offset), need)
    return Page([int(p) for p in pks[sl]], int(offset), total, version, [float(x) for x in dist[sl]])


def _check_free(ch: Change, node: Node, pks) -> None:
    cur = ch.current(pks)
    taken = [p for p, (nid, _) in cur.items() if nid != node.id
             and ch.s.get(Node, nid).status != "candidate"]
    if taken:
        raise WorkflowError(f"objects {sorted(taken)[:5]} already belong to another approved node")


def _held_by_others(ch: Change, node: Node, pks) -> set[int]:
    """Return the objects of `pks` in a candidate node that someone else has claimed (is
    validating now): a grow decision leaves them where they are."""
    now, held = utcnow(), {}
    out = set()
    for p, (nid, _) in ch.current(pks).items():
        if nid == node.id:
            continue
        if nid not in held:
            n = ch.s.get(Node, nid)
            held[nid] = (n.status == "candidate" and n.claimed_by is not None
                         and n.claimed_by != ch.user_id and n.claimed_until is not None
                         and n.claimed_until > now)
        if held[nid]:
            out.add(p)
    return out


def _check_not_members(ch: Change, node: Node, pks) -> None:
    members = [p for p, (nid, _) in ch.current(pks).items() if nid == node.id]
    if members:
        raise WorkflowError(f"objects {members[:5]} are members of node {node.id}; remove them")


def accept(project, user_id, node_id, object_pks, shown_pks=(), members_version=None,
           moved=None, rejected=(), held=None) -> int:
    """Add objects to an approved node: shown ones 'validated', the others 'predicted'.

    `moved` (object -> another approved node's id, or a label name; a new name makes a node):
    rejected for this node instead, and each goes straight to that label as 'validated'.
    `rejected`: never offered to the node again. One event, so one undo takes back the screen.
    Members of a candidate node that someone else has claimed stay there (added to the list
    `held` when one is given).
    """
    moved = targets_arg(moved)
    rejected = sorted({int(p) for p in rejected} - set(moved))
    shown = {int(p) for p in shown_pks}
    with project.transaction() as s:
        node = get_node(s, node_id, ("approved",))
        check_claim(node, user_id)
        check_version(node, members_version)
        moved, own = split_own(s, moved, node.id)  # given this node's own label: accepted
        pks = sorted(({int(p) for p in object_pks} | set(own)) - set(moved) - set(rejected))
        ch = Change(s, user_id)
        kept = _held_by_others(ch, node, pks + list(moved))
        pks, moved = [p for p in pks if p not in kept], {p: t for p, t in moved.items() if p not in kept}
        _check_free(ch, node, pks)
        if moved or rejected:
            _check_not_members(ch, node, list(moved) + rejected)
            ch.reject(node.id, list(moved) + rejected)
            move_to_labels(s, ch, user_id, moved, node.id)
        ch.assign([p for p in pks if p in shown], node.id, "validated")
        ch.assign([p for p in pks if p not in shown], node.id, "predicted")
        ch.finish("grow_accept", {"node": node.id, "n": len(pks), "n_shown": sum(p in shown for p in pks),
                                  "moved": len(moved), "rejected": len(rejected), "held": len(kept)})
    if held is not None:
        held.extend(sorted(kept))
    return len(pks)


def accept_until(project, user_id, node_id, first_wrong_rank: int, shown_pks=(), wrong_pk=None,
                 members_version=None, rejected=(), held=None) -> int:
    """Accept every candidate ranked above the first wrong one and reject that one.

    Only what the screen showed is taken: `shown_pks` (the candidates on the screen, from rank
    0) and `members_version` (the node's, as shown) are required, `first_wrong_rank` may be at
    most len(shown_pks) (the end of the screen: accept all of it, reject nothing), and of the
    candidates ranked above it only the shown ones are accepted. `rejected` (objects marked
    wrong on the screen) are rejected too, wherever they rank. Members of a candidate node that
    someone else has claimed stay there (added to the list `held` when one is given).
    """
    rank = int(first_wrong_rank)
    if rank < 0:
        raise WorkflowError(f"rank {rank} is negative")
    shown_list = [int(p) for p in shown_pks]
    if not shown_list or members_version is None:
        raise WorkflowError("accept until needs the objects the screen showed and the node's members "
                            "version it showed; reload the candidates")
    if rank > len(shown_list):
        raise WorkflowError(f"rank {rank} is past the {len(shown_list)} objects shown; reload the "
                            "candidates")
    page = candidates(project, node_id, 0, rank + 1)
    if int(members_version) != page.members_version:
        raise WorkflowError(f"node {node_id} changed since its candidates were shown; reload them")
    if wrong_pk is not None and (len(page.pks) <= rank or page.pks[rank] != int(wrong_pk)):
        raise WorkflowError(f"the ranking of node {node_id} changed; object {wrong_pk} is no "
                            f"longer at rank {rank}; reload the candidates")
    marked = {int(p) for p in rejected}
    shown = set(shown_list)
    # above the rank, and shown: an object that moved up since the screen was made is not taken
    good = [p for p in page.pks[:rank] if p not in marked and p in shown]
    wrong = sorted(set(page.pks[rank:rank + 1]) | marked)
    with project.transaction() as s:
        node = get_node(s, node_id, ("approved",))
        check_claim(node, user_id)
        check_version(node, page.members_version)
        ch = Change(s, user_id)
        kept = _held_by_others(ch, node, good)
        good = [p for p in good if p not in kept]
        _check_free(ch, node, good)
        ch.assign([p for p in good if p in shown], node.id, "validated")
        ch.assign([p for p in good if p not in shown], node.id, "predicted")
        _check_not_members(ch, node, wrong)
        ch.reject(node.id, wrong)
        ch.finish("grow_until", {"node": node.id, "rank": rank, "n": len(good),
                                 "wrong": page.pks[rank] if len(page.pks) > rank else None,
                                 "rejected": len(wrong), "held": len(kept)})
    if held is not None:
        held.extend(sorted(kept))
    return len(good)


def reject(project, user_id, node_id, object_pks, moved=None, members_version=None) -> int:
    """Say that objects do not belong to the node; they are never offered to it again.

    `moved` (object -> another approved node's id, or a label name; a new name makes a node):
    rejected too, and each goes straight to that label as 'validated'. One event.
    """
    moved = targets_arg(moved)
    with project.transaction() as s:
        node = get_node(s, node_id, ("approved", "candidate"))
        check_claim(node, user_id)
        check_version(node, members_version)
        moved, own = split_own(s, moved, node.id)  # given this node's own label: they belong
        pks = sorted({int(p) for p in object_pks} - set(own) | set(moved))
        ch = Change(s, user_id)
        _check_not_members(ch, node, pks)
        ch.reject(node.id, pks)
        move_to_labels(s, ch, user_id, moved, node.id)
        if own:
            _check_free(ch, node, own)
            ch.assign(own, node.id, "validated")
        ch.finish("grow_reject", {"node": node.id, "n": len(pks), "moved": len(moved)})
    return len(pks)
