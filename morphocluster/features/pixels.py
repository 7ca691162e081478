"""Raw pixels of the padded, downscaled image: the floor any real extractor must beat."""

from __future__ import annotations

import numpy as np

from .base import Extractor
from .preprocess import Preprocess


class Pixels(Extractor):
    def __init__(self, size: int = 32, invert: bool = False):
        self.spec = "pixels"
        self.preprocess = Preprocess(size=size, invert=invert)

    def params(self) -> dict:
        return {"input_size": self.preprocess.size, "scale": "grey / 255, flattened"}

    def transform(self, batch):
        b = np.asarray(batch, dtype=np.float32) / 255.0
        return b.reshape(len(b), -1)
