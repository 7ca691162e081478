"""The active feature set as the interactive parts see it: the working matrix (see `working`),
rows in ascending Object.id, memory mapped; the full features stay in the HDF5 file (unless the
set keeps none: `full_kept` False, see `not_kept`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import h5py
import numpy as np

from .h5 import FeatureError, active_name, feature_path, not_kept_message
from .working import load_working, working_dir

_CACHE: dict = {}


class Rows:
    """Rows of a memory-mapped matrix, read as float32 (only the rows asked for are read)."""

    def __init__(self, mm):
        self.mm = mm
        self.shape = mm.shape
        self.ndim = 2
        self.dtype = np.dtype(np.float32)

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, idx) -> np.ndarray:
        return np.asarray(self.mm[idx], dtype=np.float32)

    def __array__(self, dtype=None, copy=None):
        return np.asarray(self.mm, dtype=dtype or np.float32)

    def chunks(self, size: int = 65_536):
        """Yield (start, float32 rows) blocks of the whole matrix."""
        for a in range(0, self.shape[0], size):
            yield a, self[a:a + size]


@dataclass
class FeatureMatrix:
    pks: np.ndarray          # int64 Object.id per row, ascending
    X: Rows                  # working rows (n, k), float32 when read
    name: str
    fit: tuple | None        # (mean, components) from the full features to X; None: X is them
    meta: dict
    path: object = None      # the feature file
    src: np.ndarray = field(default=None, repr=False)  # row of each in the feature file

    def rows_of(self, pks) -> np.ndarray:
        """Return the row positions of the given Object.ids (-1 where absent)."""
        pks = np.asarray(pks, dtype=np.int64)
        if len(self.pks) == 0:
            return np.full(len(pks), -1, np.int64)
        pos = np.clip(np.searchsorted(self.pks, pks), 0, len(self.pks) - 1)
        return np.where(self.pks[pos] == pks, pos, -1)

    @property
    def dim_in(self) -> int:
        """Width of the full features."""
        return int(self.meta["dim_in"])

    @property
    def full_kept(self) -> bool:
        """Whether the feature file keeps the full features (not `--store none`)."""
        return bool(self.meta.get("full_kept", True))

    def full_rows(self, rows, what: str = "this") -> np.ndarray:
        """Return the full (stored) features of the given rows, read from the feature file;
        FeatureError (saying `what` needs them) when the set keeps none."""
        if not self.full_kept:
            raise FeatureError(not_kept_message(self.name, what))
        rows = np.asarray(rows, dtype=np.int64)
        src = self.src[rows]
        order = np.argsort(src)
        out = np.empty((len(rows), self.dim_in), np.float32)
        with h5py.File(self.path, "r") as h:
            ds = h["features"]
            s = src[order]
            # contiguous runs read as slices: h5py's point selection is slow on many rows
            breaks = np.flatnonzero(np.diff(s) != 1) + 1
            for lo, hi in zip(np.r_[0, breaks], np.r_[breaks, len(s)]):
                if hi > lo:
                    out[order[lo:hi]] = ds[int(s[lo]):int(s[hi - 1]) + 1]
        return out

    def project(self, F) -> np.ndarray:
        """Map full features to working rows."""
        F = np.asarray(F, np.float32)
        return F if self.fit is None else ((F - self.fit[0]) @ self.fit[1]).astype(np.float32)

    @property
    def object_ids(self) -> np.ndarray:
        """The user object id of each row (read from the feature file)."""
        with h5py.File(self.path, "r") as h:
            ids = h["object_id"].asstr()[:]
        return np.asarray(ids, dtype=object)[self.src]


def load_matrix(project, name: str | None = None) -> FeatureMatrix:
    """Return the named or active feature set's working matrix (cached per file and process)."""
    name = name or active_name(project)
    path = feature_path(project, name)
    if not path.is_file():
        raise FeatureError(f"no feature set named {name!r} in {project.root}")
    st = path.stat()
    key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    pks, mm, fit, meta = load_working(project, name)
    src = np.load(working_dir(project, name) / "src.npy", mmap_mode="r")
    fm = FeatureMatrix(pks, Rows(mm), name, fit, meta, path, src)
    _CACHE.clear()
    _CACHE[key] = fm
    return fm
