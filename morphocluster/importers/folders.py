"""Import a folder of images (recursively), optionally labelled by their class folders.

Object id = path relative to the source folder, without extension, POSIX separators
(`copepod/img001.jpg` -> `copepod/img001`). With labels from folders, the name of the folder
holding the image becomes `imported_label` with `imported_status` "validated": class folders
are taken as human-sorted ground truth (this is what the benchmarks use).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..images import is_image_name
from .batch import Batch, Candidate

LABEL_STATUS = "validated"


def iter_images(root: Path):
    """Yield (path, relative POSIX path) of the image files below `root` in a stable order,
    skipping hidden files and folders; streamed, one folder listed at a time."""
    root_s = os.fspath(root)
    for dirpath, dirnames, filenames in os.walk(root_s):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "__MACOSX")
        rel_dir = os.path.relpath(dirpath, root_s).replace(os.sep, "/")
        prefix = "" if rel_dir == "." else rel_dir + "/"
        for fn in sorted(filenames):
            if not fn.startswith(".") and is_image_name(fn):
                yield os.path.join(dirpath, fn), prefix + fn


def collect(root: Path, batch: Batch, prefix: str, labels_from_folders: bool = False,
            where_root: str | None = None) -> int:
    """Add every image below `root` to the batch; return how many were found."""
    n = n_unlabelled = 0
    where_root = where_root or str(root)
    for path, rel in iter_images(root):
        object_id = rel.rsplit(".", 1)[0]
        label = status = None
        if labels_from_folders:
            folder = rel.rpartition("/")[0]
            if folder:
                label, status = folder.rpartition("/")[2], LABEL_STATUS
            else:
                n_unlabelled += 1
        batch.add(Candidate(object_id=object_id, src=path, rel=f"{prefix}/{rel}",
                            where=f"{where_root}/{rel}", label=label, status=status,
                            image_name=rel.rpartition("/")[2]))
        n += 1
    if n_unlabelled:
        batch.report.note(f"{where_root}: {n_unlabelled} images lie directly in the source folder, "
                          "not in a class folder; imported without a label")
    return n
