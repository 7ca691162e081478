"""One clustering round: cluster the free objects and write the seed clusters as new nodes.

Free objects are those with features that are in no node except stale candidates. Stale
candidates are nodes proposed by an earlier round that nobody approved, claimed or worked on
(all members still 'cluster'): a new round dissolves them and their objects go back to the pool.
Approved nodes, claimed nodes and their members are never touched. Noise stays unassigned.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import func, select

from ..features.matrix import load_matrix
from ..store import Event, Membership, Node, log_event, utcnow
from ..store.bulk import dissolve_nodes, insert_memberships, membership_arrays
from .estimator import ClusterParamError, RowSubset, SeedClusterer

# Chosen by benchmarks/cluster_quality.py on planktonset-dev (see its docstring).
DEFAULT_MIN_CLUSTER_SIZE = 64   # first round
MIN_CLUSTER_SIZE_FLOOR = 8      # later rounds halve the previous size down to this
POOL_FRACTION = 40              # the first size is at most 1/40 of the objects clustered
DEFAULT_MIN_SAMPLES = 1
DEFAULT_METHOD = "leaf"
DEFAULT_REDUCE = "pca:64"
DEFAULT_BACKEND = "knn"
# above this many free objects a round clusters a random sample of this size and gives the
# others the nearest cluster (HDBSCAN's time and memory grow faster than linearly)
AUTO_SAMPLE = 250_000


@dataclass
class RoundResult:
    round: int
    node_ids: list = field(default_factory=list)  # new nodes, largest first
    n_pool: int = 0          # objects that were clustered or left as noise
    n_clustered: int = 0     # objects now in a new node
    n_dissolved: int = 0     # stale candidate nodes given back
    params: dict = field(default_factory=dict)
    timings: dict = field(default_factory=dict)

    def summary(self) -> str:
        """Say what the round did, in words for the jobs page."""
        n = self.n_dissolved
        old = f"; {n} waiting candidate{'s' if n != 1 else ''} given back first" if n else ""
        if not self.node_ids:
            size = self.params.get("min_cluster_size")
            hint = (f"; try a minimum cluster size below {size}" if size and size > 2 else
                    "; what is left may be too scattered to cluster: sort it with suggestions")
            return f"round {self.round}: no cluster among {self.n_pool:,} objects{old}{hint}"
        return (f"round {self.round}: {len(self.node_ids)} new clusters holding {self.n_clustered:,} "
                f"of {self.n_pool:,} objects{old}")


def last_params(session) -> dict | None:
    """Return the parameters (and number) of the most recent round, or None before the first.

    Read from the event log, so that a round that found no cluster still counts.
    """
    node_round = session.execute(select(func.max(Node.round))).scalar()
    payload = session.execute(select(Event.payload).where(Event.action == "cluster_round")
                              .order_by(Event.id.desc()).limit(1)).scalar()
    if payload:
        return dict(payload.get("params") or {}, round=max(payload.get("round") or 0, node_round or 0))
    if node_round is None:
        return None
    params = session.execute(select(Node.params).where(Node.round == node_round,
                                                       Node.params.is_not(None)).limit(1)).scalar()
    return dict(params or {}, round=node_round)


def next_min_cluster_size(previous: int | None, n_pool: int | None = None) -> int:
    """Return the automatic min_cluster_size: the default first, then half the last, floored.

    On a small pool the first size is at most 1/40 of it: with the default 64, the 300-image
    demo sample of six classes gave 2 mixed clusters instead of 6 pure ones.
    """
    if previous is not None:
        return max(MIN_CLUSTER_SIZE_FLOOR, int(previous) // 2)
    size = DEFAULT_MIN_CLUSTER_SIZE
    if n_pool is not None:
        size = min(size, n_pool // POOL_FRACTION)
    return max(MIN_CLUSTER_SIZE_FLOOR, size)


def _stale_candidates(session, now) -> dict[int, int]:
    """Return {node id: members_version} of candidates that a new round may dissolve."""
    has_child = select(Node.parent_id).where(Node.parent_id.is_not(None), Node.status != "dissolved")
    worked = select(Membership.node_id).where(Membership.status != "cluster")
    q = (select(Node.id, Node.members_version)
         .where(Node.status == "candidate", Node.round.is_not(None))
         .where((Node.claimed_by.is_(None)) | (Node.claimed_until.is_(None))
                | (Node.claimed_until < now))
         .where(Node.id.not_in(has_child), Node.id.not_in(worked)))
    return dict(session.execute(q).all())


def _taken_pks(session, stale: dict) -> np.ndarray:
    pks, nids = membership_arrays(session)
    if stale:
        pks = pks[~np.isin(nids, np.fromiter(stale, np.int64, len(stale)))]
    return pks


def cluster_round(project, min_cluster_size=None, min_samples=None, method=DEFAULT_METHOD,
                  reduce=DEFAULT_REDUCE, sample=None, user_id=None, progress=None,
                  backend=DEFAULT_BACKEND, random_state=0, stats=True, map2d=True) -> RoundResult:
    """Cluster the free objects and store the clusters as a new round of candidate nodes."""
    tell = progress or (lambda frac, msg: None)
    t0 = time.perf_counter()
    fm = load_matrix(project)
    with project.session() as s:
        prev = last_params(s)
        stale = _stale_candidates(s, utcnow())
        taken = _taken_pks(s, stale)
    free = ~np.isin(fm.pks, taken)
    pool = fm.pks[free]
    auto = min_cluster_size is None
    if auto:
        min_cluster_size = next_min_cluster_size(prev and prev.get("min_cluster_size"), len(pool))
    if min_samples is None:
        min_samples = DEFAULT_MIN_SAMPLES
    if sample is None and len(pool) > 2 * AUTO_SAMPLE:
        sample = AUTO_SAMPLE
    est = SeedClusterer(min_cluster_size=min_cluster_size, min_samples=min_samples, method=method,
                        reduce=reduce, sample=sample, backend=backend, random_state=random_state,
                        progress=lambda f, m: tell(0.05 + 0.75 * f, m))
    if len(pool) < 2:
        raise ClusterParamError(f"{project.root}: only {len(pool)} objects are free to cluster")
    est.fit(RowSubset(fm.X.mm, np.flatnonzero(free)))  # read from the map a chunk at a time
    labels = est.labels_
    map_seconds = None
    if map2d:  # before the round is written: stopped while the map is made, it has written nothing
        from ..map2d import compute_map

        tell(0.8, "computing the 2-D map")
        t = time.perf_counter()
        compute_map(project)
        map_seconds = time.perf_counter() - t
    tell(0.9, f"writing {est.n_clusters_} clusters")
    t = time.perf_counter()
    result = _write(project, pool, labels, stale, user_id, dict(
        min_cluster_size=int(min_cluster_size), min_cluster_size_auto=auto,
        min_samples=int(min_samples), method=method, reduce=str(reduce), sample=sample,
        backend=backend, feature_set=fm.name, n_pool=int(len(pool))), est.timings_)
    result.timings["write"] = time.perf_counter() - t
    if map_seconds is not None:
        result.timings["map2d"] = map_seconds
    if stats and result.node_ids:
        from ..nodestats import refresh_stats

        tell(0.92, f"round {result.round} saved; computing node statistics (made again when "
                   "needed, if this is cut short)")
        t = time.perf_counter()
        refresh_stats(project, result.node_ids)
        result.timings["stats"] = time.perf_counter() - t
    result.timings["total"] = time.perf_counter() - t0
    tell(1.0, f"round {result.round}: {len(result.node_ids)} clusters, "
              f"{result.n_clustered} of {result.n_pool} objects")
    return result


def _write(project, pool, labels, stale, user_id, params, timings) -> RoundResult:
    with project.transaction() as s:
        # Re-check under the write lock: anything claimed or changed meanwhile stays as it is.
        now_stale = _stale_candidates(s, utcnow())
        dissolve = [i for i, v in stale.items() if now_stale.get(i) == v]
        taken_now = _taken_pks(s, {i: 0 for i in dissolve})
        round_no = (last_params(s) or {}).get("round", 0) + 1
        params = dict(params, round=round_no, timings={k: round(v, 3) for k, v in timings.items()})
        dissolve_nodes(s, dissolve)
        ok = (labels >= 0) & ~np.isin(pool, taken_now)
        sizes = np.bincount(labels[ok], minlength=int(labels.max()) + 1 if len(labels) else 0)
        order = [c for c in np.argsort(-sizes, kind="stable") if sizes[c] > 0]
        nodes = [Node(status="candidate", round=round_no, params=params, n_members=int(sizes[c]),
                      members_version=1, created_by=user_id) for c in order]
        s.add_all(nodes)
        s.flush()
        node_of = np.full(len(sizes), -1, np.int64)
        node_of[order] = [n.id for n in nodes]
        # a proposal, added by nobody: whoever approves it labels them
        insert_memberships(s, pool[ok], node_of[labels[ok]], "cluster", utcnow())
        node_ids = [n.id for n in nodes]
        log_event(s, user_id, "cluster_round", {
            "round": round_no, "params": params, "n_nodes": len(node_ids),
            "n_clustered": int(ok.sum()), "dissolved": dissolve,
            "first_node": node_ids[0] if node_ids else None,
            "last_node": node_ids[-1] if node_ids else None})
    return RoundResult(round_no, node_ids, int(len(pool)), int(ok.sum()), len(dissolve),
                       params, dict(timings))
