"""A 2-D map of the feature space for the web UI, computed once per feature set and stored.

UMAP (on a 64-d PCA) for up to `UMAP_MAX` objects, PCA beyond that; the coordinates live in
`cache/map2d.npz`. Node colours come from the current memberships at each call.
"""

from __future__ import annotations

import numpy as np
from sqlalchemy import select

from .features.matrix import load_matrix
from .store import Membership

UMAP_MAX = 100_000
FILE = "map2d.npz"


def _path(project):
    return project.cache_dir / FILE


def _fresh(project, fm) -> bool:
    p = _path(project)
    if not p.is_file():
        return False
    z = np.load(p, allow_pickle=False)
    return str(z["feature_set"]) == fm.name and np.array_equal(z["pks"], fm.pks)


def compute_map(project, method: str | None = None, force: bool = False) -> str:
    """Compute and store the 2-D map unless it is up to date; return the method used."""
    fm = load_matrix(project)
    if not force and method is None and _fresh(project, fm):
        return str(np.load(_path(project))["method"])
    method = method or ("umap" if len(fm.pks) <= UMAP_MAX else "pca")
    if method not in ("umap", "pca"):
        raise ValueError(f"map method must be umap or pca, got {method!r}")
    from .cluster.estimator import reduce_features

    X = fm.X
    if len(X) < 5:
        xy = np.zeros((len(X), 2), np.float32)
        k = min(2, X.shape[1])
        xy[:, :k] = X[:, :k]
    elif method == "pca":
        xy = reduce_features(X, "pca:2")
    else:
        xy = reduce_features(reduce_features(X, "pca:64"), "umap:2")
    project.cache_dir.mkdir(exist_ok=True)
    tmp = project.cache_dir / (FILE + ".tmp.npz")
    np.savez(tmp, pks=fm.pks, xy=xy.astype(np.float32), feature_set=fm.name, method=method)
    tmp.replace(_path(project))
    return method


def map_2d(project) -> dict:
    """Return dict(pks, xy, node_ids) of every object; node_ids is -1 where in no node."""
    fm = load_matrix(project)
    if not _fresh(project, fm):
        compute_map(project)
    z = np.load(_path(project), allow_pickle=False)
    pks, xy = z["pks"], z["xy"]
    with project.session() as s:
        rows = s.execute(select(Membership.object_pk, Membership.node_id)).all()
    node_ids = np.full(len(pks), -1, np.int64)
    if rows:
        m = np.asarray(rows, dtype=np.int64)
        order = np.argsort(pks)
        pos = np.clip(np.searchsorted(pks, m[:, 0], sorter=order), 0, len(pks) - 1)
        hit = pks[order[pos]] == m[:, 0]
        node_ids[order[pos[hit]]] = m[hit, 1]
    return {"pks": pks, "xy": xy, "node_ids": node_ids}
