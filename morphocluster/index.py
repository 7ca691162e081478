"""Nearest-neighbour search over the active features through FAISS."""

from __future__ import annotations

import numpy as np

from .features.matrix import load_matrix

_INDEXES: dict = {}


def _flat_index(fm):
    import faiss

    key = (fm.name, id(fm))
    idx = _INDEXES.get(key)
    if idx is None:
        idx = faiss.IndexIDMap2(faiss.IndexFlatL2(fm.X.shape[1]))
        idx.add_with_ids(np.ascontiguousarray(fm.X), fm.pks)
        _INDEXES.clear()
        _INDEXES[key] = idx
    return idx


def search(project, queries, k: int, allowed_pks=None):
    """Return (squared L2 distances, Object.ids) of the k nearest objects to each query.

    With `allowed_pks`, only those objects are candidates. Missing neighbours have pk -1.
    """
    import faiss

    fm = load_matrix(project)
    q = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
    if q.shape[1] != fm.X.shape[1]:
        raise ValueError(f"query dimension {q.shape[1]} != feature dimension {fm.X.shape[1]}")
    idx = _flat_index(fm)
    params = None
    if allowed_pks is not None:
        allowed = np.ascontiguousarray(np.asarray(allowed_pks, dtype=np.int64))
        params = faiss.SearchParameters(sel=faiss.IDSelectorBatch(allowed))
        k = min(k, len(allowed)) or 1
    D, I = idx.search(q, k, params=params)
    return D, I
