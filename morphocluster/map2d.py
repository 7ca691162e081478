"""A 2-D map of the feature space for the web UI, computed once per feature set and stored.

The map shows a fixed random sample of at most `SAMPLE` objects (all of them below that):
UMAP (on a 32-d PCA of the working matrix) up to `UMAP_MAX` objects in the sample, PCA beyond
that. It is computed by a clustering round (a job), stored in `cache/map2d.npz`, and node
colours come from the memberships of the sampled objects at each call.
"""

from __future__ import annotations

import warnings

import numpy as np
from sqlalchemy import select

from .features.matrix import load_matrix
from .store import Membership

UMAP_MAX = 100_000
SAMPLE = 20_000
FILE = "map2d.npz"


def _path(project):
    return project.cache_dir / FILE


def _stored(project, fm) -> str | None:
    """Return the method of the stored map if it was made from the current objects, else None."""
    p = _path(project)
    if not p.is_file():
        return None
    with np.load(p, allow_pickle=False) as z:
        n = int(z["n"]) if "n" in z.files else len(z["pks"])
        if str(z["feature_set"]) == fm.name and n == len(fm.pks):
            return str(z["method"])
    return None


def default_method(n: int) -> str:
    return "umap" if n <= UMAP_MAX else "pca"


def compute_map(project, method: str | None = None, force: bool = False) -> str:
    """Compute and store the 2-D map unless it is up to date; return the method used."""
    fm = load_matrix(project)
    method = method or default_method(min(len(fm.pks), SAMPLE))
    if method not in ("umap", "pca"):
        raise ValueError(f"map method must be umap or pca, got {method!r}")
    if not force and _stored(project, fm) == method:
        return method
    from .cluster.estimator import reduce_features

    rows = np.arange(len(fm.pks)) if len(fm.pks) <= SAMPLE else np.sort(
        np.random.default_rng(0).choice(len(fm.pks), SAMPLE, replace=False))
    X = fm.X[rows]
    if len(X) < 5:
        xy = np.zeros((len(X), 2), np.float32)
        k = min(2, X.shape[1])
        xy[:, :k] = X[:, :k]
    elif method == "pca":
        xy = reduce_features(X, "pca:2")
    else:
        import umap

        # PCA initialisation: the spectral one costs minutes on large graphs
        Z = reduce_features(X, "pca:32")
        with warnings.catch_warnings():  # "n_jobs overridden by random_state": as meant (repeatable)
            warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
            xy = umap.UMAP(n_components=2, n_neighbors=15, init="pca", random_state=0,
                           low_memory=True).fit_transform(Z)
    project.cache_dir.mkdir(exist_ok=True)
    tmp = project.cache_dir / (FILE + ".tmp.npz")
    np.savez(tmp, pks=fm.pks[rows], xy=xy.astype(np.float32), feature_set=fm.name,
             method=method, n=len(fm.pks))
    tmp.replace(_path(project))
    return method


def map_2d(project) -> dict:
    """Return dict(pks, xy, node_ids) of the mapped objects; node_ids is -1 where in no node.

    Reads the stored map (computed by `cluster_round`); without one, stores a PCA map first.
    """
    fm = load_matrix(project)
    if _stored(project, fm) is None:
        # a quick PCA map now (called from web requests); the next round stores the UMAP one
        compute_map(project, method="pca")
    with np.load(_path(project), allow_pickle=False) as z:
        pks, xy = z["pks"], z["xy"]
    rows = []
    with project.session() as s:
        for a in range(0, len(pks), 10_000):
            part = [int(x) for x in pks[a:a + 10_000]]
            rows += s.execute(select(Membership.object_pk, Membership.node_id)
                              .where(Membership.object_pk.in_(part))).all()
    node_ids = np.full(len(pks), -1, np.int64)
    if rows:
        m = np.array([tuple(r) for r in rows], dtype=np.int64)  # Row objects: slow in asarray
        order = np.argsort(pks)
        pos = np.clip(np.searchsorted(pks, m[:, 0], sorter=order), 0, len(pks) - 1)
        hit = pks[order[pos]] == m[:, 0]
        node_ids[order[pos[hit]]] = m[hit, 1]
    return {"pks": pks, "xy": xy, "node_ids": node_ids}
