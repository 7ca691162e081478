"""Feature quality: 5-NN accuracy and macro F1 of each extractor on planktonset-dev.

Imports the images into a project (once), extracts each feature set through the project's
own pipeline (cached in the work folder), builds the project's FAISS index over it and asks
it for each object's 5 nearest other objects; the majority label (ties: the nearest) is the
prediction. Two protocols:
  all    leave-one-out over all objects (every extractor but `trained`, which saw labels);
  half B objects are split per class into halves A and B (seeded); `trained` is fine-tuned
         supervised on A's labels plus self-supervised on all images; every extractor is
         then scored by leave-one-out 5-NN among B only (restricted search).

Rerun:  nice python benchmarks/feature_quality.py [--features /work/cache/planktonset_effnet128.h5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

DATA = REPO.parent / "shared" / "data" / "planktonset-dev"


def open_project(work: Path, data: Path):
    from morphocluster.importers import import_sources
    from morphocluster.project import Project

    root = work / "project"
    if (root / "morphocluster.json").exists():
        return Project.open(root)
    p = Project.create(root)
    import_sources(p, [data], labels_from_folders=True, progress=False)
    return p


def labels_by_pk(project) -> tuple[np.ndarray, np.ndarray]:
    from sqlalchemy import select

    from morphocluster.store import Object

    with project.session() as s:
        rows = s.execute(select(Object.id, Object.imported_label).order_by(Object.id)).all()
    return np.array([r[0] for r in rows]), np.array([r[1] for r in rows], dtype=object)


def half_split(labels: np.ndarray, seed: int = 0) -> np.ndarray:
    """Boolean mask of half A: per class, a seeded random half (rounded down)."""
    rng = np.random.default_rng(seed)
    a = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        a[rng.permutation(idx)[: len(idx) // 2]] = True
    return a


def knn_scores(project, name, pk_label: dict, allowed=None, k=5) -> tuple[float, float]:
    """5-NN leave-one-out accuracy and macro F1 through the project's index."""
    from sklearn.metrics import f1_score

    from morphocluster import index
    from morphocluster.features import set_active
    from morphocluster.features.matrix import load_matrix

    set_active(project, name)
    index.build_index(project, kind="flat")
    fm = load_matrix(project)
    rows = np.arange(len(fm.pks)) if allowed is None else fm.rows_of(allowed)
    y_true, y_pred = [], []
    for b in range(0, len(rows), 2048):
        r = rows[b:b + 2048]
        D, I = index.search(project, fm.X[r], k + 1, allowed_pks=allowed)
        for pk, nn in zip(fm.pks[r], I):
            nn = [x for x in nn if x != pk and x >= 0][:k]
            votes: dict = {}
            for rank, x in enumerate(nn):
                votes.setdefault(pk_label[x], []).append(rank)
            best = max(votes.items(), key=lambda kv: (len(kv[1]), -kv[1][0]))[0]
            y_true.append(pk_label[pk])
            y_pred.append(best)
    y_true, y_pred = np.array(y_true), np.array(y_pred)
    return float((y_true == y_pred).mean()), float(f1_score(y_true, y_pred, average="macro"))


def ensure_set(project, work, extractor, args, pks, labels, a_mask):
    """Compute the feature set (unless already in the project); return its name and seconds."""
    from morphocluster.features import feature_path
    from morphocluster.features.extract import extract_features, project_objects

    name = {"efficientnet-lite0": f"efficientnet-lite0-{args.size}",
            "trained": f"trained-tb{args.train_blocks}-e{args.epochs}"}.get(extractor, extractor)
    if feature_path(project, name).exists():
        return name, None
    t = time.perf_counter()
    if extractor == "efficientnet-lite0" and args.features:
        extract_features(project, f"external:{args.features}", name=name, activate=False)
    elif extractor == "trained":
        from morphocluster.features.train import trunk_maps, train_extractor
        from morphocluster.features.effnet import build_model
        from morphocluster.features.preprocess import Preprocess

        maps_path = work / f"maps_tb{args.train_blocks}_s{args.size}.npy"
        if maps_path.exists():
            maps = np.load(maps_path, mmap_mode="r")
        else:
            _, paths = project_objects(project)
            maps = trunk_maps(build_model(), args.train_blocks, paths, Preprocess(size=args.size), 1, "cpu",
                              128, args.workers, True)
            np.save(maps_path, maps)
        maps = np.asarray(maps)
        ids, _ = project_objects(project)
        lab = {oid: labels[i] for i, oid in enumerate(ids) if a_mask[i]}
        rep = train_extractor(project, name=name, labels=lab, train_blocks=args.train_blocks,
                              epochs=args.epochs, maps=maps, size=args.size, activate=False)
        print(f"trained: {rep}", flush=True)
    else:
        extract_features(project, extractor, name=name, size=args.size if extractor != "pixels" else 32,
                         num_workers=args.workers, activate=False)
    return name, time.perf_counter() - t


def size_study(data: Path, sizes, n: int, workers: int):
    """5-NN leave-one-out accuracy of ImageNet EfficientNet-Lite0 at several input sizes on a
    seeded random subset of n images (exact kNN with faiss.knn; no project). A size written
    '128r4' averages over 4 turned copies of each image (`--rotations 4`); a trailing 'm' appends
    the morphometric features ('efficientnet-lite0+morphometric'); an 'h' keeps the head's pooled
    output alone ('efficientnet-lite0-head', without block 11)."""
    import faiss
    from sklearn.metrics import f1_score
    from torch.utils.data import DataLoader

    from morphocluster.features.effnet import EfficientNetLite0
    from morphocluster.features.extract import _collate, _Images

    files = sorted(data.rglob("*.jpg"))
    pick = np.sort(np.random.default_rng(0).choice(len(files), min(n, len(files)), replace=False))
    paths = [str(files[i]) for i in pick]
    y = np.array([files[i].parent.name for i in pick])
    out = []
    for variant in sizes:
        size, _, rot = str(variant).replace("h", "").rstrip("m").partition("r")
        size, rot = int(size), int(rot or 1)
        ex = EfficientNetLite0(size=size, rotations=rot, **({"blocks": ()} if "h" in variant else {}))
        if variant.endswith("m"):
            from morphocluster.features.combined import Combined

            ex = Combined(ex)
        ex.setup("cpu")
        t = time.perf_counter()
        X = np.concatenate([ex.transform(b) for _, b in DataLoader(
            _Images(ex, paths, paths, 0), batch_size=64, num_workers=workers, collate_fn=_collate)])
        X = np.ascontiguousarray(ex.finalize(X)[0], dtype=np.float32)
        secs = time.perf_counter() - t
        _, I = faiss.knn(X, X, 6)
        pred = []
        for row, nn in enumerate(I):
            nn = [j for j in nn if j != row][:5]
            labs, counts = np.unique(y[nn], return_counts=True)
            top = labs[counts == counts.max()]
            pred.append(next(y[j] for j in nn if y[j] in top))
        pred = np.array(pred)
        out.append((variant, float((pred == y).mean()), float(f1_score(y, pred, average="macro")), len(paths) / secs))
        print(f"size {variant}: {out[-1]}", flush=True)
    print(f"\ninput size study: {len(paths)} random images, ImageNet EfficientNet-Lite0, 5-NN leave-one-out")
    print(f"{'size':>6s} {'5-NN acc':>9s} {'macro F1':>9s} {'img/s':>7s}")
    for size, acc, f1, speed in out:
        print(f"{size:>6s} {acc:9.3f} {f1:9.3f} {speed:7.1f}")
    print(f"rerun: nice python benchmarks/feature_quality.py --size-study {','.join(map(str, sizes))} --study-n {n}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--work", type=Path, default=Path("/work/cache/feature_quality"),
                    help="project and cached feature sets (outside the repo)")
    ap.add_argument("--features", type=Path, default=None,
                    help="shortcut: precomputed EfficientNet-Lite0 features (object_id/features HDF5)")
    ap.add_argument("--extractors", default="pixels,morphometric,efficientnet-lite0,trained")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--train-blocks", type=int, default=1)
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--size-study", default=None,
                    help="comma-separated input sizes ('128r4': 4 rotations, '128m': + morphometric): "
                         "run only the size study")
    ap.add_argument("--study-n", type=int, default=2000)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(2)
    if args.size_study:
        size_study(args.data, args.size_study.split(","), args.study_n, args.workers)
        return
    args.work.mkdir(parents=True, exist_ok=True)
    project = open_project(args.work, args.data)
    pks, labels = labels_by_pk(project)
    pk_label = dict(zip(pks.tolist(), labels))
    a_mask = half_split(labels)
    b_pks = pks[~a_mask]
    rows = []
    for ex in args.extractors.split(","):
        name, secs = ensure_set(project, args.work, ex, args, pks, labels, a_mask)
        acc_b, f1_b = knn_scores(project, name, pk_label, allowed=b_pks)
        acc, f1 = (None, None) if ex == "trained" else knn_scores(project, name, pk_label)  # trained saw A
        from morphocluster.features import load_features

        dim = load_features(project, name)[1].shape[1]
        rows.append((name, dim, acc, f1, acc_b, f1_b))
        print(f"done {name}: {rows[-1]} ({'cached' if secs is None else f'{secs:.0f} s'})", flush=True)

    print(f"\nplanktonset-dev: {len(pks)} objects, {len(set(labels))} classes; half B = {len(b_pks)} objects")
    print(f"{'feature set':28s} {'dim':>5s} {'5-NN acc all':>13s} {'macro F1 all':>13s} "
          f"{'5-NN acc B':>11s} {'macro F1 B':>11s}")
    fmt = lambda v: f"{v:.3f}" if v is not None else "n/a"  # noqa: E731
    for name, dim, acc, f1, acc_b, f1_b in rows:
        print(f"{name:28s} {dim:5d} {fmt(acc):>13s} {fmt(f1):>13s} {fmt(acc_b):>11s} {fmt(f1_b):>11s}")
    print("\ntrained = EfficientNet-Lite0 (ImageNet) with its last "
          f"{args.train_blocks} block(s) + head conv fine-tuned {args.epochs} epochs: supervised on half A's "
          "labels + self-supervised (NT-Xent) on all images; scored on half B only.")
    print("rerun: nice python benchmarks/feature_quality.py" + (f" --features {args.features}" if args.features else ""))


if __name__ == "__main__":
    main()
