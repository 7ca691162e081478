"""Image preprocessing for plankton: greyscale, optional inversion, pad to square, resize."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


class ImageError(RuntimeError):
    """An image file cannot be read."""


def load_grey(path) -> np.ndarray:
    """Return the image at `path` as a uint8 greyscale array."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("L"))
    except Exception as exc:  # PIL raises many types for broken files
        raise ImageError(f"{path}: cannot read image: {exc}") from exc


def background_level(a: np.ndarray) -> int:
    """Return the median grey value of the image border (the instrument's background)."""
    border = np.concatenate([a[0], a[-1], a[:, 0], a[:, -1]])
    return int(np.median(border))


def pad_square(a: np.ndarray, fill: int) -> np.ndarray:
    """Pad to a centred square with `fill`, keeping the aspect ratio."""
    h, w = a.shape
    s = max(h, w)
    out = np.full((s, s), fill, dtype=a.dtype)
    y, x = (s - h) // 2, (s - w) // 2
    out[y:y + h, x:x + w] = a
    return out


@dataclass(frozen=True)
class Preprocess:
    """Greyscale -> (invert) -> pad to square with the background colour -> resize to `size`.

    `invert` makes dark-on-light images (e.g. ISIIS, ZooScan) light-on-dark or the reverse;
    the choices are recorded in the feature file's attributes.
    """

    size: int = 128
    invert: bool = False
    pad: str = "border-median"  # fill colour of the padding
    resample: str = "bilinear"

    def __call__(self, path) -> np.ndarray:
        """Return a (size, size) uint8 array."""
        return self.apply(load_grey(path))

    def apply(self, a: np.ndarray) -> np.ndarray:
        from PIL import Image

        if self.invert:
            a = 255 - a
        a = pad_square(a, background_level(a))
        if a.shape[0] != self.size:
            mode = Image.BILINEAR if self.resample == "bilinear" else Image.BICUBIC
            a = np.asarray(Image.fromarray(a).resize((self.size, self.size), mode))
        return a

    def attrs(self) -> dict:
        return asdict(self)
