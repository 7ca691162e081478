"""Helpers (no tests) for the feature, index and train tests: small projects of real images."""

from __future__ import annotations

import shutil
from pathlib import Path

CLASSES = ("acantharia_protist", "chaetognath_other", "copepod_cyclopoid_oithona_eggs")


def small_image_folder(shared_data: Path, dst: Path, per_class: int = 6) -> Path:
    """Copy `per_class` real planktonset-dev images of each of three classes into dst/<class>/."""
    for c in CLASSES:
        (dst / c).mkdir(parents=True)
        for f in sorted((shared_data / "planktonset-dev" / c).glob("*.jpg"))[:per_class]:
            shutil.copy2(f, dst / c / f.name)
    return dst


def import_small(project, shared_data: Path, tmp_path: Path, per_class: int = 6):
    """Import a few real images with their class folders as validated labels."""
    from morphocluster.importers import import_sources

    src = small_image_folder(shared_data, tmp_path / "images-src", per_class)
    import_sources(project, [src], labels_from_folders=True, progress=False)
    return project


def add_objects(project, object_ids):
    """Create objects directly in the store (for features that never read images)."""
    from morphocluster.store import Object

    with project.transaction() as s:
        for oid in object_ids:
            s.add(Object(object_id=str(oid), path=f"none/{oid}.png"))
