"""Build small projects with real features for the clustering and node-statistics tests.

Features are pixel-based (a 16x16 thumbnail of each real image plus its size), computed here so
that the tests depend only on ../shared/data, not on any precomputed cache.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from morphocluster.features import set_active, write_features
from morphocluster.features.h5 import feature_path
from morphocluster.store import Object

CLASSES = ("trichodesmium_puff", "copepod_cyclopoid_oithona_eggs", "diatom_chain_string",
           "tunicate_doliolid")


def pixel_features(path: Path, size: int = 16) -> np.ndarray:
    """Return an L2-normalised thumbnail-plus-shape vector of one image."""
    im = Image.open(path).convert("L")
    w, h = im.size
    s = max(w, h)
    sq = Image.new("L", (s, s), 255)
    sq.paste(im, ((s - w) // 2, (s - h) // 2))
    a = 1.0 - np.asarray(sq.resize((size, size), Image.BILINEAR), np.float32) / 255.0
    v = np.concatenate([a.ravel(), [w / 100.0, h / 100.0, a.mean() * 4]])
    return (v / (np.linalg.norm(v) + 1e-9)).astype(np.float32)


def build_project(project, shared_data: Path, per_class: int = 60, classes=CLASSES):
    """Add objects of a few real classes with their features; return {object_id: class}."""
    root = shared_data / "planktonset-dev"
    ids, feats, truth = [], [], {}
    with project.transaction() as s:
        for c in classes:
            for p in sorted((root / c).glob("*.jpg"))[:per_class]:
                oid = f"{c}/{p.stem}"
                s.add(Object(object_id=oid, path=f"{c}/{p.name}"))
                ids.append(oid)
                feats.append(pixel_features(p))
                truth[oid] = c
    write_features(feature_path(project, "pixels"), ids, np.stack(feats))
    set_active(project, "pixels")
    return truth
