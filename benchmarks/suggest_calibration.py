"""Calibration of the suggestion model: confidence against observed precision on held-out objects.

Builds (or reuses) the PlanktonSet-dev project of benchmarks/simulate_planktonset.py (folder
import with labels, default features; `--features FILE` uses precomputed features), treats a
fraction of each class as validated labels, trains `SuggestionModel` on them and prints
reliability tables (confidence bins: objects, mean confidence, observed precision) and the
expected calibration error (ECE) for

  cv      the model's own cross-validated held-out predictions of validated objects (what the
          accept-above estimate uses);
  random  held-out objects when the validated ones are a random sample of each class;
  typical held-out objects when the validated ones are the most typical of each class (closest
          to the class mean, as seed clusters are): the rest are atypical, and the estimate
          from held-out validated objects is optimistic for them.

Each also without temperature scaling (T=1) for comparison.

Rerun:
  nice python benchmarks/suggest_calibration.py --features /work/cache/planktonset_effnet128.h5
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

EDGES = np.array([0.0, 0.2, 0.4, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0001])


def reliability(conf, ok):
    rows, ece = [], 0.0
    for lo, hi in zip(EDGES[:-1], EDGES[1:]):
        m = (conf >= lo) & (conf < hi)
        if m.any():
            rows.append((lo, min(hi, 1.0), int(m.sum()), float(conf[m].mean()), float(ok[m].mean())))
            ece += m.mean() * abs(conf[m].mean() - ok[m].mean())
    return rows, float(ece)


def show(name, conf, ok):
    rows, ece = reliability(conf, ok)
    print(f"\n{name}: {len(conf)} objects, accuracy {ok.mean():.3f}, ECE {ece:.3f}")
    print(f"  {'confidence':>13} {'objects':>8} {'mean conf':>10} {'precision':>10}")
    for lo, hi, n, c, p in rows:
        print(f"  {lo:5.2f} - {hi:4.2f} {n:8d} {c:10.3f} {p:10.3f}")
    return ece


def split(y, X, frac, kind, rng):
    tr = np.zeros(len(y), bool)
    for c in np.unique(y):
        idx = np.flatnonzero(y == c)
        n = max(2, int(round(frac * len(idx))))
        if kind == "random":
            tr[rng.choice(idx, min(n, len(idx)), replace=False)] = True
        else:
            d = ((X[idx] - X[idx].mean(0)) ** 2).sum(1)
            tr[idx[np.argsort(d)[:n]]] = True
    return tr


def main(argv=None) -> int:
    import simulate_planktonset as base  # beside this script

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    base.project_args(ap, "/tmp/mc-suggest-calibration", out=False)
    ap.add_argument("--fraction", type=float, default=0.3, help="share of each class validated")
    args = ap.parse_args(argv)

    from morphocluster.features.matrix import load_matrix
    from morphocluster.simulate import imported_truth
    from morphocluster.suggest import SuggestionModel, projection

    project = base.build_project(args.work, args.data, args.features)
    truth = imported_truth(project)
    fm = load_matrix(project)
    keep = np.array([int(pk) in truth for pk in fm.pks])
    X = fm.X[keep]
    y = np.array([truth[int(pk)] for pk in fm.pks[keep]])
    mean, comps, _ = projection(fm)
    rng = np.random.default_rng(0)
    summary = []
    for kind in ("random", "typical"):
        tr = split(y, X, args.fraction, kind, rng)
        m = SuggestionModel().fit(X[tr], y[tr], projection=(mean, comps))
        print(f"\n=== validated = {kind} {args.fraction:.0%} of each class ({tr.sum()} objects), "
              f"temperature {m.temperature_:.2f}")
        ok_cv = m.oof_pred_ == m.oof_class_
        e_cv = show(f"cv ({kind})", m.oof_confidence_, ok_cv)
        L = m.decision_function(X[~tr])
        ok = m.classes_[L.argmax(1)] == y[~tr]
        P = np.exp(L / m.temperature_ - (L / m.temperature_).max(1, keepdims=True))
        e_t = show(f"held out ({kind}), temperature scaled", (P / P.sum(1, keepdims=True)).max(1), ok)
        P1 = np.exp(L - L.max(1, keepdims=True))
        e_1 = show(f"held out ({kind}), T=1", (P1 / P1.sum(1, keepdims=True)).max(1), ok)
        summary.append((kind, e_cv, e_t, e_1, float(ok.mean())))
    print(f"\n{'validated':>10} {'ECE cv':>8} {'ECE held-out':>13} {'ECE T=1':>8} {'accuracy':>9}")
    for kind, a, b, c, acc in summary:
        print(f"{kind:>10} {a:8.3f} {b:13.3f} {c:8.3f} {acc:9.3f}")
    print("\nrerun: nice python benchmarks/suggest_calibration.py"
          + (f" --features {args.features}" if args.features else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
