"""EcoTaxa export: one `ecotaxa_export.tsv` (header + `[t]`/`[f]` type row), images beside it.

`out` ending in .zip is a ZIP, in .tsv (or .txt) the table alone as that file (no images); an
existing folder, a name without a suffix or `as_folder=True` (the CLI's `--out name/`) a folder.

Columns: object_id, img_file_name, the annotation (category as display name, `name<parent`
where a name is ambiguous; status validated|predicted; person; date YYYYMMDD; time HHMMSS;
hierarchy), then every metadata column that was imported, in the order, with the types and
the spelling the EcoTaxa tables gave (Meta "ecotaxa_columns"; names that differ only in case
are one column, as EcoTaxa reads them). Imported annotation columns that a label given
here makes stale (category id, e-mail, parent category) are kept but left empty; an object not
labelled here (`labels="all"`, or predicted with `status="validated"`) keeps the whole annotation
it was imported with. Metadata of other imports
(index.csv columns) follow as `object_<name>` text columns, since EcoTaxa needs a prefix.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from sqlalchemy import select

from ..labels import extra_images, object_labels
from ..store import ImportRun, Meta, Object
from .common import ExportError, ExportReport, FileSink, Sink, ecotaxa_datetime
from .names import DiskNames, safe_name

TSV = "ecotaxa_export.tsv"
META_KEY = "ecotaxa_columns"
OURS = ["object_id", "img_file_name", "object_annotation_category", "object_annotation_status",
        "object_annotation_person_name", "object_annotation_date", "object_annotation_time",
        "object_annotation_hierarchy"]
# well-known EcoTaxa fields that are numbers even when a table had no type row
NUMERIC = {"object_lat", "object_lon", "object_depth_min", "object_depth_max", "img_rank",
           "object_lat_end", "object_lon_end"}
PREFIXES = ("object_", "sample_", "acq_", "process_", "img_")
_BAD = re.compile(r"[^A-Za-z0-9_]+")
TABLE_SUFFIXES = (".tsv", ".txt")


def _type(name: str, t: str) -> str:
    if t in ("f", "n") or (not t and name in NUMERIC):
        return "[f]"
    return "[t]"


def columns(project) -> list[tuple[str, tuple[str, ...], str]]:
    """Return [(column, meta keys, type marker)] of the metadata columns to write.

    Keys that differ only in case (two imports spelling one column differently) share the
    column of the first; an object's value is read from whichever of them it has.
    """
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
    out: dict[str, list] = {}  # column, folded -> [column, keys, type]
    ours = set(OURS)
    for name, t in eco:
        fold = name.lower()
        if fold in ours or name.startswith("_"):
            continue
        if fold in out:
            out[fold][1].append(name)
            out[fold][2] = "[t]" if "[t]" in (out[fold][2], _type(fold, t)) else out[fold][2]
        else:
            out[fold] = [name, [name], _type(fold, t)]
    known = {k for _, keys, _ in out.values() for k in keys}
    for key in extra:
        if key in known or key.lower() in ours or key.startswith("_"):
            continue
        col = key if key.lower().startswith(PREFIXES) else "object_" + (_BAD.sub("_", key).strip("_") or "x")
        while col.lower() in out or col.lower() in ours:
            col += "_"
        out[col.lower()] = [col, [key], "[t]"]
    return [(col, tuple(keys), t) for col, keys, t in out.values()]


def _value(meta: dict, keys: tuple[str, ...]) -> str:
    for k in keys:
        if k in meta:
            return _text(meta[k])
    return ""


def _sink(out, with_images: bool, as_folder: bool):
    """The folder, ZIP or single file that `out` names."""
    out = Path(out)
    suffix = out.suffix.lower()
    if as_folder or out.is_dir() or not suffix:
        return Sink(out)
    if suffix == ".zip":
        return Sink(out)
    if suffix in TABLE_SUFFIXES:
        if with_images:
            raise ExportError(f"{out}: a {suffix} file holds no images; name a .zip file or a "
                              "folder to export the images too")
        return FileSink(out)
    raise ExportError(f"{out}: name a .zip file (table and images), a .tsv file (the table alone) "
                      "or a folder (ending with /)")


def export_ecotaxa(project, out, labels: str = "validated", with_images: bool = False,
                   as_folder: bool = False, status: str = "any") -> ExportReport:
    """Write the EcoTaxa table (and images) to the folder, ZIP or .tsv file `out`.

    An object imported with several images gets one row per image, img_rank 0, 1, ... in the
    order of the imported ranks (its other columns repeated), as EcoTaxa tables give them.
    Image names are unique ignoring case (`~2` suffixes); the names taken wait on disk.
    """
    report = ExportReport("ecotaxa", str(out))
    meta_cols = columns(project)
    header = OURS + [c for c, _, _ in meta_cols]
    types = ["[t]"] * len(OURS) + [t for _, _, t in meta_cols]
    # imported annotation columns belonged to the annotation that ours replaces: left empty
    plan = [(keys, "" if col.lower().startswith("object_annotation_") else None)
            for col, keys, _ in meta_cols]
    rank_at = next((i for i, (col, _, _) in enumerate(meta_cols) if col.lower() == "img_rank"), None)
    with _sink(out, with_images, as_folder) as sink, _names(sink, with_images) as taken, \
            sink.open_text(TSV) as f:
        w = csv.writer(f, delimiter="\t", lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
        w.writerow(header)
        w.writerow(types)
        for r in object_labels(project, labels, with_meta=True, status=status):
            meta = r.meta or {}
            date, time = ecotaxa_datetime(r.annotated_at)
            if r.label is not None:
                ours = [r.label, r.status, r.annotator or "", date, time, r.label_path]
                values = [fixed if fixed is not None else _value(meta, keys) for keys, fixed in plan]
            else:  # not sorted here: the annotation it was imported with, as it came
                folded = {k.lower(): v for k, v in meta.items() if k.lower() in OURS}
                ours = [_text(folded.get(col, "")) for col in OURS[2:]]
                values = [_value(meta, keys) for keys, _ in plan]
            images = [r.path] + [e["path"] for e in extra_images(meta)]
            for rank, path in enumerate(images):
                img = _image_name(r.object_id, rank, path, taken)
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


def _names(sink, with_images: bool):
    """The image names taken so far (a file beside the export), or nullcontext() without images."""
    from contextlib import nullcontext

    if not with_images:
        return nullcontext()
    names = DiskNames(sink.scratch("image-names.sqlite"))
    names.take(TSV)  # the table lies beside the images
    return names


def _image_name(object_id: str, rank: int, path: str | None, taken: DiskNames | None) -> str:
    """File name of an object's image in the export, unique ignoring case when `taken` is given
    (case-insensitive file systems)."""
    stem = safe_name(object_id) + (f"_{rank}" if rank else "")
    ext = _suffix(path)
    return taken.take(stem, ext) if taken is not None else stem + ext


def _suffix(path: str | None) -> str:
    base = (path or "").rsplit("/", 1)[-1]
    stem, dot, ext = base.rpartition(".")
    return f".{ext.lower()}" if dot and stem else ".jpg"


def _text(v) -> str:
    if v is None:
        return ""
    return v if isinstance(v, str) else str(v)
