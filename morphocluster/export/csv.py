"""CSV export: object_id,label,label_path,status,annotator,annotated_at."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from ..labels import object_labels
from .common import ExportError, ExportReport, iso_utc

COLUMNS = ["object_id", "label", "label_path", "status", "annotator", "annotated_at"]


def export_csv(project, out, labels: str = "validated", with_images: bool = False,
               status: str = "any") -> ExportReport:
    """Write one row per object to the CSV file `out` (replaced atomically)."""
    out = Path(out)
    if out.is_dir():
        raise ExportError(f"{out}: is a folder, expected a .csv file name")
    if not out.parent.is_dir():
        raise ExportError(f"{out}: folder {out.parent} does not exist")
    report = ExportReport("csv", str(out))
    if with_images:
        report.warnings.append("csv holds no images; --with-images ignored")
    tmp = out.parent / f".{out.name}.tmp{os.getpid()}"
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(COLUMNS)
            for r in object_labels(project, labels, status=status):
                w.writerow([r.object_id, r.label or "", r.label_path or "", r.status or "",
                            r.annotator or "", iso_utc(r.annotated_at)])
                report.count(r.label is not None)
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return report
