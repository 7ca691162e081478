"""Nearest-neighbour search over the active features' working matrix through FAISS.

`build_index` saves an index of the working matrix (see `features.working`) in the project's
index/ folder: exact (flat) below EXACT_MAX vectors; above, IVF with 8-bit scalar-quantised
vectors (a quarter of the working matrix's float32 size), whose top hits are re-ranked exactly
on the working matrix; HNSW on request; optionally after a further PCA. `search` uses the saved
index when it matches the current matrix and an in-memory exact index otherwise. Restricted
searches over a small subset are answered exactly on that subset, and large ones may name
the objects to leave out instead of those allowed.
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
KINDS = ("auto", "flat", "ivf", "ivfflat", "hnsw")
RERANK = 4               # an IVF-SQ8 search fetches this many times k, re-ranked exactly
ADD_CHUNK = 262_144      # vectors added to an index at a time
MIN_PROBE = 32           # IVF lists probed at least (benchmarks/scale_bench.py: first page recall)

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
    meta = {"features": fm.name, "n": int(n), "dim_in": int(d), "pca": None,
            "fingerprint": _fingerprint(fm), "index_file": idx_path.name}
    rng = np.random.default_rng(0)

    def sample(m):
        return fm.X[np.sort(rng.choice(n, m, replace=False))] if n > m else fm.X[:]

    mat = None
    if pca:
        if not 0 < pca < d:
            raise ValueError(f"--pca {pca}: must be below the feature dimension {d} (1 to {d - 1})")
        mat = faiss.PCAMatrix(d, int(pca))
        mat.train(np.ascontiguousarray(sample(100_000)))
        faiss.write_VectorTransform(mat, str(pca_path))
        meta["pca"], meta["pca_file"] = int(pca), pca_path.name
        ev = faiss.vector_to_array(mat.eigenvalues)
        meta["pca_variance_kept"] = round(float(ev[:pca].sum() / max(ev.sum(), 1e-12)), 4)
    dim = int(pca) if pca else d

    def t(X):
        return np.ascontiguousarray(X if mat is None else mat.apply(np.ascontiguousarray(X)))

    if kind == "auto":
        kind = "flat" if n <= EXACT_MAX else "ivf"
    if kind == "flat":
        index = faiss.IndexIDMap2(faiss.IndexFlatL2(dim))
    elif kind in ("ivf", "ivfflat"):
        # sqrt(n) lists keeps k-means training to a minute on 2 cores at 1M vectors
        nlist = nlist or int(np.clip(np.sqrt(n), 1, max(1, n // 39)))
        quantizer = faiss.IndexFlatL2(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, nlist) if kind == "ivfflat" else \
            faiss.IndexIVFScalarQuantizer(quantizer, dim, nlist, faiss.ScalarQuantizer.QT_8bit)
        index.train(t(sample(min(n, max(50 * nlist, 10_000)))))
        meta["nlist"] = int(nlist)
    else:
        index = faiss.IndexIDMap2(faiss.IndexHNSWFlat(dim, hnsw_m))
        meta["hnsw_m"] = hnsw_m
    for a in range(0, n, ADD_CHUNK):
        index.add_with_ids(t(fm.X[a:a + ADD_CHUNK]), fm.pks[a:a + ADD_CHUNK])
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


def _available_memory() -> int | None:
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def warm(project, share: float = 0.5) -> dict:
    """Read the working matrix, the saved index and a SQLite database once, so that the first
    grow page, node statistics and the map find them in the page cache instead of reading
    scattered rows from disk (seconds at 10 M objects). Files are read in that order while they
    fit in `share` of the available memory; the others are left out.
    Return {"bytes": read, "seconds": taken, "skipped": what was left out, or None}."""
    t0 = time.perf_counter()
    fm = load_matrix(project)
    files = [Path(fm.X.mm.filename)] if getattr(fm.X.mm, "filename", None) else []
    meta = index_info(project) or {}
    idx_path = _paths(project, fm.name, meta)[0]
    if meta and idx_path.is_file():
        files.append(idx_path)
    url = project.db_url
    if url.startswith("sqlite:///") and Path(url[len("sqlite:///"):]).is_file():
        files.append(Path(url[len("sqlite:///"):]))
    avail = _available_memory()
    budget = share * avail if avail is not None else float("inf")
    size, left_out, buf = 0, [], bytearray(16 << 20)
    for f in files:
        n = f.stat().st_size
        if size + n > budget:
            left_out.append(f.name)
            continue
        with open(f, "rb", buffering=0) as fh:
            while fh.readinto(buf):
                pass
        size += n
    if meta and idx_path.is_file():
        _searcher(project)  # opened once here, not by the first search
    skipped = (f"{', '.join(left_out)}: over {share:.0%} of the available memory"
               if left_out else None)
    return {"bytes": size, "seconds": time.perf_counter() - t0, "skipped": skipped}


class _Searcher:
    """An index over the rows of one feature matrix, plus what restricted search needs."""

    def __init__(self, fm, index, meta, pca=None):
        self.fm, self.index, self.meta, self.pca = fm, index, meta, pca
        self.subset = None  # (hash of allowed pks, their rows in index space, their pks)

    def rows(self, rows):
        """The working rows `rows` in index space (after PCA)."""
        return np.ascontiguousarray(self.transform(np.ascontiguousarray(self.fm.X[rows])))

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
            # memory mapped: opens at once, and processes share its pages through the page cache
            s = _Searcher(fm, faiss.read_index(str(idx_path), faiss.IO_FLAG_MMAP_IFC), meta, pca)
        else:
            log.warning("index of %s is out of date (objects or features changed); searching exactly. "
                        "Run `morphocluster index` again.", fm.name)
    if s is None:
        index = faiss.IndexIDMap2(faiss.IndexFlatL2(fm.X.shape[1]))
        for a, X in fm.X.chunks(ADD_CHUNK):
            index.add_with_ids(np.ascontiguousarray(X), fm.pks[a:a + ADD_CHUNK])
        s = _Searcher(fm, index, {"kind": "flat", "saved": False})
    _CACHE.clear()
    _CACHE[key] = s
    return s


def _params(s, k, sel=None, nprobe=None, frac=1.0):
    import faiss

    kind = s.meta["kind"]
    if kind in ("ivf", "ivfflat"):
        nl = s.meta["nlist"]
        # probe enough lists to see ~20 k allowed candidates, and at least MIN_PROBE of them for
        # recall; a floor of a fixed share of the lists would make each search grow with N
        want = 20 * k * nl / max(s.meta["n"] * frac, 1)
        probe = nprobe or int(min(nl, max(MIN_PROBE, np.ceil(want))))
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
        s.subset = (key, s.rows(rows), s.fm.pks[rows])
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


def search(project, queries, k: int, allowed_pks=None, nprobe: int | None = None,
           excluded_pks=None):
    """Return (squared L2 distances, Object.ids) of the k nearest objects to each query.

    Queries are working rows (`load_matrix(project).X`; a further PCA, if the index has one, is
    applied here and distances are then in its space). With `allowed_pks`, only those objects
    are candidates; with `excluded_pks`, all but those (cheaper when few are left out).
    Missing neighbours have pk -1.
    """
    s = _searcher(project)
    q = np.ascontiguousarray(np.atleast_2d(np.asarray(queries, dtype=np.float32)))
    if q.shape[1] != s.fm.X.shape[1]:
        raise ValueError(f"query dimension {q.shape[1]} != feature dimension {s.fm.X.shape[1]}")
    with _few_threads(len(q)):
        return _search(s, np.ascontiguousarray(s.transform(q)), k, allowed_pks, nprobe,
                       excluded_pks)


def _search(s, q, k, allowed_pks, nprobe, excluded_pks=None):
    import faiss

    n = len(s.fm.pks)
    k = max(1, min(int(k), n))
    if allowed_pks is None:
        sel, frac = None, 1.0
        if excluded_pks is not None and len(excluded_pks):
            excluded = np.unique(np.asarray(excluded_pks, dtype=np.int64))
            out = s.fm.rows_of(excluded)
            out = out[out >= 0]
            if n - len(out) <= SUBSET_EXACT_MAX:  # few left: name them instead
                keep = np.ones(n, bool)
                keep[out] = False
                return _search(s, q, k, s.fm.pks[keep], nprobe)
            inner = faiss.IDSelectorBatch(np.ascontiguousarray(excluded))
            sel = faiss.IDSelectorNot(inner)
            sel.referenced_objects = [inner]  # the C++ object keeps a bare pointer to it
            frac = (n - len(out)) / max(n, 1)
        return _index_search(s, q, k, sel, nprobe, frac)
    allowed = np.asarray(allowed_pks, dtype=np.int64)
    if len(allowed) > 1 and not (allowed[1:] > allowed[:-1]).all():  # sorting 1M ids costs ~0.1 s
        allowed = np.unique(allowed)
    k = max(1, min(k, len(allowed)))
    # approximate indexes can miss neighbours inside a small subset; flat scans all n otherwise
    dim = s.meta.get("dim", s.fm.X.shape[1])
    small = len(allowed) <= SUBSET_EXACT_MAX or len(allowed) * dim * 4 <= SUBSET_EXACT_BYTES
    if small and (s.meta["kind"] != "flat" or 8 * len(allowed) <= n):
        return _exact_subset(s, q, k, allowed)
    sel = faiss.IDSelectorBatch(np.ascontiguousarray(allowed))
    return _index_search(s, q, k, sel, nprobe, len(allowed) / max(n, 1))


def _index_search(s, q, k, sel, nprobe, frac):
    """Search the index; quantised hits are re-ranked on the exact working rows."""
    if s.meta["kind"] != "ivf":
        return s.index.search(q, k, params=_params(s, k, sel=sel, nprobe=nprobe, frac=frac))
    kk = min(RERANK * k, len(s.fm.pks))
    _, I = s.index.search(q, kk, params=_params(s, kk, sel=sel, nprobe=nprobe, frac=frac))
    D = np.full(I.shape, np.inf, np.float32)
    found = I >= 0
    if found.any():
        hit = np.unique(I[found])
        X = s.rows(s.fm.rows_of(hit))
        pos = np.searchsorted(hit, I[found])
        qi = np.nonzero(found)[0]
        D[found] = ((X[pos] - q[qi]) ** 2).sum(axis=1)
    order = np.argsort(D, axis=1, kind="stable")[:, :k]
    D, I = np.take_along_axis(D, order, 1), np.take_along_axis(I, order, 1)
    I[~np.isfinite(D)] = -1
    return D, I
