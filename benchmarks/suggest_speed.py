"""Speed of retraining the suggestion model and predicting every object (synthetic features).

Synthetic L2-normalised features (n objects, d dimensions, c classes as Gaussian blobs), of
which `--labelled` carry labels (a fifth of them 'predicted' with half weight, like the members
of approved nodes). Times the projection of all objects (once per feature set; `suggest.train`
caches it), then per retrain `SuggestionModel.fit` (cross-validated calibration, final fit,
open-set references) and `suggest` (label, confidence, distance ratio and runner-up label for
every unlabelled object): what `workflow.suggest.refresh` does after each batch of decisions. The database part
of `suggest.train/predict` (reading memberships) is not included.

Rerun:
  nice python benchmarks/suggest_speed.py                 # 1M objects, 1280 dims
  nice python benchmarks/suggest_speed.py --n 100000 --repeat 3
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def synthetic(n, d, c, noise=1.5, seed=0, chunk=100_000):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((c, d)).astype(np.float32)
    y = rng.integers(0, c, n)
    X = np.empty((n, d), np.float32)
    for a in range(0, n, chunk):
        b = min(n, a + chunk)
        X[a:b] = centres[y[a:b]] + noise * rng.standard_normal((b - a, d), dtype=np.float32)
        X[a:b] /= np.linalg.norm(X[a:b], axis=1, keepdims=True)
    return X, y


def main(argv=None) -> int:
    from types import SimpleNamespace

    from morphocluster.suggest import SuggestionModel, projection

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--d", type=int, default=1280)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--labelled", type=int, default=20_000)
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--noise", type=float, default=6.0,
                    help="spread of each blob (6: about 66 %% accuracy, like ImageNet features on "
                         "plankton; 1.5: separable)")
    args = ap.parse_args(argv)

    t = time.perf_counter()
    X, y = synthetic(args.n, args.d, args.classes, args.noise)
    print(f"made {args.n} x {args.d} features in {time.perf_counter() - t:.1f} s (not timed below)")
    rng = np.random.default_rng(1)
    lab = rng.choice(args.n, args.labelled, replace=False)
    w = np.where(rng.random(len(lab)) < 0.2, 0.5, 1.0)
    fm = SimpleNamespace(name="synthetic", X=X)
    t = time.perf_counter()
    mean, comps, Z = projection(fm)
    t_proj = time.perf_counter() - t
    rows = []
    for r in range(args.repeat):
        t0 = time.perf_counter()
        free = np.ones(args.n, bool)
        free[lab] = False
        m = SuggestionModel().fit(X[lab], y[lab].astype(str), sample_weight=w,
                                  projection=(mean, comps))
        t1 = time.perf_counter()
        cls, conf, ratio, second = m.suggest(Z[free], reduced=True, runner_up=True)
        t2 = time.perf_counter()
        acc = float((m.classes_[cls] == y[free].astype(str)).mean())
        rows.append((r, t1 - t0, t2 - t1, t2 - t0, acc, int(free.sum())))
    print()
    print(f"projection of all {args.n} objects (once per feature set, cached): {t_proj:.2f} s")
    print(f"{'run':>4} {'fit s':>8} {'predict s':>10} {'total s':>8} {'accuracy':>9} {'predicted':>10}")
    for r, a, b, c, acc, n in rows:
        print(f"{r:4d} {a:8.2f} {b:10.2f} {c:8.2f} {acc:9.3f} {n:10d}")
    print(f"\n{args.labelled} labelled objects of {args.classes} labels, {args.n} objects x {args.d} "
          f"dims; goal: total under 10 s")
    print(f"rerun: nice python benchmarks/suggest_speed.py --n {args.n} --d {args.d} "
          f"--classes {args.classes} --labelled {args.labelled} --noise {args.noise}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
