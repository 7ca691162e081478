"""The working matrix: a compact copy of a feature set that the interactive parts work on.

Index, grow ranking, clustering, suggestions, the map and node statistics read this matrix, not
the full features: a PCA of the stored features (fitted once on a sample, `WORKING_DIM`
components scaled to unit average variance) in float16, rows in `Object.id` order, memory
mapped from `features/<name>.working/`. Several processes then share one copy through the
page cache and none holds an N x full-width array. A feature set no wider than `WORKING_DIM`
is kept as it is (float32, no PCA). Objects whose features are appended later are projected
with the same fit; `build_working(refit=True)` fits anew. A build is written into
`<name>.working.build/` and put in place when complete; one that was stopped part way resumes
from the row it got to (`build.json`), and one that another live process runs is refused.

Files: `meta.json` (written last: what the other files are, and the feature file they were
made from), `fit.npz` (mean, components), `matrix.npy` (n x k), `pks.npy` (Object.id per row,
ascending), `src.npy` (the row of each in the feature file).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
from sqlalchemy import select

from ..store import Object
from .h5 import FeatureError, feature_path, full_kept, stored_shape

log = logging.getLogger(__name__)

WORKING_DIM = 128
FIT_SAMPLE = 50_000   # rows the PCA is fitted on (random blocks of the feature file)
BLOCK = 4096          # rows per block drawn for that sample
CHUNK = 32_768        # feature rows read at a time when projecting
FORMAT = 1


def working_dir(project, name: str) -> Path:
    return project.features_dir / f"{name}.working"


def _source_stamp(path: Path) -> dict:
    st = path.stat()
    with h5py.File(path, "r") as h:
        n, d = stored_shape(h)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "n": int(n), "d": int(d)}


def read_meta(project, name: str) -> dict | None:
    p = working_dir(project, name) / "meta.json"
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def is_current(project, name: str, meta: dict | None = None) -> bool:
    """Return whether the working matrix was made from the feature file as it is now."""
    meta = meta if meta is not None else read_meta(project, name)
    path = feature_path(project, name)
    if not meta or meta.get("format") != FORMAT or not path.is_file():
        return False
    st = path.stat()
    src = meta.get("source", {})
    return src.get("size") == st.st_size and src.get("mtime_ns") == st.st_mtime_ns


def fit_pca(S: np.ndarray, k: int, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (mean, components d x k) of a PCA of the rows S, scaled to unit average variance
    per axis (so a linear model's regularisation means the same whatever the features' scale)."""
    from sklearn.decomposition import PCA

    S = np.asarray(S, np.float32)
    k = max(1, min(k, S.shape[1], len(S)))
    pca = PCA(n_components=k, svd_solver="covariance_eigh", random_state=random_state).fit(S)
    scale = np.sqrt(max(float(pca.explained_variance_.sum()), 1e-12) / k)
    return pca.mean_.astype(np.float32), (pca.components_.T / scale).astype(np.float32)


def read_sample(ds, want: int = FIT_SAMPLE, seed: int = 0) -> np.ndarray:
    """Return rows of random whole blocks of a dataset: a sample that reads a few chunks of the
    file, not every chunk."""
    n = ds.shape[0]
    if n <= want:
        return np.asarray(ds[:], np.float32)
    rng = np.random.default_rng(seed)
    starts = np.arange(0, n, BLOCK)
    pick = np.sort(rng.choice(len(starts), min(len(starts), -(-want // BLOCK)), replace=False))
    return np.concatenate([np.asarray(ds[s:s + BLOCK], np.float32) for s in starts[pick]])


def _pks_of(project, ids) -> np.ndarray:
    """Return the Object.id of each user object id (-1 where the project has none)."""
    out = np.full(len(ids), -1, np.int64)
    with project.session() as s:
        for a in range(0, len(ids), 20_000):
            part = [str(i) for i in ids[a:a + 20_000]]
            found = dict(s.execute(select(Object.object_id, Object.id)
                                   .where(Object.object_id.in_(part))).all())
            out[a:a + len(part)] = [found.get(i, -1) for i in part]
    return out


def build_working(project, name: str, dim: int | None = None, refit: bool = False,
                  progress=None) -> dict:
    """Make (or bring up to date) the working matrix of a feature set; return its meta.

    Rows appended to the feature file since are projected with the existing fit, unless
    `refit`; a feature file rewritten otherwise is projected anew. A set that keeps no full
    features (`store="none"`) gets its matrix from `features` itself (see `not_kept`).
    """
    tell = progress or (lambda frac, msg: None)
    path = feature_path(project, name)
    if not path.is_file():
        raise FeatureError(f"no feature set named {name!r} in {project.root}")
    with h5py.File(path, "r") as h:
        kept = full_kept(h)
    if not kept:
        from .not_kept import settle

        return settle(project, name, refit=refit or dim is not None)
    old = read_meta(project, name)
    if not refit and old and is_current(project, name, old):
        return old
    k = int(dim or (project.config.get("working") or {}).get("dim") or WORKING_DIM)
    t0 = time.perf_counter()
    with h5py.File(path, "r") as h:
        ds = h["features"]
        n, d = ds.shape
        if n == 0:
            raise FeatureError(f"{path}: the feature set holds no objects")
        start, fit = 0, None
        if old and not refit and old.get("format") == FORMAT and old.get("dim_in") == d \
                and old.get("dim") == min(k, d) and old["source"]["n"] <= n:
            start = old["source"]["n"]
            if start and h["object_id"].asstr()[start - 1] != old.get("last_id"):
                start = 0  # not an append: the file was rewritten
        # the ids of the rows to project only (an append reads no old ones)
        ids = h["object_id"].asstr()[start:]
        last_id = str(ids[-1]) if len(ids) else str(h["object_id"].asstr()[n - 1])
        out = working_dir(project, name)
        tmp = out.with_name(out.name + ".build")
        stamp = _source_stamp(path)
        plan = {"source": stamp, "start": start, "dim": k, "refit": bool(refit)}
        done = _resumable(tmp, plan)
        if done is not None:
            with np.load(tmp / "fit.npz") as z:
                fit = (z["mean"], z["components"]) if "mean" in z else None
        elif start:
            with np.load(out / "fit.npz") as z:
                fit = (z["mean"], z["components"]) if "mean" in z else None
        elif d > k:
            tell(0.0, f"fitting the PCA ({k} of {d} dimensions)")
            fit = fit_pca(read_sample(ds), k)
        kept = fit[1].shape[1] if fit is not None else d
        dtype = np.float16 if fit is not None else np.float32
        if done is None:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
            if fit is not None:
                np.savez(tmp / "fit.npz", mean=fit[0], components=fit[1])
            else:
                np.savez(tmp / "fit.npz")
        meta = _write(project, path, h, ids, start, fit, kept, dtype, out, tmp, tell,
                      plan, done)
    meta.update(format=FORMAT, features=name, dim_in=int(d), dim=int(kept),
                dtype=np.dtype(dtype).name, pca=fit is not None, last_id=last_id,
                source=stamp, seconds=round(time.perf_counter() - t0, 2))
    (tmp / "meta.json").write_text(json.dumps(meta, indent=2), encoding="utf-8")
    (tmp / "build.json").unlink()
    _swap(tmp, out)
    log.info("working matrix of %s: %d objects x %d (%s) in %.1f s", name, meta["n"], kept,
             meta["dtype"], meta["seconds"])
    return meta


def _resumable(tmp: Path, plan: dict) -> int | None:
    """Return the feature row where a stopped build of the same plan got to, else None.

    A build that another live process is running is refused (FeatureError)."""
    try:
        state = json.loads((tmp / "build.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    pid = int(state.get("pid", 0))
    if pid and pid != os.getpid() and state.get("host") == os.uname().nodename:
        try:
            os.kill(pid, 0)
            alive = True
        except ProcessLookupError:
            alive = False
        except PermissionError:  # someone else's process
            alive = True
        if alive:
            raise FeatureError(f"{tmp}: process {pid} is making this working matrix; wait for it")
    if state.get("plan") != plan or not (tmp / "matrix.npy").is_file():
        return None
    return int(state.get("done", 0))


def _progress(tmp: Path, plan: dict, done: int) -> None:
    state = {"pid": os.getpid(), "host": os.uname().nodename, "plan": plan, "done": int(done)}
    part = tmp / "build.json.part"
    part.write_text(json.dumps(state), encoding="utf-8")
    part.replace(tmp / "build.json")


def _write(project, path, h, ids, start, fit, kept, dtype, out, tmp, tell, plan,
           done=None) -> dict:
    """Write the matrix, from feature row `done` on when resuming a stopped build; `ids` are
    those of the feature rows from `start` on."""
    ds = h["features"]
    n = ds.shape[0]
    # the new rows' Object.ids; with the old ones, all rows sorted by Object.id
    new_pks = _pks_of(project, ids)
    src = np.arange(start, n, dtype=np.int64)
    keep = new_pks >= 0  # feature rows of objects no longer in the project are left out
    new_pks, src = new_pks[keep], src[keep]
    if start:
        old_pks = np.load(out / "pks.npy")
        old_src = np.load(out / "src.npy")
        pks, srcs = np.concatenate([old_pks, new_pks]), np.concatenate([old_src, src])
    else:
        pks, srcs = new_pks, src
    order = np.argsort(pks, kind="stable")
    pks, srcs = pks[order], srcs[order]
    if len(pks) > 1 and not (pks[1:] > pks[:-1]).all():
        dup = pks[1:][pks[1:] == pks[:-1]][0]
        raise FeatureError(f"{path}: object #{dup} has two rows of features")
    dest = np.empty(n, np.int64)  # feature-file row -> matrix row
    dest[:] = -1
    dest[srcs] = np.arange(len(srcs))
    if done is None:
        # the header only: rows go in with positioned writes (no mapped pages to count)
        np.lib.format.open_memmap(tmp / "matrix.npy", mode="w+", dtype=dtype,
                                  shape=(len(pks), kept))
    offset = _data_offset(tmp / "matrix.npy")
    row_bytes = kept * np.dtype(dtype).itemsize
    fd = os.open(tmp / "matrix.npy", os.O_WRONLY)
    try:
        if start and done is None:  # the rows made before, copied over in their new places
            old = np.load(out / "matrix.npy", mmap_mode="r")
            old_dest = dest[np.load(out / "src.npy")]
            for a in range(0, len(old), CHUNK):
                _put(fd, offset, row_bytes, old_dest[a:a + CHUNK], np.asarray(old[a:a + CHUNK]))
            del old
        first = start if done is None else done
        _progress(tmp, plan, first)
        for a in range(first, n, CHUNK):
            b = min(a + CHUNK, n)
            rows = dest[a:b]
            ok = rows >= 0
            if ok.any():
                F = ds[a:b][ok]
                Z = F if fit is None else (F - fit[0]) @ fit[1]
                _put(fd, offset, row_bytes, rows[ok], Z.astype(dtype))
            _progress(tmp, plan, b)
            tell((b - start) / max(n - start, 1), f"projected {b:,} of {n:,} objects")
    finally:
        os.close(fd)
    np.save(tmp / "pks.npy", pks)
    np.save(tmp / "src.npy", srcs)
    return {"n": int(len(pks))}


def _data_offset(path: Path) -> int:
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            np.lib.format.read_array_header_1_0(f)
        else:
            np.lib.format.read_array_header_2_0(f)
        return f.tell()


def _put(fd, offset, row_bytes, rows, Z) -> None:
    """Write rows Z at matrix rows `rows`, one write per run of consecutive rows."""
    order = np.argsort(rows, kind="stable")
    rows, Z = rows[order], np.ascontiguousarray(Z[order])
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(rows)]):
        os.pwrite(fd, Z[lo:hi].tobytes(), offset + int(rows[lo]) * row_bytes)


def _swap(tmp: Path, out: Path) -> None:
    """Put the new folder in place of the old one (readers holding the old files keep them)."""
    old = out.with_name(out.name + f".old-{os.getpid()}")
    try:
        out.rename(old)
    except FileNotFoundError:
        pass
    try:
        tmp.rename(out)
    except OSError:  # another process put its own in place first: as good as ours
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def load_working(project, name: str):
    """Return (pks, matrix memmap, fit or None, meta), building or updating it first if needed."""
    meta = read_meta(project, name)
    if not is_current(project, name, meta):
        (log.info if meta else log.warning)(
            "%s the working matrix of feature set %s", "updating" if meta else
            "making (once: later objects are added to it)", name)
        meta = build_working(project, name)
    d = working_dir(project, name)
    X = np.load(d / "matrix.npy", mmap_mode="r")
    pks = np.load(d / "pks.npy", mmap_mode="r")
    with np.load(d / "fit.npz") as z:
        fit = (z["mean"], z["components"]) if "mean" in z else None
    return pks, X, fit, meta
