"""Grow an approved node: rank the objects most like it, accept, reject, search for the boundary.

Candidates are unlabelled objects and members of unapproved candidate nodes, ranked by their
smallest distance to the node's prototypes (FAISS search restricted to allowed objects), never
objects rejected for the node. The ranking is cached per (node, members_version); objects that
got labelled or rejected since are filtered out when a page is served.
"""

from __future__ import annotations

import math

import numpy as np
from sqlalchemy import delete, func, select

from .. import index
from ..features.matrix import load_matrix
from ..store import Event, Membership, Meta, Node, Rejection
from ._core import Change, Page, WorkflowError, check_claim, check_version, get_node, member_pks
from ._stats import kmeans, member_features, node_stats
from .adopt import move_to_labels, targets_arg

_CACHE: dict = {}


_EXCLUDED: dict = {}


def _excluded(s, node_id: int, root: str = "") -> np.ndarray:
    """Object.ids that cannot be offered to the node: in a non-candidate node, or rejected for it.

    Cached until the next event: every decision writes one, so paging costs one tiny query.
    """
    last = s.scalar(select(func.max(Event.id)))
    key = (root, int(node_id), last)
    hit = _EXCLUDED.get(key)
    if hit is not None:
        return hit
    out = _excluded_query(s, node_id)
    if len(_EXCLUDED) > 8:
        _EXCLUDED.clear()
    _EXCLUDED[key] = out
    return out


def clear_cache() -> None:
    """Forget cached rankings (after annotations were reset outside the workflow)."""
    _EXCLUDED.clear()
    _CACHE.clear()


def _excluded_query(s, node_id: int) -> np.ndarray:
    taken = s.scalars(select(Membership.object_pk).join(Node, Node.id == Membership.node_id)
                      .where((Node.status != "candidate") | (Node.id == node_id)))
    rejected = s.scalars(select(Rejection.object_pk).where(Rejection.node_id == node_id))
    return np.fromiter(list(taken) + list(rejected), dtype=np.int64)


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


def _rank(project, node_id: int, allowed: np.ndarray, depth: int):
    """Return (pks, distances, complete) ranked by smallest distance to the prototypes."""
    protos = prototypes(project, node_id)
    if len(protos) == 0 or len(allowed) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float32), True
    k = min(depth, len(allowed))
    D, I = index.search(project, protos, k, allowed_pks=allowed)
    d, i = D.ravel(), I.ravel()
    ok = i >= 0
    d, i = d[ok], i[ok]
    order = np.argsort(d, kind="stable")
    d, i = d[order], i[order]
    _, first = np.unique(i, return_index=True)
    first.sort()
    d, i = d[first], i[first]
    complete = k >= len(allowed)
    if not complete:  # beyond the smallest k-th distance an object might still be missing
        kth = D[:, k - 1][I[:, k - 1] >= 0]
        if len(kth):
            keep = d <= kth.min()
            d, i = d[keep], i[keep]
    return i.astype(np.int64), d.astype(np.float32), complete


def _ranking(project, node_id: int, need: int):
    with project.session() as s:
        node = get_node(s, node_id)
        version = node.members_version
        excluded = _excluded(s, node.id, str(project.root))
    fm = load_matrix(project)
    n_protos = (project.config.get("grow") or {}).get("n_prototypes")
    key = (str(project.root), int(node_id), version, fm.name, n_protos)
    hit = _CACHE.get(key)
    allowed_now = fm.pks[~np.isin(fm.pks, excluded)]
    if hit is None or (not hit[2] and len(hit[0]) < need):
        depth = max(1000, 2 * need, 2 * len(hit[0]) if hit else 0)
        allowed = allowed_now
        hit = _rank(project, node_id, allowed, depth)
        if len(_CACHE) > 32:
            _CACHE.clear()
        _CACHE[key] = hit
    pks, dist, _ = hit
    keep = ~np.isin(pks, excluded)
    return pks[keep], dist[keep], version, len(allowed_now)


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


def _check_not_members(ch: Change, node: Node, pks) -> None:
    members = [p for p, (nid, _) in ch.current(pks).items() if nid == node.id]
    if members:
        raise WorkflowError(f"objects {members[:5]} are members of node {node.id}; remove them")


def accept(project, user_id, node_id, object_pks, shown_pks=(), members_version=None,
           moved=None) -> int:
    """Add objects to an approved node: shown ones 'validated', the others 'predicted'.

    `moved` (object -> another approved node's id, or a label name; a new name makes a node):
    rejected for this node instead, and each goes straight to that label as 'validated'. One
    event, so one undo takes back the whole screen.
    """
    moved = targets_arg(moved)
    pks = sorted({int(p) for p in object_pks} - set(moved))
    shown = {int(p) for p in shown_pks}
    with project.transaction() as s:
        node = get_node(s, node_id, ("approved",))
        check_claim(node, user_id)
        check_version(node, members_version)
        ch = Change(s, user_id)
        _check_free(ch, node, pks)
        if moved:
            _check_not_members(ch, node, list(moved))
            ch.reject(node.id, list(moved))
            move_to_labels(s, ch, user_id, moved, node.id)
        ch.assign([p for p in pks if p in shown], node.id, "validated")
        ch.assign([p for p in pks if p not in shown], node.id, "predicted")
        ch.finish("grow_accept", {"node": node.id, "n": len(pks),
                                  "n_shown": sum(p in shown for p in pks), "moved": len(moved)})
    return len(pks)


def accept_until(project, user_id, node_id, first_wrong_rank: int, shown_pks=(), wrong_pk=None,
                 members_version=None) -> int:
    """Accept every candidate ranked above the first wrong one and reject that one.

    `first_wrong_rank` at or past the end of the ranking accepts everything and rejects nothing.
    """
    rank = int(first_wrong_rank)
    if rank < 0:
        raise WorkflowError(f"rank {rank} is negative")
    page = candidates(project, node_id, 0, rank + 1)
    if members_version is not None and int(members_version) != page.members_version:
        raise WorkflowError(f"node {node_id} changed since its candidates were shown; reload them")
    if wrong_pk is not None and (len(page.pks) <= rank or page.pks[rank] != int(wrong_pk)):
        raise WorkflowError(f"the ranking of node {node_id} changed; object {wrong_pk} is no "
                            f"longer at rank {rank}; reload the candidates")
    good, wrong = page.pks[:rank], page.pks[rank:rank + 1]
    shown = {int(p) for p in shown_pks}
    with project.transaction() as s:
        node = get_node(s, node_id, ("approved",))
        check_claim(node, user_id)
        check_version(node, page.members_version)
        ch = Change(s, user_id)
        _check_free(ch, node, good)
        ch.assign([p for p in good if p in shown], node.id, "validated")
        ch.assign([p for p in good if p not in shown], node.id, "predicted")
        ch.reject(node.id, wrong)
        ch.finish("grow_until", {"node": node.id, "rank": rank, "n": len(good),
                                 "wrong": wrong[0] if wrong else None})
    return len(good)


def reject(project, user_id, node_id, object_pks, moved=None, members_version=None) -> int:
    """Say that objects do not belong to the node; they are never offered to it again.

    `moved` (object -> another approved node's id, or a label name; a new name makes a node):
    rejected too, and each goes straight to that label as 'validated'. One event.
    """
    moved = targets_arg(moved)
    pks = sorted({int(p) for p in object_pks} | set(moved))
    with project.transaction() as s:
        node = get_node(s, node_id, ("approved", "candidate"))
        check_claim(node, user_id)
        check_version(node, members_version)
        ch = Change(s, user_id)
        _check_not_members(ch, node, pks)
        ch.reject(node.id, pks)
        move_to_labels(s, ch, user_id, moved, node.id)
        ch.finish("grow_reject", {"node": node.id, "n": len(pks), "moved": len(moved)})
    return len(pks)


class GrowSearch:
    """Find how far down the ranking a node may grow by judging whole pages.

    Exponential search (pages 0, 1, 3, 7, ...) until a page is judged not OK, then bisection
    between the last OK and the first bad page. Drive it with `next_page()` / `judge(ok)` until
    `next_page()` returns None, then `commit(user_id)` accepts every page above the boundary.
    `to_state()` / `from_state()` turn a search into plain JSON and back (`save_search`).
    """

    def __init__(self, project, node_id, page_size: int = 50):
        self.project = project
        self.node_id = int(node_id)
        self.page_size = int(page_size)
        self.lo = 0          # pages [0, lo) are OK
        self.hi = None       # first page known to be bad (None: none yet)
        self.probe = 0
        self.shown: dict[int, list[int]] = {}
        self.members_version = None
        self.ranking = None  # what the ranking depended on when the search started
        self.n_pages = None
        self._page = None

    @property
    def current(self) -> Page | None:
        """The page `next_page()` returned that is not judged yet."""
        return self._page

    @property
    def done(self) -> bool:
        return self.hi is not None and self.lo >= self.hi

    def next_page(self) -> Page | None:
        """Return the page to judge now, or None when the boundary is found."""
        if self._page is not None:
            return self._page
        if self.n_pages is None:
            first = candidates(self.project, self.node_id, 0, self.page_size)
            self.members_version = first.members_version
            self.ranking = _ranking_id(self.project)
            self.n_pages = math.ceil(first.total / self.page_size)
            if self.n_pages == 0:
                self.hi = 0
        if self.hi is None and self.probe >= self.n_pages:
            self.probe = self.n_pages - 1
            if self.probe < self.lo:
                self.hi = self.lo = self.n_pages
        if self.done:
            return None
        page = candidates(self.project, self.node_id, self.probe * self.page_size, self.page_size)
        if not page.pks:  # ranking shorter than expected
            self.n_pages = self.probe
            self.hi = self.probe if self.hi is None else min(self.hi, self.probe)
            self.lo = min(self.lo, self.hi)
            self.probe = (self.lo + self.hi) // 2
            return None if self.done else self.next_page()
        self._page = page
        return page

    def judge(self, ok: bool, probe: int | None = None) -> bool:
        """Record the judgement of the page last returned by `next_page()`; return True.

        With `probe` (the page the verdict is about, as shown), a verdict on another page than
        the one waiting (a double click, a second tab) is dropped: return False.
        """
        if self._page is None:
            raise WorkflowError("no page to judge; call next_page() first")
        if probe is not None and int(probe) != self.probe:
            return False
        self.shown[self.probe] = self._page.pks
        self._page = None
        if ok:
            self.lo = self.probe + 1
        else:
            self.hi = self.probe
        if self.hi is None:
            self.probe = 2 * self.probe + 1
        elif not self.done:
            self.probe = (self.lo + self.hi) // 2
        return True

    def boundary(self) -> int:
        """Number of ranked objects above the boundary found so far."""
        return self.lo * self.page_size

    def commit(self, user_id) -> int:
        """Accept the objects above the boundary; shown ones 'validated', others 'predicted'."""
        n = self.boundary()
        if n == 0:
            return 0
        page = candidates(self.project, self.node_id, 0, n)
        shown = [p for i, pks in self.shown.items() if i < self.lo for p in pks]
        return accept(self.project, user_id, self.node_id, page.pks, shown,
                      members_version=self.members_version)

    def to_state(self) -> dict:
        """Return the search as plain JSON: the judged pages, the page on screen, the node's
        `members_version` and what the ranking depended on when it started."""
        pg = self._page
        return {"page_size": self.page_size, "lo": self.lo, "hi": self.hi, "probe": self.probe,
                "n_pages": self.n_pages, "members_version": self.members_version,
                "ranking": self.ranking, "shown": {str(i): pks for i, pks in self.shown.items()},
                "page": None if pg is None else {"pks": pg.pks, "offset": pg.offset,
                                                  "total": pg.total, "distances": pg.distances}}

    @classmethod
    def from_state(cls, project, node_id, state: dict) -> "GrowSearch":
        """Continue a search saved by `to_state()`.

        Raise WorkflowError if the node's members or the ranking's inputs changed since.
        """
        gs = cls(project, node_id, int(state["page_size"]))
        v = state.get("members_version")
        if v is not None:
            with project.session() as s:
                now = get_node(s, node_id).members_version
            if int(v) != now or state.get("ranking") != _ranking_id(project):
                raise WorkflowError(f"node {node_id} changed since its page search was saved")
        gs.lo, gs.hi, gs.probe = int(state["lo"]), state.get("hi"), int(state["probe"])
        gs.n_pages, gs.members_version, gs.ranking = state.get("n_pages"), v, state.get("ranking")
        gs.shown = {int(i): [int(p) for p in pks] for i, pks in state.get("shown", {}).items()}
        pg = state.get("page")
        if pg is not None:
            gs._page = Page([int(p) for p in pg["pks"]], int(pg["offset"]), int(pg["total"]),
                            int(v), [float(d) for d in pg.get("distances", [])])
        return gs


def _ranking_id(project) -> list:
    return [project.config.get("active_features"),
            (project.config.get("grow") or {}).get("n_prototypes")]


def _search_key(user_id, node_id) -> str:
    return f"grow_search:{user_id}:{int(node_id)}"


def load_search(project, user_id, node_id, page_size: int = 50) -> GrowSearch:
    """Return the user's saved page search of the node, or a fresh one if there is none, it used
    another page size, or the node changed since."""
    with project.session() as s:
        row = s.get(Meta, _search_key(user_id, node_id))
        state = row.value if row is not None else None
    if state and int(state.get("page_size", 0)) == int(page_size):
        try:
            return GrowSearch.from_state(project, node_id, state)
        except (WorkflowError, KeyError, TypeError, ValueError):
            pass
    return GrowSearch(project, node_id, page_size)


def save_search(project, user_id, search: GrowSearch) -> None:
    """Keep the search in the project database (Meta), so that it survives a restart; drop
    the saved searches of nodes that are gone or dissolved."""
    key = _search_key(user_id, search.node_id)
    with project.transaction() as s:
        _prune_searches(s)
        row = s.get(Meta, key)
        if row is None:
            s.add(Meta(key=key, value=search.to_state()))
        else:
            row.value = search.to_state()


def _prune_searches(session) -> int:
    # keys only: this runs on every verdict, and the saved searches' JSON is not needed
    keys = session.scalars(select(Meta.key).where(Meta.key.like("grow_search:%"))).all()
    node_of = {k: int(k.rsplit(":", 1)[1]) for k in keys}
    alive = set(session.scalars(select(Node.id).where(
        Node.id.in_(set(node_of.values())), Node.status != "dissolved")))
    dead = [k for k in keys if node_of[k] not in alive]
    if dead:
        session.execute(delete(Meta).where(Meta.key.in_(dead)))
    return len(dead)


def drop_search(project, user_id, node_id) -> None:
    """Forget the user's saved page search of the node."""
    with project.transaction() as s:
        row = s.get(Meta, _search_key(user_id, node_id))
        if row is not None:
            s.delete(row)
