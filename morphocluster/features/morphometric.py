"""Morphometric features of the segmented object (scikit-image regionprops), standardised.

The object is the largest connected component above an Otsu threshold, after turning the
image light-on-dark when its border (the background) is bright.
"""

from __future__ import annotations

import numpy as np

from .base import Extractor
from .preprocess import background_level, load_grey

NAMES = [
    "log_area", "log_esd", "log_perimeter", "log_convex_area", "log_feret", "log_major", "log_minor",
    "elongation", "circularity", "solidity", "extent", "eccentricity", "euler",
    "grey_mean", "grey_sd", "grey_median", "grey_min", "grey_max", "log_area_frac",
    "hu1", "hu2", "hu3", "hu4", "hu5", "hu6", "hu7",
]


def measure(a: np.ndarray) -> np.ndarray:
    """Return the NAMES features of one uint8 greyscale image."""
    from skimage.filters import threshold_otsu
    from skimage.measure import label, regionprops

    if background_level(a) > 127:
        a = 255 - a
    out = np.zeros(len(NAMES), dtype=np.float32)
    if a.max() == a.min():
        return out
    mask = a > threshold_otsu(a)
    lab = label(mask, connectivity=2)
    if lab.max() == 0:
        return out
    props = regionprops(lab, intensity_image=a)
    r = max(props, key=lambda p: p.area)
    area = float(r.area)
    perim = float(r.perimeter) or 1.0
    major, minor = float(r.axis_major_length), float(r.axis_minor_length)
    grey = a[lab == r.label].astype(np.float32)
    hu = r.moments_hu
    hu = -np.sign(hu) * np.log10(np.abs(hu) + 1e-30)
    out[:] = [
        np.log(area), np.log(2 * np.sqrt(area / np.pi)), np.log(perim), np.log(float(r.area_convex)),
        np.log(float(r.feret_diameter_max) + 1), np.log(major + 1), np.log(minor + 1),
        major / max(minor, 1.0), 4 * np.pi * area / perim ** 2, float(r.solidity), float(r.extent),
        float(r.eccentricity), float(r.euler_number),
        grey.mean(), grey.std(), float(np.median(grey)), grey.min(), grey.max(),
        np.log(area / a.size), *np.clip(hu, -30, 30),
    ]
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


class Morphometric(Extractor):
    spec = "morphometric"

    def params(self) -> dict:
        return {"features": NAMES, "segmentation": "otsu, largest component (8-connected)",
                "polarity": "inverted when the border median > 127", "scaling": "standardised"}

    def load(self, path) -> np.ndarray:
        return measure(load_grey(path))

    def transform(self, batch):
        return np.asarray(batch, dtype=np.float32)

    def finalize(self, X):
        mean = X.mean(0)
        sd = X.std(0)
        sd[sd == 0] = 1.0
        return ((X - mean) / sd).astype(np.float32), {"standardise_mean": mean.tolist(),
                                                       "standardise_sd": sd.tolist()}

    def refinalize(self, X, attrs):
        mean = np.asarray(attrs["standardise_mean"], np.float32)
        sd = np.asarray(attrs["standardise_sd"], np.float32)
        return ((np.asarray(X, np.float32) - mean) / sd).astype(np.float32)
