"""Node statistics for the workflow: member order and prototypes.

Uses `morphocluster.nodestats.node_stats` when it is there; otherwise a small local version
(centroid distance order, k-means prototypes) cached per (node, members_version).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..features.matrix import load_matrix
from ..store import Node
from ._core import WorkflowError, member_pks

_CACHE: dict = {}
N_PROTOTYPES = 16


@dataclass
class Stats:
    centroid: np.ndarray
    prototypes: np.ndarray
    order: np.ndarray       # Object.ids, most to least typical
    distances: np.ndarray   # distance to the centroid, same order


def member_features(project, pks):
    """Return (pks that have features, their feature rows)."""
    fm = load_matrix(project)
    rows = fm.rows_of(np.asarray(pks, dtype=np.int64))
    ok = rows >= 0
    return np.asarray(pks, dtype=np.int64)[ok], fm.X[rows[ok]]


def kmeans(X: np.ndarray, k: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (centres, labels) of a small k-means (k capped at the number of rows)."""
    from sklearn.cluster import KMeans

    k = max(1, min(k, len(X)))
    if k == 1:
        return X.mean(axis=0, keepdims=True), np.zeros(len(X), dtype=int)
    km = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(X)
    return km.cluster_centers_.astype(np.float32), km.labels_


def _local_stats(project, node_id: int) -> Stats:
    with project.session() as s:
        pks = member_pks(s, node_id)
    pks, X = member_features(project, pks)
    if len(pks) == 0:
        empty = np.zeros((0, load_matrix(project).X.shape[1]), np.float32)
        return Stats(np.zeros(empty.shape[1], np.float32), empty, pks, np.zeros(0))
    c = X.mean(axis=0)
    d = np.linalg.norm(X - c, axis=1)
    order = np.argsort(d, kind="stable")
    protos, _ = kmeans(X, N_PROTOTYPES)
    return Stats(c, protos, pks[order], d[order])


def node_stats(project, node_id: int) -> Stats:
    """Return the statistics of a node's current members."""
    with project.session() as s:
        node = s.get(Node, int(node_id))
        if node is None:
            raise WorkflowError(f"node {node_id} not found")
        version = node.members_version
    try:
        from ..nodestats import node_stats as shared_stats
    except ImportError:
        shared_stats = None
    if shared_stats is not None:
        st = shared_stats(project, int(node_id))
        return Stats(np.asarray(st.centroid), np.asarray(st.prototypes),
                     np.asarray(st.order, dtype=np.int64), np.asarray(st.distances))
    key = (str(project.root), int(node_id), version, load_matrix(project).name)
    hit = _CACHE.get(key)
    if hit is None:
        hit = _local_stats(project, int(node_id))
        if len(_CACHE) > 64:
            _CACHE.clear()
        _CACHE[key] = hit
    return hit
