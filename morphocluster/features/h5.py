"""Feature sets on disk: one HDF5 file per named set under the project's features/ folder.

Layout (compatible with the original MorphoCluster `features.h5`): a float32 `features`
dataset (n, d), chunked, and an `object_id` string dataset in the same order. Attributes name
the extractor, its parameters and preprocessing, the format version and whether it is complete.
A set made with `store="none"` keeps no `features` dataset: its file holds the ids and the
attributes (`store` "none", `dim` the width), and only its working matrix holds the rows.
"""

from __future__ import annotations

import json
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np

FORMAT_VERSION = 1


class FeatureError(RuntimeError):
    """A feature file is missing, incomplete or does not match the project."""


def feature_path(project, name: str) -> Path:
    return project.features_dir / f"{name}.h5"


def full_kept(h) -> bool:
    """Return whether an open feature file keeps its full features (not `--store none`)."""
    return "features" in h


def stored_shape(h) -> tuple[int, int]:
    """Return (objects, features per object) of an open feature file, kept or not."""
    if "features" in h:
        n, d = h["features"].shape
        return int(n), int(d)
    return len(h["object_id"]), int(h.attrs.get("dim", 0))


def storage(h) -> str:
    """Return how an open feature file keeps the full features: float32, float16 or none."""
    return h["features"].dtype.name if "features" in h else "none"


def not_kept_message(name: str, what: str) -> str:
    """The one line that says a set's full features are not kept and what to do."""
    return (f"feature set {name!r} does not keep its full features (made with --store none), "
            f"and {what} needs them: compute them again with `morphocluster features --store "
            "float16` (or float32), under another --name to keep this set")


@contextmanager
def replacing(path: Path):
    """Yield a temporary file name beside `path`, renamed over it when the block succeeds and
    removed whatever happens, so a failure leaves `path` as it was and no debris."""
    tmp = path.with_suffix(".h5.tmp")
    try:
        yield tmp
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_features(path: Path, object_ids, features: np.ndarray, attrs: dict | None = None) -> None:
    """Write a complete feature file atomically (temporary file, then rename)."""
    features = np.asarray(features, dtype=np.float32)
    if features.ndim != 2 or len(object_ids) != features.shape[0]:
        raise FeatureError(f"{path}: {len(object_ids)} ids for features of shape {features.shape}")
    if features.shape[1] == 0:
        raise FeatureError(f"{path}: no feature columns (0 features per object)")
    with replacing(path) as tmp, h5py.File(tmp, "w") as h:
        h.create_dataset("features", data=features,
                         chunks=(min(4096, max(1, len(features))), features.shape[1]))
        h.create_dataset("object_id", data=np.asarray(object_ids, dtype=object), dtype=h5py.string_dtype())
        for k, v in (attrs or {}).items():
            h.attrs[k] = v if isinstance(v, (str, int, float)) else json.dumps(v)
        h.attrs["format_version"] = FORMAT_VERSION
        h.attrs["complete"] = True


class FeatureWriter:
    """Write a feature file a block of rows at a time (rows in the order of `object_ids`).

    `dtype` float16 halves the file (the working matrix is float16 anyway). The file is
    written under a temporary name and renamed into place by `close()`, so a stopped write
    leaves no half file under the real name.
    """

    def __init__(self, path: Path, object_ids, dim: int, attrs: dict | None = None,
                 dtype: str = "float32"):
        self.path, self.n, self.dim = Path(path), len(object_ids), int(dim)
        if dtype not in ("float32", "float16"):
            raise FeatureError(f"{path}: features are stored as float32 or float16, not {dtype}")
        if self.dim <= 0 or self.n == 0:
            raise FeatureError(f"{path}: {self.n} objects x {self.dim} features: nothing to write")
        self.tmp = self.path.with_suffix(".h5.tmp")
        self.h = h5py.File(self.tmp, "w")
        self.ds = self.h.create_dataset("features", shape=(self.n, self.dim), dtype=dtype,
                                        chunks=(min(4096, self.n), self.dim))
        self.h.create_dataset("object_id", data=np.asarray(object_ids, dtype=object),
                              dtype=h5py.string_dtype())
        for k, v in (attrs or {}).items():
            self.h.attrs[k] = v if isinstance(v, (str, int, float)) else json.dumps(v)
        self.h.attrs["format_version"] = FORMAT_VERSION
        self.h.attrs["complete"] = False
        self.done = 0

    def write(self, rows: np.ndarray) -> None:
        """Append the next rows."""
        rows = np.asarray(rows)
        if rows.ndim != 2 or rows.shape[1] != self.dim or self.done + len(rows) > self.n:
            raise FeatureError(f"{self.path}: rows of shape {rows.shape} after {self.done} of "
                               f"{self.n} x {self.dim}")
        self.ds[self.done:self.done + len(rows)] = rows
        self.done += len(rows)

    def close(self) -> None:
        """Mark the file complete and put it in place (an error if rows are missing)."""
        try:
            if self.done != self.n:
                raise FeatureError(f"{self.path}: {self.done} of {self.n} rows written")
            self.h.attrs["complete"] = True
            self.h.close()
            self.tmp.replace(self.path)
        finally:
            if self.h.id.valid:
                self.h.close()
            self.tmp.unlink(missing_ok=True)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is None:
            self.close()
        else:
            self.h.close()
            self.tmp.unlink(missing_ok=True)


def read_features(path: Path) -> tuple[np.ndarray, np.ndarray, dict]:
    """Return (object_ids, features, attrs) of a complete feature file."""
    if not path.is_file():
        raise FeatureError(f"{path}: no such feature file")
    with h5py.File(path, "r") as h:
        attrs = dict(h.attrs)
        if not attrs.get("complete", True):
            raise FeatureError(f"{path}: feature extraction did not finish; run it again to resume")
        if not full_kept(h):
            raise FeatureError(not_kept_message(path.stem, "reading the whole set"))
        ids = h["object_id"].asstr()[:]
        feats = h["features"][:]
    return np.asarray(ids, dtype=object), feats.astype(np.float32, copy=False), attrs


def set_active(project, name: str) -> None:
    """Make a feature set the one that index, cluster and grow use."""
    if not feature_path(project, name).is_file():
        raise FeatureError(f"no feature set named {name!r} in {project.root}")
    project.config["active_features"] = name
    project.save_config()


def active_name(project) -> str:
    name = project.config.get("active_features")
    if not name:
        raise FeatureError(f"{project.root}: no features yet; run `morphocluster features` first")
    return name


def load_features(project, name: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return (object_ids, features) of the named or active feature set."""
    ids, feats, _ = read_features(feature_path(project, name or active_name(project)))
    return ids, feats


def list_feature_sets(project) -> list[dict]:
    """Return name, extractor, shape, storage (float32, float16, none) and whether active, of
    every complete feature set."""
    active = project.config.get("active_features")
    out = []
    for p in sorted(project.features_dir.glob("*.h5")):
        with h5py.File(p, "r") as h:
            n, d = stored_shape(h) if "object_id" in h else (0, 0)
            out.append({"name": p.stem, "extractor": str(h.attrs.get("extractor", "?")),
                        "n": n, "dim": d, "store": storage(h), "active": p.stem == active})
    return out
