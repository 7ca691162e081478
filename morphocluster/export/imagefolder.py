"""Class-folder export: OUT/<label>/<object_id>.<ext>, plus OUT/index.csv mapping names back.

Folder and file names come from `names.safe_name` (reversible, collision-free; the names taken
wait on disk, `names.DiskNames`); unlabelled objects (labels='all', or predicted ones with
status='validated') lie directly in OUT/, where folder-per-class loaders ignore them.
"""

from __future__ import annotations

import csv
from pathlib import PurePosixPath

from ..labels import object_labels
from .common import ExportReport, Sink
from .names import DiskNames, safe_name

INDEX = "index.csv"


def export_imagefolder(project, out, labels: str = "validated", with_images: bool = True,
                       status: str = "any") -> ExportReport:
    """Copy each object's image into the folder of its label (or a ZIP if out ends in .zip)."""
    report = ExportReport("imagefolder", str(out))  # always with images: with_images is implied
    folders: dict[str, str] = {}   # label -> folder name (one per label: few)
    with Sink(out) as sink, DiskNames(sink.scratch("names.sqlite")) as names, \
            sink.open_text(INDEX) as idx:
        names.take(INDEX)  # folders and the files of unlabelled objects share OUT/ ("")
        w = csv.writer(idx, lineterminator="\n")
        w.writerow(["file", "object_id", "label", "label_path", "status"])
        for r in object_labels(project, labels, status=status):
            src = project.image_path(r.path) if r.path else None
            if src is None or not src.is_file():
                report.missing_image(r.object_id)
                continue
            folder = ""
            if r.label is not None:
                folder = folders.get(r.label)
                if folder is None:
                    folder = folders[r.label] = names.take(safe_name(r.label))
            ext = PurePosixPath(r.path).suffix.lower()
            name = names.take(safe_name(r.object_id), ext, folder)
            rel = f"{folder}/{name}" if folder else name
            sink.add_file(src, rel)
            w.writerow([rel, r.object_id, r.label or "", r.label_path or "", r.status or ""])
            report.n_images += 1
            report.count(r.label is not None)
    return report
