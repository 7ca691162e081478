"""The suggestion model's softmax fit: its own L-BFGS against SciPy's and scikit-learn's.

Run:  nice python benchmarks/softmax_fit.py [--n 20000] [--dim 128] [--classes 81]

The same weighted, L2-regularised multinomial logistic regression (suggest.model._fit_softmax's
objective, alpha 1e-3, at most 200 iterations) on synthetic blobs of the suggestion model's
size (PCA-128 of the features, 81 PlanktonSet classes), fitted three ways: the model's own
L-BFGS (`suggest.model._lbfgs`), `scipy.optimize.minimize(method="L-BFGS-B")` on the same
loss, and `sklearn.linear_model.LogisticRegression(solver="lbfgs")` with C = 1 / alpha (the same
optimum: its loss is the weighted sum, ours the weighted mean). Prints seconds (best of 3),
the final loss and the held-out accuracy; the model keeps its own where it is the fastest.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--classes", type=int, default=81)
    ap.add_argument("--alpha", type=float, default=1e-3)
    args = ap.parse_args(argv)
    from scipy.optimize import minimize
    from sklearn.linear_model import LogisticRegression

    from morphocluster.suggest import model as m

    rng = np.random.default_rng(0)
    n, d, k = args.n, args.dim, args.classes
    centres = rng.normal(size=(k, d)).astype(np.float32)
    y = rng.integers(0, k, 2 * n)
    X = (centres[y] + 3.0 * rng.normal(size=(2 * n, d))).astype(np.float32)
    Z, yt, Zh, yh = X[:n], y[:n], X[n:], y[n:]
    w = np.ones(n, np.float32)
    own = m._lbfgs

    def scipy_lbfgs(f, x, max_iter, m_=10, tol=1e-6):
        return minimize(f, x, jac=True, method="L-BFGS-B",
                        options={"maxiter": max_iter, "ftol": tol, "maxcor": 10}).x

    def fit(name):
        if name == "sklearn":
            lr = LogisticRegression(C=1.0 / (args.alpha * n), max_iter=200, tol=1e-6).fit(Z, yt)
            return lr.coef_.T.astype(np.float32), lr.intercept_.astype(np.float32)
        m._lbfgs = own if name == "own" else scipy_lbfgs
        try:
            return m._fit_softmax(Z, yt, w, k, args.alpha, 200)
        finally:
            m._lbfgs = own

    def loss(W, b):
        L = Z @ W + b
        L -= L.max(1, keepdims=True)
        nll = np.log(np.exp(L).sum(1)) - L[np.arange(n), yt]
        return float(nll.mean()) + 0.5 * args.alpha * float((W * W).sum())

    print(f"softmax fit: n {n:,}, {d}-d, {k} classes, alpha {args.alpha}")
    print(f"{'optimiser':<34}{'seconds':>9}{'loss':>10}{'held-out acc':>14}")
    for name, label in (("own", "own L-BFGS (suggest.model)"), ("scipy", "scipy L-BFGS-B, same loss"),
                        ("sklearn", "sklearn LogisticRegression lbfgs")):
        times = []
        for _ in range(3):
            t = time.perf_counter()
            W, b = fit(name)
            times.append(time.perf_counter() - t)
        acc = float(((Zh @ W + b).argmax(1) == yh).mean())
        print(f"{label:<34}{min(times):>9.2f}{loss(W, b):>10.4f}{acc:>14.4f}")
    print("\nrerun: nice python benchmarks/softmax_fit.py" + "".join(
        f" --{k} {v}" for k, v in (("n", n), ("dim", d), ("classes", k)) if v != ap.get_default(k)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
