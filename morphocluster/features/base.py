"""The extractor interface that the extraction runner drives."""

from __future__ import annotations

import numpy as np

from .preprocess import Preprocess


class Extractor:
    """Turn image files into feature vectors.

    `load(path)` runs in DataLoader worker processes (keep the object picklable until
    `setup`); `transform(batch)` runs in the main process on a stacked batch.
    """

    spec: str = ""
    preprocess: Preprocess | None = None

    def params(self) -> dict:
        return {}

    def load(self, path) -> np.ndarray:
        return self.preprocess(path)

    def setup(self, device: str = "cpu") -> None:
        """Load the model (called once, in the main process)."""

    def transform(self, batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def finalize(self, X: np.ndarray) -> tuple[np.ndarray, dict]:
        """Post-process the whole matrix (e.g. standardise); return it and attributes to record."""
        return X, {}

    def refinalize(self, X: np.ndarray, attrs: dict) -> np.ndarray:
        """Post-process rows added later with the attributes `finalize` recorded."""
        return np.asarray(X, np.float32)


def torch_device(device: str | None) -> str:
    """Resolve 'auto' / None to cuda when available, else cpu."""
    import torch

    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no GPU")
    return device


def file_digest(path) -> str:
    """Return a short SHA-256 of a model file (missing: 'missing'), so that a feature set made
    with other weights at the same path is never taken for the current one."""
    import hashlib

    try:
        with open(path, "rb") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()[:16]
    except OSError:
        return "missing"
