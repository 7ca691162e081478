"""Feature sets that keep no full features (`features --store none`): rows go straight into the
working matrix, so disk never holds more full-width rows than the fit sample.

A first run computes a random sample of the objects (`fit_sample` rows, `working.FIT_SAMPLE` by
default; every object when there are fewer) into `<name>.h5.sample` (float16, a resumable run
like any other), standardises and fits the PCA on it, then computes every other object and
projects each batch into `<name>.working.build/` (resumable from `build.json`). When the
matrix is complete, `<name>.h5` is written with the ids and attributes only (`store` "none",
`dim` the full width, the standardisation constants), the matrix is put in place and the sample
dropped. Objects computed later are standardised and projected with the stored constants and fit
and appended the same way. Each row is made as `--store float16` and a working build make it:
rounded to float16, standardised, rounded again, projected.

What needs the full features (the HDF5 export, a refit, a model from another project) is refused
with `h5.not_kept_message`.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import time

import h5py
import numpy as np

from .extract import _attr, _existing, _header, _partial_ids, _run, iter_batches
from .h5 import FeatureError, feature_path, not_kept_message
from .working import (FIT_SAMPLE, FORMAT, WORKING_DIM, _data_offset, _pks_of, _progress, _put,
                      _resumable, _source_stamp, _swap, fit_pca, is_current, read_meta, working_dir)

log = logging.getLogger(__name__)

STUB = "stub.h5"  # the feature file of a build under way, put in place when it is complete
DROP = ("complete", "done", "created")


def sample_path(project, name: str):
    return feature_path(project, name).with_name(f"{name}.h5.sample")


def build_dir(project, name: str):
    out = working_dir(project, name)
    return out.with_name(out.name + ".build")


def extract_not_kept(project, ex, name, ids, paths, prev, opts: dict,
                     fit_sample: int | None = None) -> bool:
    """Compute feature set `name` of the objects `ids` without keeping the full features; return
    whether it is complete. `prev`: (ids, attrs) of the set's complete feature file, or None.
    `opts`: batch_size, device, num_workers, progress, limit, limits (as `extract._run` takes)."""
    where = dict(zip(ids, paths))
    if prev is not None:
        settle(project, name)
    started = _started(project, name, ex)
    if started is not None and all(i in where for i in started[0]):
        run_ids, attrs, start = started
        if not _stream(project, name, ex, run_ids, where, start, attrs, opts):
            return False
        prev = _existing(feature_path(project, name), ex)
    elif prev is None:
        if not _first(project, name, ex, ids, where, opts, fit_sample or FIT_SAMPLE):
            return False
        prev = _existing(feature_path(project, name), ex)
    have = set(prev[0])
    new = [oid for oid in ids if oid not in have]
    if new and not _stream(project, name, ex, list(prev[0]) + new, where, len(prev[0]),
                           prev[1], opts):
        return False
    sample_path(project, name).unlink(missing_ok=True)
    return True


def pending(project, name, ex) -> bool:
    """Return whether a stopped run of `ex` into set `name` keeping no full features is left."""
    sample = sample_path(project, name)
    return (_started(project, name, ex) is not None or _existing(sample, ex) is not None
            or _partial_ids(sample, ex) is not None)


def _started(project, name, ex):
    """Return (ids, attrs, start) of a stopped build of this extractor, else None."""
    tmp = build_dir(project, name)
    if not (tmp / "build.json").is_file() or (tmp / "meta.json").is_file():
        return None
    try:
        with h5py.File(tmp / STUB, "r") as h:
            if any(h.attrs.get(k) != v for k, v in _header(ex).items() if k != "format_version"):
                return None
            attrs, ids = dict(h.attrs), list(h["object_id"].asstr()[:])
        plan = json.loads((tmp / "build.json").read_text(encoding="utf-8"))["plan"]
    except (OSError, KeyError, ValueError):
        return None
    return ids, attrs, int(plan["start"])


def _first(project, name, ex, ids, where, opts, fit_sample: int) -> bool:
    """Compute the fit sample (resumably), then stream every other object."""
    sample = sample_path(project, name)
    if _existing(sample, ex) is None:
        chosen = _partial_ids(sample, ex)
        if chosen is None or not all(i in where for i in chosen):
            chosen = list(ids)
            if len(ids) > fit_sample:
                pick = np.random.default_rng(0).choice(len(ids), fit_sample, replace=False)
                chosen = [ids[i] for i in np.sort(pick)]
        ex.store_dtype = "f2"
        if not _run(ex, sample, chosen, [where[i] for i in chosen], opts["batch_size"],
                    opts["device"], opts["num_workers"], opts["progress"], opts["limit"],
                    limits=opts["limits"]):
            return False
    with h5py.File(sample, "r") as h:
        attrs = dict(h.attrs)
        attrs["dim"] = int(h["features"].shape[1])
    return _stream(project, name, ex, list(ids), where, 0, attrs, opts, sample=sample)


def _stream(project, name, ex, run_ids, where, start, attrs, opts, sample=None) -> bool:
    """Project the rows of `run_ids` from `start` on into a new working matrix (the sample's
    rows from its file, the others computed now); put it in place when complete."""
    from tqdm import tqdm

    out, tmp = working_dir(project, name), build_dir(project, name)
    n, t0 = len(run_ids), time.perf_counter()
    plan = {"store": "none", "n": n, "start": int(start), "last_id": str(run_ids[-1])}
    done = _resumable(tmp, plan) if (tmp / STUB).is_file() else None
    if done is None:
        _setup(project, name, run_ids, start, attrs, plan, sample)
        done = 0
    with np.load(tmp / "fit.npz") as z:
        fit = (z["mean"], z["components"]) if "mean" in z else None
    with h5py.File(tmp / STUB, "r") as h:
        made = {k: _attr(v) for k, v in h.attrs.items()}
    todo = np.load(tmp / "todo.npy")
    dest = np.full(n, -1, np.int64)
    dest[np.load(tmp / "src.npy")] = np.arange(len(np.load(tmp / "pks.npy", mmap_mode="r")))
    kept = fit[1].shape[1] if fit is not None else int(made["dim"])
    dtype = np.float16 if fit is not None else np.float32
    offset, row_bytes = _data_offset(tmp / "matrix.npy"), kept * np.dtype(dtype).itemsize
    progress, limit = opts["progress"], opts["limit"]
    stop = len(todo) if limit is None else min(len(todo), done + limit)
    if done < len(todo):
        ex.setup(opts["device"])
        bar = tqdm(total=len(todo), initial=done, unit="img", desc=name, smoothing=0.1,
                   disable=not progress or callable(progress))
        todo_ids = [run_ids[i] for i in todo]
        fd = os.open(tmp / "matrix.npy", os.O_WRONLY)
        try:
            for rows, F in iter_batches(ex, todo_ids, [where[i] for i in todo_ids], done,
                                        opts["batch_size"], opts["num_workers"], opts["limits"]):
                Y = _rows(ex, F, made, fit, dtype)
                at = dest[todo[rows]]
                ok = at >= 0
                if ok.any():
                    _put(fd, offset, row_bytes, at[ok], Y[ok])
                done = int(rows[-1]) + 1
                _progress(tmp, plan, done)  # after the rows: a stop loses work, never fakes it
                bar.update(len(rows))
                if callable(progress):
                    progress(done / len(todo), f"{done} of {len(todo)} images")
                if done >= stop:
                    break
        finally:
            os.close(fd)
            bar.close()
    if done < len(todo):
        return False
    meta = {"n": int(len(dest[dest >= 0])), "format": FORMAT, "features": name,
            "dim_in": int(made["dim"]), "dim": int(kept), "dtype": np.dtype(dtype).name,
            "pca": fit is not None, "last_id": str(run_ids[-1]), "store": "none",
            "full_kept": False, "source": _source_stamp(tmp / STUB),
            "seconds": round(time.perf_counter() - t0, 2)}
    part = tmp / "meta.json.part"
    part.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    part.replace(tmp / "meta.json")  # from here on the build is complete: settle puts it in place
    for f in ("build.json", "todo.npy"):
        (tmp / f).unlink(missing_ok=True)
    settle(project, name)
    log.info("working matrix of %s (full features not kept): %d objects x %d", name, meta["n"], kept)
    return True


def _rows(ex, F, made, fit, dtype) -> np.ndarray:
    """Return working rows of raw features F, made as the float16 store and a build make them."""
    F = np.asarray(F, np.float16).astype(np.float32)
    Y = np.asarray(ex.refinalize(F, made), np.float16).astype(np.float32)
    return (Y if fit is None else (Y - fit[0]) @ fit[1]).astype(dtype)


def _setup(project, name, run_ids, start, attrs, plan, sample) -> None:
    """Start a build: the new feature file (ids, attributes), the fit, the row order, the rows
    already made (the old matrix's, the sample's) in their places."""
    out, tmp = working_dir(project, name), build_dir(project, name)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    n, d = len(run_ids), int(_attr(attrs["dim"]))
    fit, S, s_ids = None, None, []
    if start:
        with np.load(out / "fit.npz") as z:
            fit = (z["mean"], z["components"]) if "mean" in z else None
    elif sample is not None:
        with h5py.File(sample, "r") as h:
            S = np.asarray(h["features"][:], np.float32)
            s_ids = list(h["object_id"].asstr()[:])
        k = int((project.config.get("working") or {}).get("dim") or WORKING_DIM)
        if d > k:
            fit = fit_pca(S, k)
    if fit is not None:
        np.savez(tmp / "fit.npz", mean=fit[0], components=fit[1])
    else:
        np.savez(tmp / "fit.npz")
    with h5py.File(tmp / STUB, "w") as h:
        h.create_dataset("object_id", data=np.asarray(run_ids, dtype=object),
                         dtype=h5py.string_dtype())
        for k, v in attrs.items():
            if k not in DROP:
                h.attrs[k] = v
        h.attrs.update(store="none", dim=d, complete=True, created=time.time())
    new_pks = _pks_of(project, run_ids[start:])
    src = np.arange(start, n, dtype=np.int64)
    keep = new_pks >= 0  # objects no longer in the project are left out
    pks, srcs = new_pks[keep], src[keep]
    if start:
        pks = np.concatenate([np.load(out / "pks.npy"), pks])
        srcs = np.concatenate([np.load(out / "src.npy"), srcs])
    order = np.argsort(pks, kind="stable")
    pks, srcs = pks[order], srcs[order]
    if len(pks) > 1 and not (pks[1:] > pks[:-1]).all():
        raise FeatureError(f"feature set {name!r}: object #{pks[1:][pks[1:] == pks[:-1]][0]} "
                           "has two rows of features")
    np.save(tmp / "pks.npy", pks)
    np.save(tmp / "src.npy", srcs)
    dest = np.full(n, -1, np.int64)
    dest[srcs] = np.arange(len(srcs))
    kept = fit[1].shape[1] if fit is not None else d
    dtype = np.float16 if fit is not None else np.float32
    np.lib.format.open_memmap(tmp / "matrix.npy", mode="w+", dtype=dtype, shape=(len(pks), kept))
    offset, row_bytes = _data_offset(tmp / "matrix.npy"), kept * np.dtype(dtype).itemsize
    in_sample = {oid: i for i, oid in enumerate(s_ids)}
    s_rows = np.array([i for i in range(n) if run_ids[i] in in_sample], np.int64)
    fd = os.open(tmp / "matrix.npy", os.O_WRONLY)
    try:
        if start:  # the rows made before, copied over in their new places
            old = np.load(out / "matrix.npy", mmap_mode="r")
            old_dest = dest[np.load(out / "src.npy")]
            for a in range(0, len(old), 32_768):
                _put(fd, offset, row_bytes, old_dest[a:a + 32_768], np.asarray(old[a:a + 32_768]))
            del old
        if len(s_rows):  # the sample's rows, already standardised and float16
            Z = S[[in_sample[run_ids[i]] for i in s_rows]]
            Z = (Z if fit is None else (Z - fit[0]) @ fit[1]).astype(dtype)
            ok = dest[s_rows] >= 0
            _put(fd, offset, row_bytes, dest[s_rows][ok], Z[ok])
    finally:
        os.close(fd)
    np.save(tmp / "todo.npy", np.setdiff1d(np.arange(start, n, dtype=np.int64), s_rows))
    _progress(tmp, plan, 0)


def settle(project, name: str, refit: bool = False) -> dict:
    """Return the working meta of a set that keeps no full features, putting a complete build in
    place first; refuse a refit (it needs the full features)."""
    if refit:
        raise FeatureError(not_kept_message(name, "a refit of the working matrix "
                                                  "(--refit, --working-dim)"))
    final, out, tmp = feature_path(project, name), working_dir(project, name), build_dir(project, name)
    if (tmp / "meta.json").is_file():
        lock = os.open(final.parent, os.O_RDONLY)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one process puts a build in place, others wait
            if (tmp / "meta.json").is_file():
                if (tmp / STUB).is_file():
                    os.replace(tmp / STUB, final)  # keeps size and mtime: the meta's stamp
                _swap(tmp, out)
        finally:
            os.close(lock)
    meta = read_meta(project, name)
    if is_current(project, name, meta):
        return meta
    raise FeatureError(f"the working matrix of feature set {name!r} does not match its feature "
                       "file, and the set keeps no full features to make it from: run "
                       "`morphocluster features` again with the same options to finish a stopped "
                       "run, or compute the set again under another --name")
