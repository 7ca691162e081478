"""A CNN's features with the morphometric ones appended ('efficientnet-lite0+morphometric').

A CNN sees every image resized to one input size, so it cannot tell a large organism from a
small one of the same shape, and its grey levels are normalised away; the morphometric
features (size, shape, grey levels of the segmented object) carry exactly that. The
morphometric block is standardised and scaled so that it holds `weight` times the CNN block's
total variance: PCA, clustering and the suggestion model then see both.
"""

from __future__ import annotations

import numpy as np

from .base import Extractor
from .morphometric import NAMES, measure
from .preprocess import load_grey

DEFAULT_WEIGHT = 0.5  # chosen with benchmarks/feature_quality.py --combined-study
CLIP = 6.0            # standardised morphometric values beyond this are outliers of segmentation


class Combined(Extractor):
    def __init__(self, cnn: Extractor, weight: float = DEFAULT_WEIGHT):
        self.cnn = cnn
        self.weight = weight
        self.spec = f"{cnn.spec}+morphometric"
        self.preprocess = cnn.preprocess

    def params(self) -> dict:
        return {"cnn": self.cnn.params(), "morphometric": NAMES, "morphometric_weight": self.weight,
                "morphometric_scaling": f"standardised, clipped to +-{CLIP:g}, scaled to weight x "
                                        "the CNN block's total variance"}

    def setup(self, device="cpu"):
        self.cnn.setup(device)

    def load(self, path) -> np.ndarray:
        """Return the CNN's input image, flattened, followed by the morphometric vector."""
        a = load_grey(path)
        return np.concatenate([self.preprocess.apply(a).ravel().astype(np.float32), measure(a)])

    def transform(self, batch):
        batch = np.asarray(batch, np.float32)
        s = self.preprocess.size
        images = batch[:, :s * s].reshape(-1, s, s)
        return np.hstack([self.cnn.transform(images), batch[:, s * s:]]).astype(np.float32)

    def finalize(self, X):
        attrs = self.finalize_attrs(X)
        return self.refinalize(X, attrs), attrs

    def finalize_attrs(self, X, rows: int = 65_536) -> dict:
        """Standardisation constants and block scale, read in row chunks (X may be an HDF5
        dataset of a million rows: memory stays flat)."""
        k, n = len(NAMES), X.shape[0]
        s1 = np.zeros(X.shape[1], np.float64)
        s2 = np.zeros(X.shape[1], np.float64)
        for i in range(0, n, rows):
            c = np.asarray(X[i:min(i + rows, n)], np.float64)
            s1 += c.sum(0)
            s2 += (c * c).sum(0)
        mean = s1 / max(n, 1)
        var = np.maximum(s2 / max(n, 1) - mean * mean, 0.0)
        sd = np.sqrt(var[-k:])
        sd[sd == 0] = 1.0
        scale = block_scale(var[:-k].sum(), k, self.weight)
        return {"standardise_mean": mean[-k:].tolist(), "standardise_sd": sd.tolist(),
                "morphometric_scale": scale}

    def refinalize(self, X, attrs):
        k = len(NAMES)
        X = np.asarray(X, np.float32)
        mean = np.asarray(attrs["standardise_mean"], np.float32)
        sd = np.asarray(attrs["standardise_sd"], np.float32)
        z = np.clip((X[:, -k:] - mean) / sd, -CLIP, CLIP)
        return np.hstack([X[:, :-k], z * float(attrs["morphometric_scale"])]).astype(np.float32)


def morphometric_block(path) -> np.ndarray | None:
    """Return the standardised morphometric block of a combined feature file (rows in its
    object order), or None if the file has none."""
    import json

    import h5py

    from .h5 import FeatureError, full_kept, not_kept_message

    with h5py.File(path, "r") as h:
        if not str(h.attrs.get("extractor", "")).endswith("+morphometric"):
            return None
        if not full_kept(h):
            raise FeatureError(not_kept_message(str(path).rsplit("/", 1)[-1].removesuffix(".h5"),
                                                "reading its morphometric block"))
        v = h.attrs["morphometric_scale"]
        scale = float(json.loads(v) if isinstance(v, str) else v)
        return (h["features"][:, -len(NAMES):] / scale).astype(np.float32)


def append_block(deep: np.ndarray, z: np.ndarray, weight: float = DEFAULT_WEIGHT):
    """Return (deep features with the standardised block z appended at `weight`, scale used)."""
    scale = block_scale(deep.var(0).sum(), z.shape[1], weight)
    return np.hstack([deep, z * scale]).astype(np.float32), scale


def block_scale(deep_variance: float, k: int, weight: float = DEFAULT_WEIGHT) -> float:
    """Scale of k standardised columns so that they hold `weight` x the CNN block's variance."""
    return float(np.sqrt(weight * float(deep_variance) / k))
