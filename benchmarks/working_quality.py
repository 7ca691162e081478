"""Does the working matrix sort as well as the full features? 5-NN accuracy on both.

Reads a project whose objects carry imported labels (e.g. PlanktonSet-dev imported with labels
from folders, as `simulate_planktonset.py` builds it) and its active feature set, and scores
leave-one-out 5-NN (majority vote, ties to the nearest; exact search) on: the full features,
the project's working matrix (PCA fitted on a sample, float16), and PCAs of other widths.

Rerun:  nice python benchmarks/working_quality.py --project /tmp/sim/project [--dims 64,128,256]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np


def knn_scores(X: np.ndarray, y: np.ndarray, k: int = 5) -> tuple[float, float]:
    """Leave-one-out k-NN accuracy and macro F1 (exact, FAISS)."""
    import faiss
    from sklearn.metrics import f1_score

    X = np.ascontiguousarray(X, np.float32)
    D, I = faiss.knn(X, X, k + 1)
    I = I[:, 1:]  # the object itself first
    classes, yi = np.unique(y, return_inverse=True)
    votes = yi[I]
    pred = np.empty(len(y), np.int64)
    for r in range(len(y)):
        counts = np.bincount(votes[r], minlength=len(classes))
        best = np.flatnonzero(counts == counts.max())
        pred[r] = next(v for v in votes[r] if v in best)  # ties: the nearest
    return float((pred == yi).mean()), float(f1_score(yi, pred, average="macro"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--project", type=Path, required=True)
    ap.add_argument("--dims", default="64,128,256")
    args = ap.parse_args(argv)

    from sqlalchemy import select

    from morphocluster.features.matrix import load_matrix
    from morphocluster.features.working import fit_pca, read_sample
    from morphocluster.project import Project
    from morphocluster.store import Object

    p = Project.open(args.project)
    fm = load_matrix(p)
    with p.session() as s:
        lab = dict(s.execute(select(Object.id, Object.imported_label)).all())
    y = np.array([lab.get(int(pk)) or "" for pk in fm.pks], dtype=object)
    keep = y != ""
    F = fm.full_rows(np.arange(len(fm.pks)))
    rows = []
    t = time.perf_counter()
    rows.append(("full features", F.shape[1], "float32", *knn_scores(F[keep], y[keep])))
    rows.append(("working matrix", fm.X.shape[1], str(fm.X.mm.dtype),
                 *knn_scores(fm.X[:][keep], y[keep])))
    import h5py

    with h5py.File(fm.path, "r") as h:
        S = read_sample(h["features"])
    for k in (int(x) for x in args.dims.split(",") if x):
        mean, comps = fit_pca(S, k)
        Z = (F - mean) @ comps
        rows.append((f"PCA {k}", k, "float32", *knn_scores(Z[keep], y[keep])))
        rows.append((f"PCA {k}", k, "float16", *knn_scores(Z.astype(np.float16)[keep], y[keep])))
    print(f"\nworking_quality: {int(keep.sum()):,} labelled objects, {len(set(y[keep]))} classes, "
          f"feature set {fm.name} ({F.shape[1]} features); {time.perf_counter() - t:.0f} s")
    print(f"{'representation':<18}{'dims':>6}{'type':>9}{'5-NN acc':>10}{'macro F1':>10}")
    for name, d, typ, acc, f1 in rows:
        print(f"{name:<18}{d:>6}{typ:>9}{acc:>10.4f}{f1:>10.4f}")
    print(f"\nrerun: nice python benchmarks/working_quality.py --project {args.project} "
          f"--dims {args.dims}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
