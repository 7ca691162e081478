"""EcoTaxa export: one `ecotaxa_export.tsv` (header + `[t]`/`[f]` type row), images beside it.

Columns: object_id, img_file_name, the annotation (category as display name, `name<parent`
where a name is ambiguous; status validated|predicted; person; date YYYYMMDD; time HHMMSS;
hierarchy), then every metadata column that was imported, in the order and with the types the
EcoTaxa tables gave (Meta "ecotaxa_columns"). Imported annotation columns that a label given
here makes stale (category id, e-mail, parent category) are kept but left empty; an object not
labelled here (`labels="all"`) keeps the whole annotation it was imported with. Metadata of other imports
(index.csv columns) follow as `object_<name>` text columns, since EcoTaxa needs a prefix.
"""

from __future__ import annotations

import csv
import re

from sqlalchemy import select

from ..labels import extra_images, object_labels
from ..store import ImportRun, Meta, Object
from .common import ExportReport, Sink, ecotaxa_datetime
from .names import safe_name

TSV = "ecotaxa_export.tsv"
META_KEY = "ecotaxa_columns"
OURS = ["object_id", "img_file_name", "object_annotation_category", "object_annotation_status",
        "object_annotation_person_name", "object_annotation_date", "object_annotation_time",
        "object_annotation_hierarchy"]
# well-known EcoTaxa fields that are numbers even when a table had no type row
NUMERIC = {"object_lat", "object_lon", "object_depth_min", "object_depth_max", "img_rank",
           "object_lat_end", "object_lon_end"}
PREFIXES = ("object_", "sample_", "acq_", "process_", "img_")
_BAD = re.compile(r"[^a-z0-9_]+")


def _type(name: str, t: str) -> str:
    if t in ("f", "n") or (not t and name in NUMERIC):
        return "[f]"
    return "[t]"


def columns(project) -> list[tuple[str, str, str]]:
    """Return [(column, meta key or None, type marker)] of the metadata columns to write."""
    with project.session() as s:
        row = s.get(Meta, META_KEY)
        eco = [(n, t or "") for n, t in (row.value if row is not None else [])]
        runs = s.execute(select(ImportRun.id, ImportRun.format)).all()
        other_runs = [r.id for r in runs if "ecotaxa" not in (r.format or "")]
        extra: dict[str, None] = {}
        if other_runs or not runs:
            q = select(Object.meta).where(Object.meta.is_not(None))
            if runs:
                q = q.where((Object.import_id.in_(other_runs)) | Object.import_id.is_(None))
            for (meta,) in s.execute(q.execution_options(yield_per=5000)):
                if meta:  # JSON null as well as SQL NULL
                    extra.update(dict.fromkeys(meta))
    out: list[tuple[str, str, str]] = []
    seen = set(OURS)
    for name, t in eco:
        if name in seen or name.startswith("_"):
            continue
        seen.add(name)
        out.append((name, name, _type(name, t)))
    for key in extra:
        if key in seen or key.startswith("_"):
            continue
        col = key if key.startswith(PREFIXES) else "object_" + (_BAD.sub("_", key.lower()).strip("_") or "x")
        while col in seen:
            col += "_"
        seen.add(col)
        seen.add(key)
        out.append((col, key, "[t]"))
    return out


def export_ecotaxa(project, out, labels: str = "validated", with_images: bool = False) -> ExportReport:
    """Write the EcoTaxa table (and images) to the folder or ZIP `out`.

    An object imported with several images gets one row per image, img_rank 0, 1, ... in the
    order of the imported ranks (its other columns repeated), as EcoTaxa tables give them.
    """
    report = ExportReport("ecotaxa", str(out))
    meta_cols = columns(project)
    header = OURS + [c for c, _, _ in meta_cols]
    types = ["[t]"] * len(OURS) + [t for _, _, t in meta_cols]
    # imported annotation columns belonged to the annotation that ours replaces: left empty
    plan = [(key, "" if col.startswith("object_annotation_") else None) for col, key, _ in meta_cols]
    rank_at = next((i for i, (col, _, _) in enumerate(meta_cols) if col == "img_rank"), None)
    taken: set[int] = set()
    with Sink(out) as sink, sink.open_text(TSV) as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        w.writerow(header)
        w.writerow(types)
        for r in object_labels(project, labels, with_meta=True):
            meta = r.meta or {}
            date, time = ecotaxa_datetime(r.annotated_at)
            if r.label is not None:
                ours = [r.label, r.status, r.annotator or "", date, time, r.label_path]
                values = [fixed if fixed is not None else _text(meta.get(key, "")) for key, fixed in plan]
            else:  # not sorted here: the annotation it was imported with, as it came
                ours = [_text(meta.get(col, "")) for col in OURS[2:]]
                values = [_text(meta.get(key, "")) for key, _ in plan]
            images = [r.path] + [e["path"] for e in extra_images(meta)]
            for rank, path in enumerate(images):
                img = _image_name(r.object_id, rank, path, taken if with_images else None)
                if with_images:
                    src = project.image_path(path) if path else None
                    if src is not None and src.is_file():
                        sink.add_file(src, img)
                        report.n_images += 1
                    else:
                        report.missing_image(r.object_id)
                if rank_at is not None:
                    values[rank_at] = str(rank)
                w.writerow([r.object_id, img, *ours] + values)
            report.count(r.label is not None)
    if with_images and report.n_missing_images:
        report.warnings.append(f"{report.n_missing_images} images are missing; their rows name a "
                               "file that is not in the export")
    return report


def _image_name(object_id: str, rank: int, path: str | None, taken: set | None) -> str:
    """File name of an object's image in the export, unique ignoring case when `taken` is given."""
    stem = safe_name(object_id) + (f"_{rank}" if rank else "")
    ext = _suffix(path)
    img, n = stem + ext, 1
    while taken is not None and hash(img.casefold()) in taken:  # case-insensitive file systems
        n += 1
        img = f"{stem}~{n}{ext}"
    if taken is not None:
        taken.add(hash(img.casefold()))
    return img


def _suffix(path: str | None) -> str:
    base = (path or "").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    return f".{ext.lower()}" if dot and stem else ".jpg"


def _text(v) -> str:
    if v is None:
        return ""
    return v if isinstance(v, str) else str(v)
