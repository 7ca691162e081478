"""Phases of a simulated session: cluster round, validate the candidates, grow approved nodes.

Each phase is `phase(sim, round_index)`; it acts only through `morphocluster.workflow`, pays
every action with `sim.click(kind)` and sees classes only through `sim.show(pks)`.
"""

from __future__ import annotations

import math
from collections import Counter

from sqlalchemy import select

from ..store import Node
from ..workflow import WorkflowError, grow, grow_search, validate
from .clustering import run_cluster_round


def cluster(sim, r: int) -> None:
    """Propose seed clusters among the objects left (no clicks: a machine does it)."""
    st = sim.settings
    n = run_cluster_round(sim.project, min_cluster_size=st.rounds[r], min_samples=st.min_samples,
                          method=st.method, reduce=st.reduce, user_id=sim.user_id)
    sim.log(f"round {r}: {n} candidate clusters (min_cluster_size {st.rounds[r]})")


def validate_all(sim, r: int) -> None:
    """Validate every candidate node, largest first."""
    for _ in range(100_000):
        nid = validate.next_node(sim.project, sim.user_id)
        if nid is None:
            return
        validate_node(sim, nid, r)
        sim.snapshot()


def grow_all(sim, r: int) -> None:
    """Grow every approved node not grown yet (all of them again with `regrow`)."""
    with sim.project.session() as s:
        ids = list(s.scalars(select(Node.id).where(Node.status == "approved", Node.name.is_not(None))
                             .order_by(Node.id)))
    for nid in ids:
        if nid in sim.grown and not sim.settings.regrow:
            continue
        sim.grown.add(nid)
        grow_node(sim, nid)
        sim.snapshot()


DEFAULT_PHASES = (cluster, validate_all, grow_all)


# --- validating one cluster -------------------------------------------------------------------
def look_at_members(sim, nid: int):
    """Open a cluster and page through the screens the settings say; return (page0, seen, labels)."""
    st = sim.settings
    first = validate.members(sim.project, nid, 0, st.page_size)
    n_pages = math.ceil(first.total / st.page_size)
    look = n_pages if st.validate_pages is None else min(n_pages, st.validate_pages)
    seen = list(first.pks)
    for i in range(1, look):
        sim.click("next_screen")
        seen += validate.members(sim.project, nid, i * st.page_size, st.page_size).pks
    return first, seen, sim.show(seen)


def cleaning_plan(labels: list, cls, total: int, lost_cost: float, relabel: bool = False):
    """Cheapest way to take the wrong members out: (cost, cut rank or None, ranks to remove).

    With `relabel`, a wrong member taken out one by one is labelled by that click, which is
    worth `lost_cost` (what an object sent back to the pool costs later)."""
    wrong = [i for i, lab in enumerate(labels) if lab != cls]
    unseen = total - len(labels)
    each = 1 - lost_cost if relabel else 1.0
    best = (each * len(wrong), None, wrong)
    for j, r in enumerate(wrong):
        good_lost = sum(1 for lab in labels[r:] if lab == cls) + unseen
        cost = 1 + each * j + lost_cost * good_lost
        if cost < best[0]:
            best = (cost, r, wrong[:j])
    return best


def validate_node(sim, nid: int, r: int, depth: int = 0) -> None:
    st = sim.settings
    first, seen, labels = look_at_members(sim, nid)
    if not seen:
        validate.dissolve(sim.project, sim.user_id, nid)
        sim.click("dissolve")
        return
    cls, k = Counter(labels).most_common(1)[0]
    purity = k / len(seen)
    est_good = purity * first.total
    # a cluster seen whole and cleaned has no wrong labels left: a lower purity may do
    seen_all = st.clean and len(seen) == first.total and st.approve_purity_seen is not None
    need = min(st.approve_purity, st.approve_purity_seen) if seen_all else st.approve_purity
    if purity >= need and cls is not None:
        cost, cut, ranks = (0.0, None, []) if not st.clean else cleaning_plan(
            labels, cls, first.total, st.lost_object_cost, st.relabel)
        worth = not st.clean or 2 + cost < 1 + st.lost_object_cost * est_good
        if purity < st.approve_purity:  # only when the cleaning pays for itself
            done = k + (len(ranks) if st.relabel else 0)  # relabelled ones are labelled too
            worth = worth and done >= st.min_clean_gain * (2 + len(ranks) + (cut is not None))
        if worth:
            _approve_and_clean(sim, nid, cls, seen, cut, [seen[i] for i in ranks], first)
            return
    elif (st.split_mixed and depth < 2 and first.total >= 2 * st.rounds[min(r, len(st.rounds) - 1)]
          and len(Counter(labels)) > 1):
        validate.split(sim.project, sim.user_id, nid)
        sim.click("split")
        validate_node(sim, nid, r, depth + 1)
        return
    validate.dissolve(sim.project, sim.user_id, nid)
    sim.click("dissolve")


def tail_boundary(sim, nid: int, cls, first) -> int | None:
    """Look at the least typical screen; if fewer than `tail_purity` of it are `cls`, bisect the
    screens between the first and the last for where that starts; return its first rank (None:
    the tail is fine). Each screen opened is a `next_screen` click."""
    st = sim.settings
    n_pages = math.ceil(first.total / st.page_size)

    def ok(i: int) -> bool:
        page = validate.members(sim.project, nid, i * st.page_size, st.page_size)
        sim.click("next_screen")
        return _share(sim.show(page.pks), cls) >= st.tail_purity

    if n_pages < 2 or ok(n_pages - 1):
        return None
    lo, hi = 1, n_pages - 1  # screens [0, lo) fine, screen hi not
    while lo < hi:
        mid = (lo + hi) // 2
        if ok(mid):
            lo = mid + 1
        else:
            hi = mid
    return lo * st.page_size


def _approve_and_clean(sim, nid, cls, seen, cut, remove_pks, first) -> None:
    p, u = sim.project, sim.user_id
    if sim.settings.validate_search and cut is None and first.total > len(seen):
        cut = tail_boundary(sim, nid, cls, first)
    if cut is not None:
        validate.remove_from(p, u, nid, cut, members_version=first.members_version)
        sim.click("remove_from")
    for pk in remove_pks:
        if sim.settings.relabel and sim.seen.get(pk) is not None:
            validate.remove(p, u, nid, [], moved={pk: str(sim.seen[pk])})
            sim.click("relabel")
        else:
            validate.remove(p, u, nid, [pk])
            sim.click("remove")
    validate.approve(p, u, nid, name=cls, seen_pks=list(sim.seen))
    sim.click("approve")
    sim.click("name")


# --- growing one node -------------------------------------------------------------------------
def grow_node(sim, nid: int) -> None:
    mode = sim.settings.grow
    if mode == "none":
        return
    with sim.project.session() as s:
        cls = s.get(Node, nid).name
    if mode in ("pages", "pages+direct"):
        grow_pages(sim, nid, cls)
    if mode in ("direct", "pages+direct"):
        grow_direct(sim, nid, cls)


def _share(labels, cls) -> float:
    return sum(lab == cls for lab in labels) / len(labels) if labels else 0.0


def grow_pages(sim, nid: int, cls) -> int:
    """The original method: judge whole pages (exponential search, bisection), then save."""
    gs = grow_search.GrowSearch(sim.project, nid, page_size=sim.settings.page_size)
    while (page := gs.next_page()) is not None:
        ok = _share(sim.show(page.pks), cls) >= sim.settings.grow_page_ok
        sim.click("judge")
        gs.judge(ok)
    if gs.boundary() == 0:
        return 0
    sim.click("save")
    return gs.commit(sim.user_id)


def grow_direct(sim, nid: int, cls) -> int:
    """Screen by screen from the top of the ranking. A clean screen is accepted with one click;
    otherwise the annotator either clicks the first wrong object (accepting all above it) or
    rejects the wrong ones (with `relabel`: gives each its class by name) and accepts the rest,
    whichever is worth more at `direct_min_gain` objects per click (or what the screens of an
    extra phase gain, `sim.other_gain`, if more), and stops when neither is worth a click."""
    st, p, u = sim.settings, sim.project, sim.user_id
    theta = max(st.direct_min_gain, sim.other_gain)  # below that, leave them to the other screen
    gained = 0
    for _ in range(st.max_direct_pages):
        page = grow.candidates(p, nid, 0, st.page_size)
        if not page.pks:
            break
        labels = sim.show(page.pks)
        wrong = [i for i, lab in enumerate(labels) if lab != cls]
        good = [pk for i, pk in enumerate(page.pks) if labels[i] == cls]
        if not wrong:
            grow.accept(p, u, nid, page.pks, page.pks, members_version=page.members_version)
            sim.click("judge")
            gained += len(good)
            continue
        first = wrong[0]
        relabel = st.relabel and all(labels[i] is not None for i in wrong)
        value_first = first - theta
        value_all = len(good) + (len(wrong) if relabel else 0) - theta * (len(wrong) + 1)
        if max(value_first, value_all) <= 0:
            break
        if value_all > value_first:
            moved = None
            if relabel:  # each wrong one given its class by name, one click each
                moved = {page.pks[i]: str(labels[i]) for i in wrong}
                sim.click("relabel", len(wrong))
            else:
                for i in wrong:
                    grow.reject(p, u, nid, [page.pks[i]])
                sim.click("reject", len(wrong))
            grow.accept(p, u, nid, good, good, moved=moved)
            sim.click("judge")
            gained += len(good)
        else:
            grow.accept_until(p, u, nid, first, page.pks[:first + 1], wrong_pk=page.pks[first],
                              members_version=page.members_version)
            sim.click("first_wrong")
            gained += first
    return gained


__all__ = ["DEFAULT_PHASES", "cluster", "validate_all", "grow_all", "validate_node", "grow_node",
           "grow_pages", "grow_direct", "cleaning_plan", "WorkflowError"]
