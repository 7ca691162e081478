"""Node statistics for the workflow: member order and prototypes (from `nodestats`), k-means."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..features.matrix import load_matrix
from ..store import Node
from ._core import WorkflowError

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


def node_stats(project, node_id: int) -> Stats:
    """Return the statistics of a node's current members (from `morphocluster.nodestats`)."""
    from ..nodestats import node_stats as shared_stats

    with project.session() as s:
        if s.get(Node, int(node_id)) is None:
            raise WorkflowError(f"node {node_id} not found")
    st = shared_stats(project, int(node_id))
    return Stats(np.asarray(st.centroid), np.asarray(st.prototypes),
                 np.asarray(st.order, dtype=np.int64), np.asarray(st.distances))
