"""Class-folder export: OUT/<label>/<object_id>.<ext>, plus OUT/index.csv mapping names back.

Folder and file names come from `names.safe_name` (reversible, collision-free); unlabelled
objects (labels='all') lie directly in OUT/, where folder-per-class loaders ignore them.
"""

from __future__ import annotations

import csv
from pathlib import PurePosixPath

from ..labels import object_labels
from .common import ExportReport, Sink
from .names import UniqueNames, safe_name

INDEX = "index.csv"


def export_imagefolder(project, out, labels: str = "validated",
                       with_images: bool = True) -> ExportReport:
    """Copy each object's image into the folder of its label (or a ZIP if out ends in .zip)."""
    report = ExportReport("imagefolder", str(out))  # always with images: with_images is implied
    folders: dict[str, str] = {}   # label -> folder name
    root = UniqueNames()  # folders and the files of unlabelled objects share OUT/
    root.take(INDEX)
    files: dict[str, UniqueNames] = {"": root}
    with Sink(out) as sink, sink.open_text(INDEX) as idx:
        w = csv.writer(idx, lineterminator="\n")
        w.writerow(["file", "object_id", "label", "label_path", "status"])
        for r in object_labels(project, labels):
            src = project.image_path(r.path) if r.path else None
            if src is None or not src.is_file():
                report.missing_image(r.object_id)
                continue
            folder = ""
            if r.label is not None:
                folder = folders.get(r.label)
                if folder is None:
                    folder = folders[r.label] = root.take(safe_name(r.label))
            ext = PurePosixPath(r.path).suffix.lower()
            names = files.setdefault(folder, UniqueNames())
            name = names.take(safe_name(r.object_id), ext)
            rel = f"{folder}/{name}" if folder else name
            sink.add_file(src, rel)
            w.writerow([rel, r.object_id, r.label or "", r.label_path or "", r.status or ""])
            report.n_images += 1
            report.count(r.label is not None)
    return report
