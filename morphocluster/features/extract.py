"""Run an extractor over every object of a project into a named, resumable HDF5 feature set.

Rows go to `<name>.h5.partial` (attribute complete=False, `done` = rows written) and the file
is renamed to `<name>.h5` only once complete, so a half-written file is never taken for done.
"""

from __future__ import annotations

import json
import logging
import os
import time

import h5py
import numpy as np
from sqlalchemy import select

from ..images import ImageLimits, check_image_file
from ..store import Object
from .h5 import FORMAT_VERSION, FeatureError, feature_path, replacing, set_active, write_features
from .registry import DEFAULT, default_name, get_extractor

log = logging.getLogger(__name__)


class _LoadError:
    """A failure to read one image, returned as data: an exception raised in a DataLoader
    worker reaches the main process wrapped in torch's traceback text."""

    def __init__(self, message: str):
        self.message = message


class _Images:
    """Dataset of (row, loaded image or _LoadError) for DataLoader workers; an image beyond the
    project's limits is refused from its header, before it is decoded."""

    def __init__(self, extractor, paths, ids, start, limits: ImageLimits | None = None):
        self.extractor, self.paths, self.ids, self.start = extractor, paths, ids, start
        self.limits = limits or ImageLimits()

    def __len__(self):
        return len(self.paths) - self.start

    def __getitem__(self, i):
        i += self.start
        try:
            check_image_file(self.paths[i], self.limits, os.path.basename(self.paths[i]))
            return i, self.extractor.load(self.paths[i])
        except Exception as exc:
            return i, _LoadError(f"object {self.ids[i]!r} ({self.paths[i]}): {exc}")


def _collate(items):
    for _, x in items:
        if isinstance(x, _LoadError):
            return None, x
    return np.array([i for i, _ in items]), np.stack([x for _, x in items])


def project_objects(project) -> tuple[list[str], list[str]]:
    """Return (object_ids, absolute image paths) of every object, in Object.id order."""
    with project.session() as s:
        rows = s.execute(select(Object.object_id, Object.path).order_by(Object.id)).all()
    return [r[0] for r in rows], [str(project.image_path(r[1])) for r in rows]


def die_with_parent(_worker_id=None) -> None:
    """DataLoader `worker_init_fn`: have the kernel end a worker when the process that started
    it dies (Linux), so a killed run leaves no worker holding the feature file and database."""
    import ctypes
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def default_workers() -> int:
    return max(0, min(4, (os.cpu_count() or 1) - 1))


STORE_TYPES = {"float32": "f4", "float16": "f2"}
STORES = (*STORE_TYPES, "none")


def extract_features(project, extractor: str = DEFAULT, name: str | None = None, batch_size: int = 64,
                     device: str = "auto", num_workers: int | None = None, size: int | None = None,
                     invert: bool = False, activate: bool = True, progress: bool = True,
                     limit: int | None = None, rotations: int = 1, store: str | None = None,
                     working: bool = True, fit_sample: int | None = None) -> str:
    """Compute the features of every object into the feature set `name`; return the name.

    If `name` already holds the features of some objects, made by the same extractor with the
    same settings, only the objects added since are computed and appended (standardised with
    the stored constants, so the rows already there do not change). `extractor` is a registry
    name (see registry.NAMES) or `external:FILE`. An interrupted run resumes from its partial
    file when called again with the same arguments. `limit` stops
    after that many new rows (leaving the partial file), which tests use to simulate a stop.
    `rotations` (1, 2, 4, 8): average CNN features over turned copies (that many times slower).
    `store` float32 (None: the default for a new set), float16 halves the file, "none" keeps no
    full features, only the working matrix (see `not_kept`; `fit_sample` rows are computed first
    to fit it, and `limit` applies to that step and to the rest each). A new set only: rows
    appended, or a stopped run resumed with `store` None, are kept as the set keeps its rows.
    `working`: bring the set's working matrix up to date at the end (see `working`).
    """
    if store is not None and store not in STORES:
        raise FeatureError(f"features are stored as {', '.join(STORES[:-1])} or {STORES[-1]}, "
                           f"not {store!r}")
    name = name or default_name(extractor)
    ids, paths = project_objects(project)
    if not ids:
        raise FeatureError(f"{project.root}: no objects; import images first")
    project.features_dir.mkdir(parents=True, exist_ok=True)
    if extractor.startswith("external:"):
        from .external import match_external

        if store == "none":
            raise FeatureError("external features are copied as they are: --store none applies "
                               "to features computed here")
        src = extractor.split(":", 1)[1]
        X = match_external(src, ids)
        write_features(feature_path(project, name), ids, X,
                       {"extractor": "external", "extractor_params": {"file": os.path.abspath(src)},
                        "preprocessing": "none (computed elsewhere)", "created": time.time()})
    else:
        ex = get_extractor(extractor, size=size, invert=invert, rotations=rotations)
        ex.store_dtype = STORE_TYPES.get(store or "float32", "f2")
        limits = project.image_limits()
        final = feature_path(project, name)
        prev = _existing(final, ex)
        opts = {"batch_size": batch_size, "device": device, "num_workers": num_workers,
                "progress": progress, "limit": limit, "limits": limits}
        from .not_kept import extract_not_kept, pending

        if prev is not None:  # an existing set: its rows are kept as they are
            none = prev[1].get("store") == "none"
        else:
            none = store == "none" or (store is None and pending(project, name, ex))
        if none:
            complete = extract_not_kept(project, ex, name, ids, paths, prev, opts, fit_sample)
        else:
            complete = _extract_kept(ex, final, ids, paths, prev, opts)
        if not complete:
            return name
    if working:
        from .working import build_working

        build_working(project, name)
    if activate:
        set_active(project, name)
    return name


def _extract_kept(ex, final, ids, paths, prev, opts) -> bool:
    """Compute the set into `final`, or append the objects it lacks; return whether complete."""
    run = [opts[k] for k in ("batch_size", "device", "num_workers", "progress", "limit")]
    started = _partial_ids(final, ex) if prev is None else None
    if started and len(started) < len(ids) and ids[:len(started)] == started:
        # objects were imported while the run was stopped: finish it for the objects it
        # started with (keeping the rows done), then append the others as usual
        if not _run(ex, final, started, paths[:len(started)], *run, limits=opts["limits"]):
            return False
        prev = _existing(final, ex)
    if prev is None:
        return _run(ex, final, ids, paths, *run, limits=opts["limits"])
    have = set(prev[0])
    new = [i for i, oid in enumerate(ids) if oid not in have]
    add = final.with_name(final.stem + ".additions.h5")
    if new and not _run(ex, add, [ids[i] for i in new], [paths[i] for i in new], *run,
                        finalize=False, limits=opts["limits"]):
        return False
    if new:
        _append(final, add, ex, prev)
    return True


def _header(ex) -> dict:
    return {"extractor": ex.spec, "extractor_params": json.dumps(ex.params(), sort_keys=True),
            "preprocessing": json.dumps(ex.preprocess.attrs() if ex.preprocess else {}, sort_keys=True),
            "format_version": FORMAT_VERSION}


def _same_header(h, ex) -> bool:
    return all(h.attrs.get(k) == v for k, v in _header(ex).items())


def _partial_ids(final, ex) -> list[str] | None:
    """Return the object ids of an unfinished run of `ex` into `final`, or None if there is none."""
    path = final.with_name(final.name + ".partial")
    if not path.exists():
        return None
    try:
        with h5py.File(path, "r") as h:
            if _same_header(h, ex) and not h.attrs["complete"]:
                return list(h["object_id"].asstr()[:])
    except (OSError, KeyError):
        pass
    return None


def _open_partial(path, ex, ids) -> tuple[h5py.File, int]:
    """Open the partial file to resume, or start a fresh one when it does not match."""
    if path.exists():
        try:
            h = h5py.File(path, "r+")
            same = _same_header(h, ex) and \
                len(h["object_id"]) == len(ids) and list(h["object_id"].asstr()[:]) == ids
            if same:
                return h, int(h.attrs["done"])
            h.close()
        except OSError as exc:
            if "lock" in str(exc).lower():
                raise FeatureError(f"{path}: another process has this half-done feature set open "
                                   "(a features run still going, or what is left of a stopped one); "
                                   "wait for it or end it, then run again") from exc
            log.warning("%s: unreadable (%s); starting the feature set again", path, exc)
        except KeyError:
            log.warning("%s: not a feature file of this run; starting the feature set again", path)
        path.unlink()
    h = h5py.File(path, "w")
    h.create_dataset("object_id", data=np.asarray(ids, dtype=object), dtype=h5py.string_dtype())
    h.attrs.update(_header(ex))
    h.attrs["complete"] = False
    h.attrs["done"] = 0
    return h, 0


def _existing(path, ex):
    """Return (ids, attrs) of a complete feature file that `ex` made, else None (the features
    themselves are not read: on a million objects that would be gigabytes)."""
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as h:
            attrs = dict(h.attrs)
            ids = list(h["object_id"].asstr()[:])
    except (OSError, KeyError):
        return None
    if not attrs.get("complete", False):
        return None
    head = _header(ex)
    if any(attrs.get(k) != v for k, v in head.items() if k != "format_version"):
        return None
    return ids, attrs


COPY_ROWS = 65_536  # rows copied at a time when appending: memory stays flat


def _append(final, add, ex, prev) -> None:
    """Append the rows computed for new objects to the complete file (into a new file renamed
    over it, copied in chunks), then drop them."""
    old_ids, attrs = prev
    with replacing(final) as tmp:  # a failure leaves the complete file as it was
        _write_appended(final, add, ex, old_ids, attrs, tmp)
    add.unlink()


def _write_appended(final, add, ex, old_ids, attrs, tmp) -> None:
    with h5py.File(add, "r") as a, h5py.File(final, "r") as old, h5py.File(tmp, "w") as out:
        new_ids = list(a["object_id"].asstr()[:])
        Y = ex.refinalize(a["features"][:], {k: _attr(v) for k, v in attrs.items()})
        n_old, d = old["features"].shape
        if Y.shape[1] != d:
            raise FeatureError(f"{add}: {Y.shape[1]} dimensions, but {final} has {d}")
        n = n_old + len(new_ids)
        F = out.create_dataset("features", shape=(n, d), dtype=old["features"].dtype,
                               chunks=(min(4096, n), d))
        for i in range(0, n_old, COPY_ROWS):
            j = min(i + COPY_ROWS, n_old)
            F[i:j] = old["features"][i:j]
        F[n_old:] = Y
        out.create_dataset("object_id", data=np.asarray(list(old_ids) + new_ids, dtype=object),
                           dtype=h5py.string_dtype())
        for k, v in attrs.items():
            out.attrs[k] = v
        out.attrs["created"] = time.time()


def _attr(v):
    if isinstance(v, str):
        try:
            return json.loads(v)
        except ValueError:
            return v
    return v


def iter_batches(ex, ids, paths, done, batch_size, num_workers, limits=None):
    """Yield (rows, features) of the images from row `done` on, a batch at a time (`ex` set up)."""
    import torch
    from torch.utils.data import DataLoader

    workers = default_workers() if num_workers is None else num_workers
    loader = DataLoader(_Images(ex, paths, ids, done, limits), batch_size=batch_size, num_workers=workers,
                        collate_fn=_collate, persistent_workers=False, worker_init_fn=die_with_parent,
                        prefetch_factor=4 if workers else None)
    for rows, batch in loader:
        if isinstance(batch, _LoadError):
            raise FeatureError(batch.message)
        with torch.inference_mode():
            F = ex.transform(batch)
        yield rows, F


def _run(ex, final, ids, paths, batch_size, device, num_workers, progress, limit,
         finalize: bool = True, limits: ImageLimits | None = None) -> bool:
    from tqdm import tqdm

    name = final.stem
    partial = final.with_name(final.name + ".partial")
    ex.setup(device)  # first: a model that cannot be loaded leaves no empty partial file
    h, done = _open_partial(partial, ex, ids)
    n = len(ids)
    try:
        bar = tqdm(total=n, initial=done, unit="img", desc=name, smoothing=0.1,
                   disable=not progress or callable(progress))
        stop = n if limit is None else min(n, done + limit)
        for rows, F in iter_batches(ex, ids, paths, done, batch_size, num_workers, limits):
            if "features" not in h:
                h.create_dataset("features", shape=(n, F.shape[1]),
                                 dtype=getattr(ex, "store_dtype", "f4"),
                                 chunks=(min(1024, n), F.shape[1]))
            h["features"][rows[0]:rows[-1] + 1] = F
            done = int(rows[-1]) + 1
            h.attrs["done"] = done  # after the rows: a crash can only lose work, not fake it
            h.flush()
            bar.update(len(rows))
            if callable(progress):  # a callable(fraction, message), e.g. a web job's progress
                progress(done / n, f"{done} of {n} images")
            if done >= stop:
                break
        bar.close()
        if done < n:
            return False
        rewritten = _finalize(h, ex, partial) if finalize and not h.attrs["complete"] else None
    finally:
        h.close()
    if rewritten is not None:
        rewritten.replace(partial)
    partial.replace(final)
    return True


def _finalize(h, ex, partial):
    """Mark the partial file complete; if the extractor post-processes its rows (e.g. the
    morphometric block's standardisation), write them into a new file and return its path
    (safe to repeat). A new file, because HDF5 never gives back the space of a deleted
    dataset: rewriting in place would leave the file twice its size."""
    ds = h["features"]
    fit = getattr(ex, "finalize_attrs", None)
    if fit is not None:  # statistics and rewrite in row chunks: flat memory on large sets
        extra = fit(ds)
        rows = lambda i, j: ex.refinalize(ds[i:j], extra)  # noqa: E731
    else:
        X, extra = ex.finalize(np.asarray(ds[:], np.float32))  # float16 rows overflow a sum
        rows = lambda i, j: X[i:j]  # noqa: E731
    if not extra:
        h.attrs["created"] = time.time()
        h.attrs["complete"] = True
        return None
    path = partial.with_name(partial.name + ".final")
    with h5py.File(path, "w") as out:
        for k, v in h.attrs.items():
            out.attrs[k] = v
        out.create_dataset("object_id", data=h["object_id"].asstr()[:].astype(object),
                           dtype=h5py.string_dtype())
        F = out.create_dataset("features", shape=ds.shape, dtype=ds.dtype, chunks=ds.chunks)
        for i in range(0, ds.shape[0], COPY_ROWS):
            j = min(i + COPY_ROWS, ds.shape[0])
            F[i:j] = np.asarray(rows(i, j), np.float32)
        for k, v in extra.items():
            out.attrs[k] = json.dumps(v)
        out.attrs["created"] = time.time()
        out.attrs["complete"] = True
    return path
