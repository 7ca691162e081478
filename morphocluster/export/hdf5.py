"""HDF5 export: the active features of the exported objects in the original MorphoCluster layout.

Datasets: `object_id` (strings), `features` (float32, n x d), and per row `label` (display
name, '' if unlabelled), `label_path` and `status`. Rows are copied chunk by chunk, so the
whole feature matrix is never in memory, and neither is a map of the file's ids: a feature
file written by `features` is in Object.id order, so the objects and the file's rows are
joined by merging the two sequences (`_Merge`); a file in another order (external features)
is joined through its ids in a SQLite file beside the export (`_Lookup`). A set that keeps no
full features (`features --store none`) is refused: there is nothing to copy.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import numpy as np

from ..labels import object_labels
from .common import ExportError, ExportReport

CHUNK = 8192
IN = 900  # ids per IN query
COLS = ("object_id", "label", "label_path", "status")


class _NotInOrder(Exception):
    """The feature file's rows are not the objects in Object.id order."""


class _Merge:
    """Rows of a file whose ids follow Object.id order (objects may lack a row): fed every
    object in that order, it matches each to the file's next row or to none."""

    which = "all"  # the merge must see every object, to step over those the export leaves out

    def __init__(self, ids):
        self.ids, self.n, self.j, self.lo, self.block = ids.asstr(), len(ids), 0, 0, []

    def rows(self, oids: list[str]) -> list:
        out = []
        for oid in oids:
            if self.j < self.n:
                if self.j - self.lo >= len(self.block):
                    self.lo, self.block = self.j, self.ids[self.j:self.j + CHUNK]
                if self.block[self.j - self.lo] == oid:
                    out.append(self.j)
                    self.j += 1
                    continue
            out.append(None)
        return out

    def finish(self) -> None:
        if self.j < self.n:  # a row no object took: another order, or ids no longer in the project
            raise _NotInOrder


class _Lookup:
    """Rows of a file in any order: its ids in a SQLite file on disk, looked up a chunk at a time."""

    which = None  # the export's own choice of objects

    def __init__(self, ids, path: Path):
        self.path = path
        self.db = sqlite3.connect(path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=OFF")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("CREATE TABLE r (object_id TEXT PRIMARY KEY, row INT) WITHOUT ROWID")
        self.db.execute("BEGIN")
        text = ids.asstr()
        for a in range(0, len(ids), CHUNK):
            self.db.executemany("INSERT OR REPLACE INTO r VALUES (?, ?)",
                                zip(text[a:a + CHUNK].tolist(), range(a, a + CHUNK)))

    def rows(self, oids: list[str]) -> list:
        found: dict = {}
        for a in range(0, len(oids), IN):
            part = oids[a:a + IN]
            found.update(self.db.execute(
                f"SELECT object_id, row FROM r WHERE object_id IN ({','.join('?' * len(part))})", part))
        return [found.get(o) for o in oids]

    def finish(self) -> None:
        pass

    def close(self) -> None:
        self.db.close()
        self.path.unlink(missing_ok=True)


def export_hdf5(project, out, labels: str = "validated", with_images: bool = False,
                feature_set: str | None = None, status: str = "any") -> ExportReport:
    """Write the active (or named) feature set of the exported objects to `out`."""
    import h5py

    from ..features.h5 import FeatureError, active_name, feature_path, full_kept, not_kept_message

    out = Path(out)
    if out.is_dir() or not out.parent.is_dir():
        raise ExportError(f"{out}: expected a file name in an existing folder")
    try:
        name = feature_set or active_name(project)
    except FeatureError as exc:
        raise ExportError(str(exc)) from exc
    src_path = feature_path(project, name)
    if not src_path.is_file():
        raise ExportError(f"no feature set named {name!r} in {project.root}")
    tmp = out.parent / f".{out.name}.tmp{os.getpid()}"
    lookup = None
    try:
        with h5py.File(src_path, "r") as src:
            if not src.attrs.get("complete", True):
                raise ExportError(f"{src_path}: feature extraction did not finish")
            if not full_kept(src):
                raise ExportError(not_kept_message(name, "the HDF5 export") + "; or export "
                                  "the labels without features (csv, ecotaxa)")
            try:
                report = _write(project, src, tmp, out, name, labels, status, _Merge(src["object_id"]))
            except _NotInOrder:
                lookup = _Lookup(src["object_id"], out.parent / f".{out.name}.tmp{os.getpid()}.ids")
                report = _write(project, src, tmp, out, name, labels, status, lookup)
        if with_images:
            report.warnings.append("hdf5 holds no images; --with-images ignored")
        os.replace(tmp, out)
    finally:
        if lookup is not None:
            lookup.close()
        tmp.unlink(missing_ok=True)
    return report


def _write(project, src, tmp: Path, out: Path, name: str, labels: str, status: str,
           match) -> ExportReport:
    """Write `tmp` from the open feature file `src`, its rows found by `match`."""
    import h5py

    report = ExportReport("hdf5", str(out))
    str_dt = h5py.string_dtype()
    X = src["features"]
    d = X.shape[1]
    n_missing, examples = 0, []
    with h5py.File(tmp, "w") as dst:
        feats = dst.create_dataset("features", (0, d), np.float32, maxshape=(None, d),
                                   chunks=(min(CHUNK, 4096), d))
        cols = {c: dst.create_dataset(c, (0,), str_dt, maxshape=(None,), chunks=(CHUNK,))
                for c in COLS}
        pending: list = []

        def flush():
            nonlocal n_missing
            got = [(i, r) for i, r in zip(match.rows([r.object_id for r in pending]), pending)
                   if labels == "all" or r.label is not None]
            pending.clear()
            for i, r in got:
                if i is None:
                    n_missing += 1
                    if len(examples) < 5:
                        examples.append(r.object_id)
                else:
                    report.count(r.label is not None)
            got = [(i, r) for i, r in got if i is not None]
            if not got:
                return
            rows = np.array([i for i, _ in got])
            lo, hi = int(rows.min()), int(rows.max()) + 1
            if hi - lo <= 2 * len(rows):  # nearly contiguous (the merge): one slice is faster
                block = np.asarray(X[lo:hi], np.float32)[rows - lo]
            else:
                order = np.argsort(rows, kind="stable")
                block = np.empty((len(rows), d), np.float32)
                block[order] = X[rows[order]]
            n0 = feats.shape[0]
            feats.resize(n0 + len(got), axis=0)
            feats[n0:] = block
            for c in COLS:
                cols[c].resize(n0 + len(got), axis=0)
            cols["object_id"][n0:] = [r.object_id for _, r in got]
            cols["label"][n0:] = [r.label or "" for _, r in got]
            cols["label_path"][n0:] = [r.label_path or "" for _, r in got]
            cols["status"][n0:] = [r.status or "" for _, r in got]

        for r in object_labels(project, match.which or labels, status=status):
            pending.append(r)
            if len(pending) >= CHUNK:
                flush()
        flush()
        match.finish()
        for k, v in src.attrs.items():
            if k not in ("done", "complete"):  # the feature file's progress, not this file's
                dst.attrs[k] = v
        dst.attrs["feature_set"] = name
        dst.attrs["labels"] = labels
        dst.attrs["status"] = status
        dst.attrs["exported_by"] = "morphocluster"
        if n_missing:
            report.warnings.append(f"{n_missing} objects have no row in feature set {name!r} "
                                   f"and were left out, e.g. {', '.join(examples)}")
            dst.attrs["left_out_without_features"] = json.dumps(n_missing)
    return report
