"""Suggest labels for unlabelled objects from the objects labelled so far.

`SuggestionModel` is a linear probe: softmax regression on PCA-reduced features, calibrated by
temperature scaling on cross-validated held-out predictions, with an open-set test (distance to
the nearest labelled reference of the predicted class against the class-typical nearest-neighbour
distance). `train(project)` fits it on the members of approved nodes and saves it in
`project.cache_dir`; `predict(project)` suggests a label for every object not in an approved node.
"""

from __future__ import annotations

import json
import math
import zlib
from pathlib import Path

import numpy as np

MODEL_NAME = "suggest_model.npz"
CHUNK = 65536
CV_MAX = 10000  # training rows of each cross-validation fold at most
_WORKING = ("work_mean_", "work_components_")
_FITTED = ("classes_", "mean_", "components_", "coef_", "intercept_", "temperature_", "ref_",
           "ref_class_", "radius_", "oof_class_", "oof_pred_", "oof_confidence_")


def _softmax(L: np.ndarray) -> np.ndarray:
    L = L - L.max(axis=1, keepdims=True)
    np.exp(L, out=L)
    L /= L.sum(axis=1, keepdims=True)
    return L


def _dot(a, b) -> float:
    # not BLAS: on a busy machine its threads cost more than these small products
    return float(np.multiply(a, b).sum())


def _lbfgs(f, x, max_iter: int, m: int = 10, tol: float = 1e-6):
    """Minimise f (returning loss, gradient) by L-BFGS with a backtracking line search.

    Kept instead of SciPy's L-BFGS-B or scikit-learn's LogisticRegression: on the model's
    problem it reaches the same loss 1.7x and 7x faster (`benchmarks/softmax_fit.py`).
    """
    loss, g = f(x)
    S, Y = [], []
    for _ in range(max_iter):
        q = g.copy()
        alphas = []
        for s, y in zip(reversed(S), reversed(Y)):
            a = _dot(s, q) / _dot(y, s)
            alphas.append(a)
            q -= a * y
        if S:
            q *= _dot(S[-1], Y[-1]) / _dot(Y[-1], Y[-1])
        for (s, y), a in zip(zip(S, Y), reversed(alphas)):
            q += s * (a - _dot(y, q) / _dot(y, s))
        d = -q
        slope = _dot(g, d)
        if slope >= 0:  # not a descent direction: restart from the gradient
            S, Y, d, slope = [], [], -g, -_dot(g, g)
        step = 1.0 if S else 1.0 / max(np.sqrt(_dot(g, g)), 1e-12)
        for _ in range(30):
            x_new = x + step * d
            loss_new, g_new = f(x_new)
            if loss_new <= loss + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break
        s, y = x_new - x, g_new - g
        if _dot(y, s) > 1e-12:
            S.append(s)
            Y.append(y)
            if len(S) > m:
                S.pop(0)
                Y.pop(0)
        done = loss - loss_new < tol * max(abs(loss), 1.0)
        x, loss, g = x_new, loss_new, g_new
        if done:
            break
    return x


def _fit_softmax(Z, y, w, k, alpha, max_iter):
    """Weighted L2-regularised multinomial logistic regression by L-BFGS; return (W, b)."""
    n, d = Z.shape
    Y = np.zeros((n, k), np.float32)
    Y[np.arange(n), y] = 1.0
    w = (w / w.sum()).astype(np.float32)[:, None]
    Z = np.ascontiguousarray(Z, dtype=np.float32)

    def f(theta):
        W = theta[:d * k].reshape(d, k).astype(np.float32)
        L = Z @ W + theta[d * k:].astype(np.float32)
        L -= L.max(axis=1, keepdims=True)
        E = np.exp(L)
        s = E.sum(axis=1)
        loss = float((w[:, 0] * (np.log(s) - (L * Y).sum(axis=1))).sum()) + 0.5 * alpha * float((W * W).sum())
        G = w * (E / s[:, None] - Y)
        return loss, np.concatenate([(Z.T @ G + alpha * W).ravel(), G.sum(axis=0)]).astype(np.float64)

    x = _lbfgs(f, np.zeros(d * k + k), max_iter)
    return x[:d * k].reshape(d, k).astype(np.float32), x[d * k:].astype(np.float32)


def _fit_temperature(L: np.ndarray, y: np.ndarray) -> float:
    """Return the temperature that minimises the held-out negative log-likelihood."""
    from scipy.optimize import minimize_scalar

    L = L.astype(np.float64)

    def nll(logt):
        Z = L / math.exp(logt)
        Z -= Z.max(axis=1, keepdims=True)
        return float((np.log(np.exp(Z).sum(axis=1)) - Z[np.arange(len(y)), y]).mean())

    return float(math.exp(minimize_scalar(nll, bounds=(-3.0, 3.0), method="bounded").x))


def _nn_dist(Z: np.ndarray, R: np.ndarray, exclude_self: bool = False) -> np.ndarray:
    """Euclidean distance of each row of Z to its nearest row of R."""
    D = (Z * Z).sum(1)[:, None] - 2.0 * Z @ R.T + (R * R).sum(1)[None, :]
    if exclude_self:
        D[D <= 1e-10] = np.inf  # the object itself (or an exact duplicate of it)
    return np.sqrt(np.maximum(D.min(axis=1), 0.0))


def fit_projection(S, n_components: int = 128, random_state: int = 0):
    """Return (mean, components) of a PCA of (at most 10,000 of) the rows S, the components
    scaled to unit average variance per axis."""
    from ..features.working import fit_pca

    rng = np.random.default_rng(random_state)
    S = np.asarray(S, np.float32)
    if len(S) > 10000:
        S = S[rng.choice(len(S), 10000, replace=False)]
    return fit_pca(S, n_components, random_state)


class SuggestionModel:
    """Calibrated linear probe with an open-set "unknown" test (scikit-learn conventions).

    After `fit(X, y)`: `classes_`, `temperature_`, `radius_` (class-typical nearest-neighbour
    distance), `oof_*` (cross-validated held-out predictions of the objects with weight 1, used
    to estimate precision).
    """

    def __init__(self, n_components: int = 128, alpha: float = 1e-3, cv: int = 4,
                 max_iter: int = 200, n_references: int = 128, radius_quantile: float = 0.95,
                 unknown_factor: float = 1.0, random_state: int = 0):
        self.n_components = n_components
        self.alpha = alpha
        self.cv = cv
        self.max_iter = max_iter
        self.n_references = n_references
        self.radius_quantile = radius_quantile
        self.unknown_factor = unknown_factor
        self.random_state = random_state

    # --- fitting ----------------------------------------------------------------------------
    def fit(self, X, y, sample_weight=None, X_extra=None, projection=None):
        """Fit on labelled rows X (n, d) with labels y; `X_extra` (unlabelled) helps the PCA only.

        Rows with `sample_weight` < 1 (e.g. predicted, not validated) train but are never held
        out for calibration or precision estimates. `projection=(mean, components)` reuses a
        projection fitted beforehand (`fit_projection`) instead of fitting one.
        """
        from threadpoolctl import threadpool_limits

        # many small products: BLAS threads cost more than they give, worst on a busy machine
        with threadpool_limits(1):
            return self._fit(X, y, sample_weight, X_extra, projection)

    def _fit(self, X, y, sample_weight, X_extra, projection):
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y)
        w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, float)
        self.classes_, yi = np.unique(y, return_inverse=True)
        if len(self.classes_) < 2:
            raise ValueError(f"need objects of at least 2 labels to train, got {len(self.classes_)}")
        rng = np.random.default_rng(self.random_state)
        self.n_features_in_ = X.shape[1]
        if projection is None:
            S = X if X_extra is None or len(X_extra) == 0 else np.concatenate(
                [X, np.asarray(X_extra, np.float32)[rng.permutation(len(X_extra))[:10000]]])
            projection = fit_projection(S, self.n_components, self.random_state)
        self.mean_, self.components_ = projection
        Z = self.transform(X)
        k = len(self.classes_)
        oof_L, oof_d, held = self._cross_validate(Z, yi, w, k, rng)
        self.coef_, self.intercept_ = _fit_softmax(Z, yi, w, k, self.alpha, self.max_iter)
        self.temperature_ = _fit_temperature(oof_L[held], yi[held]) if held.sum() >= 10 else 1.0
        P = _softmax(oof_L[held] / self.temperature_)
        self.oof_class_ = yi[held]
        self.oof_pred_ = P.argmax(axis=1)
        self.oof_confidence_ = P.max(axis=1).astype(np.float32)
        self._fit_references(Z, yi)
        self._fit_radius(Z, yi, k)
        self.oof_ratio_ = (oof_d[held] / self.radius_[self.oof_pred_]).astype(np.float32)
        return self

    def _cross_validate(self, Z, yi, w, k, rng):
        """Return out-of-fold logits, nearest-reference distances and the held-out mask."""
        held = w >= 1.0
        fold = np.full(len(yi), -1)
        for c in range(k):  # stratified: each label's held-out objects spread over the folds
            idx = np.flatnonzero((yi == c) & held)
            fold[idx[rng.permutation(len(idx))]] = np.arange(len(idx)) % self.cv
        L = np.zeros((len(yi), k), np.float32)
        d = np.zeros(len(yi), np.float32)
        for f in range(self.cv if self.cv >= 2 else 0):
            te, tr = fold == f, fold != f
            if not te.any():
                continue
            if tr.sum() > CV_MAX:  # calibration needs held-out predictions, not the best fit
                tr[rng.permutation(np.flatnonzero(tr))[CV_MAX:]] = False
            W, b = _fit_softmax(Z[tr], yi[tr], w[tr], k, self.alpha, self.max_iter)
            L[te] = Z[te] @ W + b
            pred = L[te].argmax(axis=1)
            for c in np.unique(pred):
                R = Z[tr & (yi == c)][: self.n_references]
                rows = np.flatnonzero(te)[pred == c]
                d[rows] = _nn_dist(Z[rows], R) if len(R) else np.inf
        return L, d, held & (fold >= 0) if self.cv >= 2 else np.zeros(len(yi), bool)

    def _fit_references(self, Z, yi):
        refs, cls = [], []
        for c in range(len(self.classes_)):
            idx = np.flatnonzero(yi == c)
            # seeded per label: a label whose members did not change keeps its references (and
            # radius), so deciding one label does not move other labels' objects to "unknown"
            rng = np.random.default_rng([self.random_state or 0, zlib.crc32(str(self.classes_[c]).encode())])
            idx = idx[rng.permutation(len(idx))[: self.n_references]]
            refs.append(Z[idx])
            cls.append(np.full(len(idx), c))
        self.ref_ = np.concatenate(refs).astype(np.float32)
        self.ref_class_ = np.concatenate(cls)

    def _fit_radius(self, Z, yi, k):
        """Class-typical distance: a quantile of members' distances to their nearest other member."""
        q = np.full(k, np.nan)
        n = np.zeros(k)
        for c in range(k):
            R = self.ref_[self.ref_class_ == c]
            Zc = Z[yi == c][:2000]
            if len(R) < 2:
                continue
            d = _nn_dist(Zc, R, exclude_self=True)
            d = d[np.isfinite(d)]
            if len(d):
                q[c], n[c] = np.quantile(d, self.radius_quantile), len(d)
        ok = np.isfinite(q) & (q > 0)
        glob = float(np.exp(np.average(np.log(q[ok]), weights=n[ok]))) if ok.any() else 1.0
        m = 5.0  # small classes lean on the typical radius of all classes (in log space)
        logq = np.where(ok, np.log(np.where(ok, q, 1.0)), math.log(glob))
        self.radius_ = np.exp((n * logq + m * math.log(glob)) / (n + m)).astype(np.float32)

    # --- using it ---------------------------------------------------------------------------
    def transform(self, X) -> np.ndarray:
        """Project features onto the model's reduced space."""
        return (np.asarray(X, np.float32) - self.mean_) @ self.components_

    def decision_function(self, X) -> np.ndarray:
        return self.transform(X) @ self.coef_ + self.intercept_

    def predict_proba(self, X) -> np.ndarray:
        return _softmax(self.decision_function(X) / self.temperature_)

    def predict(self, X) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]

    def suggest(self, X, forbidden=None, reduced: bool = False, runner_up: bool = False):
        """Return (class index, calibrated confidence, distance ratio) per row, in chunks.

        `forbidden` maps row -> class indices that must not be suggested (rejections); the
        probabilities are then conditioned on "not those classes". `reduced`: X is already
        projected (`transform`). `runner_up`: also return the second most probable class
        per row (-1 where every other class is forbidden).
        """
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):
            out = self._suggest(X, forbidden, reduced)
        return out if runner_up else out[:3]

    def _suggest(self, X, forbidden, reduced):
        n = len(X)
        cls = np.zeros(n, np.int64)
        second = np.full(n, -1, np.int64)
        conf = np.zeros(n, np.float32)
        ratio = np.zeros(n, np.float32)
        forbidden = forbidden or {}
        for a in range(0, n, CHUNK):
            Z = X[a:a + CHUNK] if reduced else self.transform(X[a:a + CHUNK])
            P = _softmax((Z @ self.coef_ + self.intercept_) / self.temperature_)
            for row in (r for r in forbidden if a <= r < a + CHUNK):
                bad = list(forbidden[row])
                keep = 1.0 - P[row - a, bad].sum()
                P[row - a, bad] = 0.0
                P[row - a] /= max(keep, 1e-12)
            c = P.argmax(axis=1)
            rows = np.arange(len(c))
            cls[a:a + CHUNK] = c
            conf[a:a + CHUNK] = P[rows, c]
            P[rows, c] = -1.0
            c2 = P.argmax(axis=1)
            second[a:a + CHUNK] = np.where(P[rows, c2] > 0, c2, -1)
            ratio[a:a + CHUNK] = self.distance_ratio(Z, c, reduced=True)
        return cls, conf, ratio, second

    def distance_ratio(self, X, cls, reduced: bool = False) -> np.ndarray:
        """Distance to the nearest reference of class `cls` over that class's typical distance."""
        Z = X if reduced else self.transform(X)
        out = np.zeros(len(Z), np.float32)
        for c in np.unique(cls):
            rows = np.flatnonzero(cls == c)
            R = self.ref_[self.ref_class_ == c]
            out[rows] = _nn_dist(Z[rows], R) / self.radius_[c] if len(R) else np.inf
        return out

    def resolve_label(self, text: str) -> str:
        """Return the model's label for a full path ('a>b') or its last name alone ('b')."""
        text = str(text).strip()
        known = [str(c) for c in self.classes_]
        if text in known:
            return text
        by_name = [c for c in known if c.split(">")[-1] == text]
        if len(by_name) != 1:
            why = "is not one of the model's labels" if not by_name else "names several labels"
            raise ValueError(f"{text!r} {why}; labels: {', '.join(sorted(known)[:20])}"
                             + (" ..." if len(known) > 20 else ""))
        return by_name[0]

    def precision_at(self, label, threshold: float, prior: float = 5.0) -> tuple[float, int]:
        """Estimate the precision of accepting suggestions of `label` with confidence >= threshold.

        Measured on held-out objects the model suggested `label` for, excluding "unknowns";
        few of them lean on the same estimate over all labels (`prior` pseudo-counts).
        """
        ok = (self.oof_confidence_ >= threshold) & (self.oof_ratio_ <= self.unknown_factor)
        correct = self.oof_pred_ == self.oof_class_
        pooled = float(correct[ok].mean()) if ok.any() else float(threshold)
        hit = np.flatnonzero(self.classes_ == label)
        if not len(hit):
            return pooled, 0
        sel = ok & (self.oof_pred_ == hit[0])
        n = int(sel.sum())
        return float((correct[sel].sum() + prior * pooled) / (n + prior)), n

    # --- files ------------------------------------------------------------------------------
    def save(self, path) -> Path:
        """Write the fitted model to an .npz file (atomically)."""
        path = Path(path)
        import inspect

        params = {k: getattr(self, k) for k in inspect.signature(type(self)).parameters}
        arrays = {k: np.asarray(getattr(self, k)) for k in _FITTED + ("oof_ratio_",)}
        arrays["classes_"] = np.asarray(self.classes_).astype(str)
        for k in _WORKING:  # the working-matrix fit the model was trained behind, if any
            if getattr(self, k, None) is not None:
                arrays[k] = np.asarray(getattr(self, k))
        tmp = path.with_name(path.name + ".tmp.npz")
        meta = json.dumps(getattr(self, "meta_", {}), default=str)
        np.savez(tmp, params=np.asarray(repr(params)), meta=np.asarray(meta), **arrays)
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path) -> "SuggestionModel":
        import ast

        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as z:
                model = cls(**ast.literal_eval(str(z["params"])))
                for k in _FITTED + ("oof_ratio_",):
                    setattr(model, k, z[k])
                model.meta_ = json.loads(str(z["meta"])) if "meta" in z.files else {}
                for k in _WORKING:
                    setattr(model, k, z[k] if k in z.files else None)
        except (OSError, KeyError, ValueError, SyntaxError, EOFError) as exc:
            raise ValueError(f"{path}: not a suggestion model file ({exc})") from exc
        model.temperature_ = float(model.temperature_)
        model.n_features_in_ = model.mean_.shape[0]
        return model
