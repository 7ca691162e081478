"""Statistics of a node of the cluster tree, cached until its members change.

For a node (and, for an umbrella, its whole subtree) this computes the centroid, a handful of
prototypes (k-means on the members), the members ordered from most to least typical (mean of
the distances to the centroid and to the nearest prototype, so outliers come last) and a few
representative objects.

The cache row (`NodeCache`) is keyed by a signature of the subtree's `members_version`s and the
active feature set; any membership change (which bumps `Node.members_version`) invalidates it.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import select

from .features.matrix import load_matrix
from .store import Membership, Node, NodeCache
from .store.bulk import membership_arrays

MAX_PROTOTYPES = 5
N_REPRESENTATIVES = 9
KMEANS_SAMPLE = 4_000  # k-means fits on at most this many members; all are assigned


class NodeStatsError(LookupError):
    """The node does not exist."""


@dataclass
class NodeStats:
    centroid: np.ndarray         # (d,) float32 mean of the members' features
    prototypes: np.ndarray       # (p, d) float32 k-means centres
    order: np.ndarray            # int64 Object.id, most to least typical
    distances: np.ndarray        # float32 atypicality (see _typicality), same order
    representatives: list = field(default_factory=list)  # Object.id, a few typical and diverse

    @property
    def n(self) -> int:
        return len(self.order)


# --- members ----------------------------------------------------------------------------------
def subtree(session, node_id: int) -> list[tuple[int, int]]:
    """Return (node id, members_version) of the node and its non-dissolved descendants."""
    root = session.execute(
        select(Node.id, Node.members_version).where(Node.id == node_id)).first()
    if root is None:
        raise NodeStatsError(f"no node {node_id}")
    tree = select(Node.id, Node.members_version).where(Node.id == node_id).cte(recursive=True)
    child = select(Node.id, Node.members_version).where(
        Node.parent_id == tree.c.id, Node.status != "dissolved")
    tree = tree.union_all(child)
    return [tuple(r) for r in session.execute(select(tree.c.id, tree.c.members_version)).all()]


def member_pks(project, node_id: int, session=None) -> np.ndarray:
    """Return the Object.ids of all members (any status) of the node and its subtree."""
    def run(s):
        ids = [nid for nid, _ in subtree(s, node_id)]
        rows = s.execute(select(Membership.object_pk).where(Membership.node_id.in_(ids))).scalars()
        return np.fromiter(rows, dtype=np.int64)

    if session is not None:
        return np.sort(run(session))
    with project.session() as s:
        return np.sort(run(s))


def _signature(nodes: list[tuple[int, int]]) -> int:
    if len(nodes) == 1:
        return int(nodes[0][1])
    text = ",".join(f"{i}:{v}" for i, v in sorted(nodes))
    return -(zlib.crc32(text.encode()) & 0x7FFFFFFF) - 1  # negative: never equals a plain version


# --- computation ------------------------------------------------------------------------------
def n_prototypes(n: int) -> int:
    """Pick how many prototypes a node of n members gets (1 for tiny nodes, up to 5)."""
    return int(np.clip(n // 10, 1, MAX_PROTOTYPES)) if n else 0


def kmeans_prototypes(X: np.ndarray, p: int, seed: int = 0, n_iter: int = 20) -> np.ndarray:
    """Return p k-means centres of X (k-means++ start, Lloyd steps; fitted on a sample if large)."""
    if p <= 1:
        return X.mean(axis=0, keepdims=True).astype(np.float32)
    # plain numpy: a node has few prototypes, and thread pools cost more than they save here
    rng = np.random.default_rng(seed)
    fit = X if len(X) <= KMEANS_SAMPLE else X[rng.choice(len(X), KMEANS_SAMPLE, replace=False)]
    sq = (fit * fit).sum(1)
    centres = [fit[rng.integers(len(fit))]]
    d2 = np.maximum(sq - 2 * fit @ centres[0] + centres[0] @ centres[0], 0)
    for _ in range(1, p):
        c = fit[rng.choice(len(fit), p=d2 / d2.sum())] if d2.sum() > 0 else fit[rng.integers(len(fit))]
        centres.append(c)
        d2 = np.minimum(d2, np.maximum(sq - 2 * fit @ c + c @ c, 0))
    C = np.stack(centres).astype(np.float32)
    prev = None
    for _ in range(n_iter):
        _, a = _assign(fit, C)
        if prev is not None and np.array_equal(a, prev):
            break
        prev = a
        for j in range(p):
            m = a == j
            if m.any():
                C[j] = fit[m].mean(0)
    return C


def _assign(X: np.ndarray, protos: np.ndarray):
    # squared distances to every prototype without forming (n, p, d)
    d2 = (X * X).sum(1)[:, None] - 2 * X @ protos.T + (protos * protos).sum(1)[None, :]
    return d2, d2.argmin(1)


CHUNK = 32_768  # rows gathered at a time: an umbrella over 1M members never copies all of them


def _typicality(X, rows, protos, centroid):
    """Return (distance, nearest prototype) of X[rows], chunk by chunk.

    The distance is the mean of the distances to the centroid and to the nearest prototype:
    on real clusters the centroid ranks members of another class later, the prototypes keep
    a node with several modes (an umbrella) from sending a whole mode to the end.
    """
    dist = np.empty(len(rows), np.float32)
    near = np.empty(len(rows), np.int64)
    for a in range(0, len(rows), CHUNK):
        Xc = X[rows[a:a + CHUNK]]
        d2, j = _assign(Xc, protos)
        dp = np.sqrt(np.maximum(d2[np.arange(len(j)), j], 0))
        dc = np.linalg.norm(Xc - centroid, axis=1)
        dist[a:a + CHUNK] = 0.5 * (dp + dc)
        near[a:a + CHUNK] = j
    return dist, near


def compute_stats(pks: np.ndarray, X: np.ndarray, n_repr: int = N_REPRESENTATIVES,
                  rows: np.ndarray | None = None, seed: int = 0) -> NodeStats:
    """Compute the statistics of members `pks` whose features are X[rows] (default: X)."""
    pks = np.asarray(pks, dtype=np.int64)
    rows = np.arange(len(pks)) if rows is None else np.asarray(rows)
    d = X.shape[1]
    if len(pks) == 0:
        return NodeStats(np.zeros(d, np.float32), np.zeros((0, d), np.float32),
                         np.zeros(0, np.int64), np.zeros(0, np.float32), [])
    n = len(rows)
    total = np.zeros(d, np.float64)
    for a in range(0, n, CHUNK):
        total += X[rows[a:a + CHUNK]].sum(0, dtype=np.float64)
    centroid = (total / n).astype(np.float32)
    rng = np.random.default_rng(seed)
    fit_rows = rows if n <= KMEANS_SAMPLE else rows[np.sort(rng.choice(n, KMEANS_SAMPLE, replace=False))]
    fit = np.asarray(X[fit_rows], dtype=np.float32)
    protos = kmeans_prototypes(fit, n_prototypes(n), seed)
    # a prototype that captured only a few outliers would make them look typical: drop it
    _, fit_near = _assign(fit, protos)
    sizes = np.bincount(fit_near, minlength=len(protos))
    keep = sizes >= max(3, 0.05 * len(fit))
    if not keep.all():
        keep[sizes.argmax()] = True
        _, fit_near = _assign(fit, protos[keep])
        protos = np.stack([fit[fit_near == j].mean(0) for j in range(int(keep.sum()))])
    dist, nearest = _typicality(X, rows, protos, centroid)
    order = np.argsort(dist, kind="stable")
    reps: list[int] = []
    # one per prototype (largest first), then the most typical members
    sizes = np.bincount(nearest, minlength=len(protos))
    for j in np.argsort(-sizes, kind="stable"):
        members = np.flatnonzero(nearest == j)
        if len(members):
            reps.append(int(pks[members[dist[members].argmin()]]))
    for i in order:
        if len(reps) >= n_repr:
            break
        if int(pks[i]) not in reps:
            reps.append(int(pks[i]))
    return NodeStats(centroid, protos.astype(np.float32), pks[order], dist[order], reps[:n_repr])


def _pack(st: NodeStats) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, centroid=st.centroid, prototypes=st.prototypes, order=st.order,
             distances=st.distances, representatives=np.asarray(st.representatives, np.int64))
    return buf.getvalue()


def _unpack(data: bytes) -> NodeStats:
    z = np.load(io.BytesIO(data))
    return NodeStats(z["centroid"], z["prototypes"], z["order"], z["distances"],
                     [int(i) for i in z["representatives"]])


def _stats_for(fm, pks: np.ndarray) -> NodeStats:
    from threadpoolctl import threadpool_limits

    rows = fm.rows_of(pks) if len(pks) else np.zeros(0, np.int64)
    has = rows >= 0
    # one BLAS thread: the products are small, and idle-spinning threads slow them 5x on 2 cores
    with threadpool_limits(1):
        st = compute_stats(pks[has], fm.X, rows=rows[has])
    if not has.all():  # members without features cannot be placed: they go last
        missing = pks[~has]
        st.order = np.concatenate([st.order, missing])
        st.distances = np.concatenate([st.distances, np.full(len(missing), np.inf, np.float32)])
    return st


# --- public API -------------------------------------------------------------------------------
def node_stats(project, node_id: int) -> NodeStats:
    """Return the node's statistics, from the cache when its members have not changed."""
    fm = load_matrix(project)
    with project.session() as s:
        nodes = subtree(s, node_id)
        sig = _signature(nodes)
        cached = s.get(NodeCache, node_id)
        if cached is not None and cached.members_version == sig and cached.feature_set == fm.name:
            return _unpack(cached.data)
        ids = [nid for nid, _ in nodes]
        pks = np.sort(np.fromiter(s.execute(select(Membership.object_pk).where(
            Membership.node_id.in_(ids))).scalars(), dtype=np.int64))
    st = _stats_for(fm, pks)
    _store(project, {node_id: (sig, st)}, fm.name)
    return st


def refresh_stats(project, node_ids=None) -> int:
    """Recompute the stale cached statistics of the given (default: all live) nodes; return how many.

    Leaf nodes are read in one query, so refreshing thousands of nodes after a round is fast.
    """
    fm = load_matrix(project)
    with project.session() as s:
        q = select(Node.id, Node.members_version, Node.parent_id).where(Node.status != "dissolved")
        live = {i: (v, p) for i, v, p in s.execute(q).all()}
        parents = {p for _, p in live.values() if p is not None}
        wanted = list(live) if node_ids is None else [i for i in node_ids if i in live]
        cache = {i: (v, f) for i, v, f in s.execute(
            select(NodeCache.node_id, NodeCache.members_version, NodeCache.feature_set)).all()}
        leaves = [i for i in wanted if i not in parents
                  and cache.get(i) != (live[i][0], fm.name)]
        umbrellas = [i for i in wanted if i in parents]
        members = _members_of(s, leaves)
    out = {i: (live[i][0], _stats_for(fm, m)) for i, m in members.items()}
    _store(project, out, fm.name)
    for i in umbrellas:
        node_stats(project, i)
    return len(out) + len(umbrellas)


def _members_of(session, node_ids: list[int]) -> dict[int, np.ndarray]:
    """Return {node id: sorted member pks} of the given nodes, read in one pass."""
    if not node_ids:
        return {}
    pks, nids = membership_arrays(session, (min(node_ids), max(node_ids)))
    want = np.asarray(sorted(node_ids), np.int64)
    keep = np.isin(nids, want)
    pks, nids = pks[keep], nids[keep]
    order = np.lexsort((pks, nids))
    pks, nids = pks[order], nids[order]
    cuts = np.searchsorted(nids, want), np.searchsorted(nids, want, side="right")
    return {int(i): pks[a:b] for i, a, b in zip(want, *cuts)}


def _store(project, stats: dict, feature_set: str) -> None:
    from sqlalchemy.exc import IntegrityError

    if not stats:
        return
    try:
        _write_cache(project, stats, feature_set)
    except IntegrityError:  # another process cached the same node first: its row is as good
        pass


def _write_cache(project, stats: dict, feature_set: str) -> None:
    with project.transaction() as s:
        have = set(s.execute(select(NodeCache.node_id).where(
            NodeCache.node_id.in_(list(stats)))).scalars())
        for nid, (sig, st) in stats.items():
            row = s.get(NodeCache, nid) if nid in have else None
            if row is None:
                s.add(NodeCache(node_id=nid, members_version=sig, feature_set=feature_set,
                                data=_pack(st)))
            else:
                row.members_version, row.feature_set, row.data = sig, feature_set, _pack(st)
