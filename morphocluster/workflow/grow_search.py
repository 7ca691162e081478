"""Grow a node by judging whole pages: exponential search then bisection for the boundary
(the original MorphoCluster method), and the searches kept in the project database."""

from __future__ import annotations

import math

from sqlalchemy import delete, select

from ..store import Meta, Node
from ._core import Page, WorkflowError, get_node
from .grow import accept, candidates


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
        self.restarted = False  # set by load_search: a saved search was given up (node changed)

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
    another page size, or the node changed since (then its `restarted` is True). Reads only:
    nothing is saved until `save_search`."""
    with project.session() as s:
        row = s.get(Meta, _search_key(user_id, node_id))
        state = row.value if row is not None else None
    if state and int(state.get("page_size", 0)) == int(page_size):
        try:
            return GrowSearch.from_state(project, node_id, state)
        except (WorkflowError, KeyError, TypeError, ValueError):
            pass
    fresh = GrowSearch(project, node_id, page_size)
    fresh.restarted = bool(state)
    return fresh


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
