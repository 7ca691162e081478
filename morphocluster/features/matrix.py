"""The active feature matrix aligned with the objects table (rows carry Object.id)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select

from ..store import Object
from .h5 import FeatureError, active_name, feature_path, read_features

_CACHE: dict = {}


@dataclass
class FeatureMatrix:
    pks: np.ndarray          # int64 Object.id per row
    object_ids: np.ndarray   # user object ids per row
    X: np.ndarray            # float32 (n, d)
    name: str

    def rows_of(self, pks) -> np.ndarray:
        """Return the row positions of the given Object.ids (-1 where absent)."""
        order = np.argsort(self.pks)
        pks = np.asarray(pks, dtype=np.int64)
        pos = np.searchsorted(self.pks, pks, sorter=order)
        pos = np.clip(pos, 0, len(order) - 1)
        rows = order[pos]
        return np.where(self.pks[rows] == pks, rows, -1)


def load_matrix(project, name: str | None = None) -> FeatureMatrix:
    """Return the named or active feature set with rows mapped to Object.id (cached per file)."""
    name = name or active_name(project)
    path = feature_path(project, name)
    if not path.is_file():
        raise FeatureError(f"no feature set named {name!r} in {project.root}")
    key = (str(path.resolve()), path.stat().st_mtime_ns)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    ids, X, _ = read_features(path)
    with project.session() as s:
        by_id = dict(s.execute(select(Object.object_id, Object.id)).all())
    pks = np.fromiter((by_id.get(i, -1) for i in ids), dtype=np.int64, count=len(ids))
    keep = pks >= 0  # feature rows of objects no longer in the project are ignored
    fm = FeatureMatrix(pks[keep], ids[keep], X[keep], name)
    _CACHE.clear()
    _CACHE[key] = fm
    return fm
