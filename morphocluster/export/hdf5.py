"""HDF5 export: the active features of the exported objects in the original MorphoCluster layout.

Datasets: `object_id` (strings), `features` (float32, n x d), and per row `label` (display
name, '' if unlabelled), `label_path` and `status`. Rows are copied chunk by chunk, so the
whole feature matrix is never in memory. A set that keeps no full features (`features --store
none`) is refused: there is nothing to copy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..labels import object_labels
from .common import ExportError, ExportReport

CHUNK = 8192


def export_hdf5(project, out, labels: str = "validated", with_images: bool = False,
                feature_set: str | None = None) -> ExportReport:
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
    report = ExportReport("hdf5", str(out))
    if with_images:
        report.warnings.append("hdf5 holds no images; --with-images ignored")
    tmp = out.parent / f".{out.name}.tmp{os.getpid()}"
    str_dt = h5py.string_dtype()
    try:
        with h5py.File(src_path, "r") as src, h5py.File(tmp, "w") as dst:
            if not src.attrs.get("complete", True):
                raise ExportError(f"{src_path}: feature extraction did not finish")
            if not full_kept(src):
                raise ExportError(not_kept_message(name, "the HDF5 export") + "; or export "
                                  "the labels without features (csv, ecotaxa)")
            row_of = {oid: i for i, oid in enumerate(src["object_id"].asstr()[:])}
            X = src["features"]
            d = X.shape[1]
            feats = dst.create_dataset("features", (0, d), np.float32, maxshape=(None, d),
                                       chunks=(min(CHUNK, 4096), d))
            cols = {c: dst.create_dataset(c, (0,), str_dt, maxshape=(None,), chunks=(CHUNK,))
                    for c in ("object_id", "label", "label_path", "status")}
            n_missing, examples = 0, []
            buf: list = []

            def flush():
                if not buf:
                    return
                rows = np.array([b[0] for b in buf])
                order = np.argsort(rows)
                block = np.empty((len(rows), d), np.float32)
                block[order] = X[rows[order]]
                n0 = feats.shape[0]
                feats.resize(n0 + len(buf), axis=0)
                feats[n0:] = block
                for j, c in enumerate(("object_id", "label", "label_path", "status"), start=1):
                    cols[c].resize(n0 + len(buf), axis=0)
                    cols[c][n0:] = [b[j] for b in buf]
                buf.clear()

            for r in object_labels(project, labels):
                i = row_of.get(r.object_id)
                if i is None:
                    n_missing += 1
                    if len(examples) < 5:
                        examples.append(r.object_id)
                    continue
                buf.append((i, r.object_id, r.label or "", r.label_path or "", r.status or ""))
                report.count(r.label is not None)
                if len(buf) >= CHUNK:
                    flush()
            flush()
            for k, v in src.attrs.items():
                if k not in ("done", "complete"):  # the feature file's progress, not this file's
                    dst.attrs[k] = v
            dst.attrs["feature_set"] = name
            dst.attrs["labels"] = labels
            dst.attrs["exported_by"] = "morphocluster"
            if n_missing:
                report.warnings.append(f"{n_missing} objects have no row in feature set {name!r} "
                                       f"and were left out, e.g. {', '.join(examples)}")
                dst.attrs["left_out_without_features"] = json.dumps(n_missing)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return report
