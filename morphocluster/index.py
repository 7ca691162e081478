"""Nearest-neighbour search over the active features through FAISS.

`build_index` saves an index of the active feature set in the project's index/ folder: exact
(flat) below EXACT_MAX vectors, IVF above (or HNSW on request), optionally after a PCA fitted
once and stored beside it. `search` uses the saved index when it matches the current feature
matrix and an in-memory exact index otherwise. Restricted searches over a small subset are
answered exactly on that subset, so every index kind returns correct restricted results.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import re
import secrets
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .features.matrix import load_matrix

log = logging.getLogger(__name__)

EXACT_MAX = 200_000      # above this many vectors `auto` builds IVF
# restricted searches over at most this many objects, or this many bytes of their vectors, run
# exactly on a gathered copy of them (faster and exact, vs. IDSelector filtering inside IVF/HNSW)
SUBSET_EXACT_MAX = 50_000
SUBSET_EXACT_BYTES = 256 << 20
KINDS = ("auto", "flat", "ivf", "hnsw")

_CACHE: dict = {}


def _fingerprint(fm) -> str:
    return hashlib.sha1(np.ascontiguousarray(fm.pks).tobytes()).hexdigest()


def _paths(project, name, meta: dict | None = None):
    """Return the index, description and PCA files of a feature set's index: those its
    description names (each build writes files of its own, `name-<build>.faiss`), else the
    files of an index built before builds had names."""
    d = project.index_dir
    meta = meta or {}
    return (d / meta.get("index_file", f"{name}.faiss"), d / f"{name}.json",
            d / meta.get("pca_file", f"{name}.pca"))


def _replace_text(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def build_index(project, pca: int | None = None, kind: str = "auto", nlist: int | None = None,
                hnsw_m: int = 32) -> dict:
    """Build and save the index of the active feature set; return its description."""
    import faiss

    if kind not in KINDS:
        raise ValueError(f"unknown index kind {kind!r}; choose one of {', '.join(KINDS)}")
    t0 = time.perf_counter()
    fm = load_matrix(project)
    n, d = fm.X.shape
    project.index_dir.mkdir(parents=True, exist_ok=True)
    # new files under a name of their own, and the description that names them written last:
    # an interrupted build leaves the previous index working, never a mix of the two
    build = f"{fm.name}-{time.strftime('%Y%m%d%H%M%S')}-{secrets.token_hex(3)}"
    meta_path = _paths(project, fm.name)[1]
    idx_path, pca_path = project.index_dir / f"{build}.faiss", project.index_dir / f"{build}.pca"
    X = np.ascontiguousarray(fm.X)
    meta = {"features": fm.name, "n": int(n), "dim_in": int(d), "pca": None,
            "fingerprint": _fingerprint(fm), "index_file": idx_path.name}
    if pca:
        if not 0 < pca < d:
            raise ValueError(f"--pca {pca}: must be below the feature dimension {d} (1 to {d - 1})")
        mat = faiss.PCAMatrix(d, int(pca))
        sample = X if n <= 100_000 else X[np.random.default_rng(0).choice(n, 100_000, replace=False)]
        mat.train(sample)
        X = mat.apply(X)
        faiss.write_VectorTransform(mat, str(pca_path))
        meta["pca"], meta["pca_file"] = int(pca), pca_path.name
        ev = faiss.vector_to_array(mat.eigenvalues)
        meta["pca_variance_kept"] = round(float(ev[:pca].sum() / max(ev.sum(), 1e-12)), 4)
    dim = X.shape[1]
    if kind == "auto":
        kind = "flat" if n <= EXACT_MAX else "ivf"
    if kind == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatL2(dim))
    elif kind == "ivf":
        # sqrt(n) lists keeps k-means training to a minute on 2 cores at 1M vectors
        nlist = nlist or int(np.clip(np.sqrt(n), 1, max(1, n // 39)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, nlist)
        train = X if n <= 50 * nlist else X[np.random.default_rng(0).choice(n, 50 * nlist, replace=False)]
        index.train(train)
        meta["nlist"] = int(nlist)
    else:
        index = faiss.IndexIDMap2(faiss.IndexHNSWFlat(dim, hnsw_m))
        meta["hnsw_m"] = hnsw_m
    index.add_with_ids(X, fm.pks)
    meta.update(kind=kind, dim=int(dim), build_seconds=round(time.perf_counter() - t0, 3))
    faiss.write_index(index, str(idx_path))
    _replace_text(meta_path, json.dumps(meta, indent=2))
    _CACHE.clear()
    _remove_other_builds(project, fm.name, meta)
    return meta


def _remove_other_builds(project, name: str, meta: dict) -> None:
    """Delete the files of this feature set's earlier (or interrupted) index builds."""
    keep = {meta.get("index_file"), meta.get("pca_file")}
    d = project.index_dir
    old = [d / f"{name}.faiss", d / f"{name}.pca", d / f"{name}.faiss.tmp"]
    old += [p for p in d.glob(f"{glob.escape(name)}-*") if p.suffix in (".faiss", ".pca")
            and re.fullmatch(re.escape(name) + r"-\d{14}-[0-9a-f]{6}", p.stem)]
    for p in old:
        if p.name not in keep:
            p.unlink(missing_ok=True)


def index_info(project) -> dict | None:
    """Return the description of the saved index of the active feature set, if any."""
    fm = load_matrix(project)
    _, meta_path, _ = _paths(project, fm.name)
    if not meta_path.is_file():
        return None
    return json.loads(meta_path.read_text(encoding="utf-8"))


class _Searcher:
    """An index over the rows of one feature matrix, plus what restricted search needs."""

    def __init__(self, fm, index, meta, pca=None):
        self.fm, self.index, self.meta, self.pca = fm, index, meta, pca
        self._Xt = None
        self.subset = None  # (hash of allowed pks, their rows in index space, their pks)

    @property
    def Xt(self):
        """The matrix in index space (after PCA)."""
        if self._Xt is None:
            self._Xt = self.fm.X if self.pca is None else self.pca.apply(np.ascontiguousarray(self.fm.X))
        return self._Xt

    def transform(self, q):
        return q if self.pca is None else self.pca.apply(q)


def _searcher(project):
    import faiss

    fm = load_matrix(project)
    meta_path = _paths(project, fm.name)[1]
    key = (id(fm), meta_path.stat().st_mtime_ns if meta_path.exists() else None)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    s = None
    meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    idx_path, _, pca_path = _paths(project, fm.name, meta)
    if idx_path.is_file() and meta:
        if meta.get("fingerprint") == _fingerprint(fm) and meta.get("dim_in") == fm.X.shape[1]:
            pca = faiss.read_VectorTransform(str(pca_path)) if meta.get("pca") else None
            s = _Searcher(fm, faiss.read_index(str(idx_path)), meta, pca)
        else:
            log.warning("index of %s is out of date (objects or features changed); searching exactly. "
                        "Run `morphocluster index` again.", fm.name)
    if s is None:
        index = faiss.IndexIDMap2(faiss.IndexFlatL2(fm.X.shape[1]))
        index.add_with_ids(np.ascontiguousarray(fm.X), fm.pks)
        s = _Searcher(fm, index, {"kind": "flat", "saved": False})
    _CACHE.clear()
    _CACHE[key] = s
    return s


def _params(s, k, sel=None, nprobe=None, frac=1.0):
    import faiss

    kind = s.meta["kind"]
    if kind == "ivf":
        nl = s.meta["nlist"]
        # probe enough lists to see ~20 k allowed candidates, and at least 1/16 of them for recall
        want = 20 * k * nl / max(s.meta["n"] * frac, 1)
        probe = nprobe or int(min(nl, max(nl // 16, 8, np.ceil(want))))
        return faiss.SearchParametersIVF(sel=sel, nprobe=probe)
    if kind == "hnsw":
        return faiss.SearchParametersHNSW(sel=sel, efSearch=max(2 * k, 64))
    return faiss.SearchParameters(sel=sel) if sel is not None else None


def _exact_subset(s, q, k, allowed):
    """Exact k-NN among the rows of `allowed` pks."""
    import faiss

    key = hashlib.sha1(allowed.tobytes()).digest()
    if s.subset is None or s.subset[0] != key:
        rows = s.fm.rows_of(allowed)
        rows = rows[rows >= 0]
        s.subset = (key, np.ascontiguousarray(s.Xt[rows]), s.fm.pks[rows])
    _, Xs, pks_s = s.subset
    if len(pks_s) == 0:
        return (np.full((len(q), k), np.inf, dtype=np.float32), np.full((len(q), k), -1, dtype=np.int64))
    D, I = faiss.knn(q, Xs, min(k, len(pks_s)))
    pks = np.where(I >= 0, pks_s[np.maximum(I, 0)], -1)
    if D.shape[1] < k:
        pad = k - D.shape[1]
        D = np.hstack([D, np.full((len(q), pad), np.inf, dtype=np.float32)])
        pks = np.hstack([pks, np.full((len(q), pad), -1, dtype=np.int64)])
    return D, pks


@contextmanager
def _few_threads(nq: int):
    """Search a handful of queries on one thread: OpenMP's start-up and spinning cost more
    than the search itself (about 100x for one query on a busy 2-core machine)."""
    import faiss

    if nq >= 32:
        yield
        return
    before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    try:
        yield
    finally:
        faiss.omp_set_num_threads(before)


def search(project, queries, k: int, allowed_pks=None, nprobe: int | None = None):
    """Return (squared L2 distances, Object.ids) of the k nearest objects to each query.

    Queries are in the feature space of the active set (PCA, if the index has one, is applied
    here; distances are then in PCA space). With `allowed_pks`, only those objects are
    candidates. Missing neighbours have pk -1.
    """
    s = _searcher(project)
    q = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
    if q.shape[1] != s.fm.X.shape[1]:
        raise ValueError(f"query dimension {q.shape[1]} != feature dimension {s.fm.X.shape[1]}")
    with _few_threads(len(q)):
        return _search(s, np.ascontiguousarray(s.transform(q)), k, allowed_pks, nprobe)


def _search(s, q, k, allowed_pks, nprobe):
    import faiss

    k = max(1, min(int(k), len(s.fm.pks)))
    if allowed_pks is None:
        return s.index.search(q, k, params=_params(s, k, nprobe=nprobe))
    allowed = np.asarray(allowed_pks, dtype=np.int64)
    if len(allowed) > 1 and not (allowed[1:] > allowed[:-1]).all():  # sorting 1M ids costs ~0.1 s
        allowed = np.unique(allowed)
    k = max(1, min(k, len(allowed)))
    n = len(s.fm.pks)
    # approximate indexes can miss neighbours inside a small subset; flat scans all n otherwise
    dim = s.meta.get("dim", s.fm.X.shape[1])
    small = len(allowed) <= SUBSET_EXACT_MAX or len(allowed) * dim * 4 <= SUBSET_EXACT_BYTES
    if small and (s.meta["kind"] != "flat" or 8 * len(allowed) <= n):
        return _exact_subset(s, q, k, allowed)
    sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed))
    frac = len(allowed) / max(n, 1)
    return s.index.search(q, k, params=_params(s, k, sel=sel, nprobe=nprobe, frac=frac))
