"""One clustering round for the simulator: `morphocluster.cluster.cluster_round` when present.

The small fallback (PCA, HDBSCAN on the objects in no node, one candidate node per cluster)
only keeps the simulator usable in a build without the cluster module.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import func, select

from ..features.matrix import load_matrix
from ..store import Membership, Node, log_event


def run_cluster_round(project, min_cluster_size, min_samples=None, method="leaf", reduce="pca:64",
                      user_id=None) -> int:
    """Run one round; return how many candidate nodes it proposed."""
    try:
        from ..cluster import cluster_round
    except ImportError:
        cluster_round = None
    if cluster_round is not None:
        with project.session() as s:
            before = s.scalar(select(func.max(Node.id))) or 0
        import inspect

        extra = {"map2d": False} if "map2d" in inspect.signature(cluster_round).parameters else {}
        try:
            cluster_round(project, min_cluster_size=min_cluster_size, min_samples=min_samples,
                          method=method, reduce=reduce, user_id=user_id, **extra)
        except ValueError:  # too few free objects left to cluster
            return 0
        with project.session() as s:
            return s.scalar(select(func.count()).select_from(Node).where(
                Node.id > before, Node.status == "candidate")) or 0
    return _fallback_round(project, min_cluster_size, min_samples, method, reduce, user_id)


def _fallback_round(project, min_cluster_size, min_samples, method, reduce, user_id) -> int:
    import hdbscan
    from sklearn.decomposition import PCA

    fm = load_matrix(project)
    with project.session() as s:
        taken = np.fromiter(s.scalars(select(Membership.object_pk)), dtype=np.int64)
        rnd = (s.scalar(select(func.max(Node.round))) or 0) + 1
    free = ~np.isin(fm.pks, taken)
    pks, X = fm.pks[free], fm.X[free]
    if len(pks) < 2 * min_cluster_size:
        return 0
    kind, _, dims = str(reduce or "none").partition(":")
    if kind == "pca" and int(dims) < X.shape[1]:
        X = PCA(int(dims), random_state=0).fit_transform(X)
    labels = hdbscan.HDBSCAN(min_cluster_size=int(min_cluster_size), min_samples=min_samples,
                             cluster_selection_method=method).fit_predict(X)
    params = {"min_cluster_size": min_cluster_size, "min_samples": min_samples, "method": method,
              "reduce": reduce, "fallback": True}
    with project.transaction() as s:
        ids = []
        for lab in range(labels.max() + 1):
            members = pks[labels == lab]
            node = Node(status="candidate", round=rnd, params=params, n_members=len(members),
                        created_by=user_id)
            s.add(node)
            s.flush()
            ids.append(node.id)
            s.execute(Membership.__table__.insert(), [
                {"object_pk": int(pk), "node_id": node.id, "status": "cluster"} for pk in members])
        log_event(s, user_id, "cluster", {"round": rnd, "nodes": len(ids), **params})
    return len(ids)
