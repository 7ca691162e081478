"""How many whole-set objects per click can the features allow? An estimated ceiling, not a run.

A workflow labels an object in bulk (cluster approve, grow page, suggestion screen, accept
above a confidence) only where a machine proposed the right class for it. Counted here: an
object for which the proposal is wrong costs one click (giving it its label on a suggestion
screen, a remove, or labelling it by hand), unless it is accepted wrong, which the 95 % whole-set
precision goal allows for at most 5 % of all objects; each class costs at least one click to
name. (A dissolve or a first-wrong click sends several objects back with one click, so this
is an estimate for workflows like this tool's, not a theorem.) So, with W objects whose proposal is
wrong, N objects and K classes:

    clicks >= max(0, W - 0.05 N) + K      whole-set objects per click <= N / that

This script measures W generously: 5-fold cross-validation over ALL true labels (far more than
a session has validated when it needs the proposals), with the suggestion model (calibrated
linear probe, `morphocluster.suggest.SuggestionModel`) and with a 5-nearest-neighbour vote, and
counts an object as proposed right if either is right. It also prints the share the probe alone
labels at 95 % precision when its most confident suggestions are accepted. One row per
feature set: the project's active one, or each `--features FILE` given (precomputed HDF5),
then each `--set NAME` already in the project (such as the `learned-N` sets that
`simulate_planktonset.py --learn` leaves there, learnt with the labels the simulated annotator
had given at that point), and with `--learn-unlabelled` a set the learn job learns from the
images alone (no labels). The last column says how many labels a learnt set was trained on.

Rerun:
  nice python benchmarks/efficiency_ceiling.py --features /work/cache/planktonset_effnet128.h5
  nice python benchmarks/efficiency_ceiling.py --work /work/cache/sim-planktonset \
      --set learned-1 --set learned-2 --learn-unlabelled --learn-epochs 2
  nice python benchmarks/efficiency_ceiling.py --work /work/cache/sim-planktonset \
      --set efficientnet-lite0-64px --learn-unlabelled --learn-epochs 1 --learn-size 128
  (efficientnet-lite0-64px: `morphocluster features PROJECT --size 64 --no-activate --name
  efficientnet-lite0-64px`, the ImageNet features at the learn job's default size)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

GOAL_PRECISION = 0.95


def cross_validated(X, y, folds: int = 5, seed: int = 0):
    """Return per object: probe prediction, probe confidence, 5-NN vote (all out of fold)."""
    import faiss

    from morphocluster.suggest import SuggestionModel

    rng = np.random.default_rng(seed)
    fold = np.empty(len(y), int)
    for c in np.unique(y):  # stratified folds
        idx = rng.permutation(np.flatnonzero(y == c))
        fold[idx] = np.arange(len(idx)) % folds
    pred = np.empty(len(y), object)
    conf = np.zeros(len(y))
    knn = np.empty(len(y), object)
    Xn = np.ascontiguousarray(X / np.linalg.norm(X, axis=1, keepdims=True), dtype=np.float32)
    for f in range(folds):
        tr, te = fold != f, fold == f
        m = SuggestionModel().fit(X[tr], y[tr])
        cls, c, _ = m.suggest(X[te])
        pred[te], conf[te] = m.classes_[cls], c
        index = faiss.IndexFlatIP(Xn.shape[1])
        index.add(Xn[tr])
        _, nn = index.search(Xn[te], 5)
        ytr = y[tr]
        knn[te] = [max(set(v), key=list(v).count) for v in ytr[nn]]
    return pred, conf, knn


def coverage_at(conf, ok, precision: float) -> float:
    order = np.argsort(-conf, kind="stable")
    run = np.cumsum(ok[order]) / np.arange(1, len(ok) + 1)
    hit = np.flatnonzero(run >= precision)
    return float((hit.max() + 1) / len(ok)) if len(hit) else 0.0


def ceiling(n_wrong: int, n: int, k: int) -> float:
    return n / (max(0.0, n_wrong - (1 - GOAL_PRECISION) * n) + k)


def learn_unlabelled(project, epochs, size: int | None = None, lr: float | None = None) -> str:
    """Learn (or reuse) the set `learned-unlabelled` (`-<size>px`, `-lr<lr>` where those are
    not the learn job's defaults) from the images alone; return its name."""
    from morphocluster.features import feature_path
    from morphocluster.features.learn import LearnSettings, learn

    st = LearnSettings(epochs=epochs, pseudo_confidence=1.0)
    name = "learned-unlabelled"
    if size is not None and size != st.size:
        st.size, name = size, f"{name}-{size}px"
    if lr is not None and lr != st.lr:
        st.lr, name = lr, f"{name}-lr{lr:g}"
    if not feature_path(project, name).is_file():
        rep = learn(project, st, name=name, labels={},
                    switch=False, progress=True)  # no labels, no pseudo-labels
        print(f"{name}: {rep['steps']} steps, {rep['seconds']:.0f} s, {rep['cpu_seconds']:.0f} CPU s")
    return name


def learnt_with(project, name: str) -> str:
    """What a learnt set was trained on, from its report (`<name>.learn.json`); '' for others."""
    import json

    p = project.features_dir / f"{name}.learn.json"
    if not p.is_file():
        return ""
    r = json.loads(p.read_text())
    return (f"{r['n_labels']} labels, {r['n_pseudo']} pseudo-labels, {r['steps']} steps "
            f"({r['epochs']} epochs), {r['cpu_seconds']:.0f} CPU s")


def main(argv=None) -> int:
    import simulate_planktonset as base  # beside this script

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=base.DATA)
    ap.add_argument("--features", action="append", default=[],
                    help="precomputed features (HDF5 with object_id, features); repeat to compare")
    ap.add_argument("--work", type=Path, default=Path("/tmp/mc-simulate-planktonset"))
    ap.add_argument("--set", action="append", default=[], dest="sets", metavar="NAME",
                    help="a feature set already in the project (e.g. learned-1); repeatable")
    ap.add_argument("--learn-unlabelled", action="store_true",
                    help="also learn a set from the images alone (no labels) and add its row")
    ap.add_argument("--learn-epochs", type=int, default=None, help="epochs of that learn job")
    ap.add_argument("--learn-size", type=int, default=None, help="its image size (default: the job's)")
    ap.add_argument("--learn-lr", type=float, action="append", default=[],
                    help="its learning rate (default: the job's); repeat for one set per rate")
    args = ap.parse_args(argv)

    from morphocluster.features import feature_path
    from morphocluster.features.extract import extract_features
    from morphocluster.features.matrix import load_matrix
    from morphocluster.simulate import imported_truth

    project = base.build_project(args.work, args.data, args.features[0] if args.features else None)
    truth = imported_truth(project)
    names = [None]
    for f in args.features[1:]:
        names.append(Path(f).stem)
        if not feature_path(project, names[-1]).is_file():
            extract_features(project, f"external:{f}", name=names[-1], activate=False)
    names += args.sets
    if args.learn_unlabelled:
        for lr in args.learn_lr or [None]:
            names.append(learn_unlabelled(project, args.learn_epochs, args.learn_size, lr))
    rows = []
    for name in names:
        fm = load_matrix(project, name)
        keep = np.array([int(pk) in truth for pk in fm.pks])
        F = fm.X[keep]
        y = np.array([truth[int(pk)] for pk in fm.pks[keep]])
        n, k = len(y), len(np.unique(y))
        pred, conf, knn = cross_validated(F, y)
        ok_p, ok_k = pred == y, knn == y
        either = ok_p | ok_k
        rows.append((fm.name, ok_p.mean(), ok_k.mean(), either.mean(),
                     coverage_at(conf, ok_p, GOAL_PRECISION),
                     ceiling(int((~ok_p).sum()), n, k), ceiling(int((~either).sum()), n, k),
                     learnt_with(project, fm.name)))
    need = 1 - ((1 - GOAL_PRECISION) * n + n / 10 - k) / n
    print(f"\n{n} objects, {k} classes; 5-fold cross-validation over all true labels\n")
    w = max(len(r[0]) for r in rows)
    print(f"{'features':<{w}} {'probe acc':>9} {'5-NN acc':>9} {'either':>7} "
          f"{'probe cov@95%':>13} {'ceiling probe':>13} {'ceiling either':>14}  learnt with")
    for name, a, b, e, cov, cp, ce, how in rows:
        print(f"{name:<{w}} {a:9.3f} {b:9.3f} {e:7.3f} {cov:13.3f} {cp:13.2f} {ce:14.2f}  {how}")
    print(f"\nceiling = whole-set objects per click at >= {GOAL_PRECISION:.0%} precision, estimated "
          f"for workflows whose proposals are no better than these; "
          f"10 per click needs proposals right for {need:.1%} of objects")
    print("rerun: nice python benchmarks/efficiency_ceiling.py" + f" --work {args.work}"
          + "".join(f" --features {f}" for f in args.features) + "".join(f" --set {n}" for n in args.sets)
          + (" --learn-unlabelled" if args.learn_unlabelled else "")
          + (f" --learn-epochs {args.learn_epochs}" if args.learn_epochs else "")
          + (f" --learn-size {args.learn_size}" if args.learn_size else "")
          + "".join(f" --learn-lr {lr:g}" for lr in args.learn_lr))
    return 0


if __name__ == "__main__":
    sys.exit(main())
