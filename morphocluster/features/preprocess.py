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


MAX_PAD_SIDE = 2048  # beyond this the padded square (side x side bytes) is never made


def pad_resize(a: np.ndarray, fill: int, size: int, resample) -> np.ndarray:
    """Return `a` padded to a centred square with `fill` and resized to (size, size).

    Up to MAX_PAD_SIDE (every real vignette) the square is padded, then resized; a longer
    image is first resized to fit `size` and then padded, so memory stays within the image
    itself instead of side² bytes (a 30000 x 1 image would need 900 MB).
    """
    from PIL import Image

    h, w = a.shape
    s = max(h, w)
    if s <= MAX_PAD_SIDE:
        a = pad_square(a, fill)
        if s != size:
            a = np.asarray(Image.fromarray(a).resize((size, size), resample))
        return a
    nw, nh = max(1, round(w * size / s)), max(1, round(h * size / s))
    small = np.asarray(Image.fromarray(a).resize((nw, nh), resample))
    out = np.full((size, size), fill, dtype=a.dtype)
    y, x = (size - nh) // 2, (size - nw) // 2
    out[y:y + nh, x:x + nw] = small
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
        mode = Image.BILINEAR if self.resample == "bilinear" else Image.BICUBIC
        return pad_resize(a, background_level(a), self.size, mode)

    def attrs(self) -> dict:
        return asdict(self)
