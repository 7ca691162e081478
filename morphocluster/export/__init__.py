"""Export labels (and images) to EcoTaxa, CSV, class folders, HDF5 or the original tree ZIP.

`export(project, format, out, labels='validated'|'all', status='any'|'validated',
with_images=False)` is the library entry point the CLI and the web UI call; it returns an
`ExportReport`. Every format streams the objects in chunks (see `labels.object_labels`), holds
nothing per object in memory, and writes `out` atomically.
"""

from __future__ import annotations

from pathlib import Path

from .common import ExportError, ExportReport  # noqa: F401  (re-exported)

FORMATS = ("ecotaxa", "csv", "imagefolder", "hdf5", "morphocluster-tree")
LABELS = ("validated", "all")
STATUSES = ("any", "validated")
SUFFIX = {"ecotaxa": ".zip", "csv": ".csv", "imagefolder": ".zip", "hdf5": ".h5",
          "morphocluster-tree": ".zip"}  # file name suffix a download should get


def export(project, format: str, out, labels: str = "validated", with_images: bool = False,
           overwrite: bool = False, status: str = "any", **options) -> ExportReport:
    """Export the project's labels in `format` to `out` and return what was written.

    labels='validated': only labelled objects (members of approved nodes); 'all' adds the
    unlabelled ones with an empty label. status='validated': only the labels a human saw; a
    predicted object counts as unlabelled (so it is left out, or with labels='all' written
    without a label). with_images copies images (ecotaxa; imagefolder always).
    An existing file `out` is replaced only with `overwrite` (an existing folder must be empty).
    """
    check_options(format, labels, status)
    if format == "ecotaxa":
        from .ecotaxa import export_ecotaxa as fn
    elif format == "csv":
        from .csv import export_csv as fn
    elif format == "imagefolder":
        from .imagefolder import export_imagefolder as fn
    elif format == "hdf5":
        from .hdf5 import export_hdf5 as fn
    else:
        from .tree import export_tree as fn
    out = Path(out)
    if out.exists() and not out.is_dir() and not overwrite:
        raise ExportError(f"{out}: file exists; choose another name, or replace it with --overwrite")
    try:
        report = fn(project, out, labels=labels, with_images=with_images, status=status, **options)
    except OSError as exc:
        raise ExportError(_os_message(out, exc)) from exc
    if format == "ecotaxa" and not with_images and report.n_objects:
        report.warnings.append("the table names image files that are not in the export; for an "
                               "EcoTaxa import with the images, export again with --with-images")
    if report.n_objects == 0:
        from sqlalchemy import func, select

        from ..store import Object

        with project.session() as s:
            empty = not s.scalar(select(func.count()).select_from(Object))
        seen = " (validated by a human, with --status validated)" if status == "validated" else ""
        hint = ("; the project holds no objects" if empty else
                f"; only objects in nodes{seen} are, unless --labels all" if format == "morphocluster-tree"
                and labels == "validated" else
                f"; only labelled objects{seen} are, unless --labels all" if labels == "validated" else "")
        report.warnings.append("no objects were exported" + hint)
    from ..labels import unnamed_approved

    with project.session() as s:
        n, nodes = unnamed_approved(s)
    if n and format != "morphocluster-tree":  # the tree keeps every node, named or not
        report.warnings.append(
            f"{n:,} objects lie in validated nodes that have no name ({', '.join(map(str, nodes[:8]))}"
            f"{', ...' if len(nodes) > 8 else ''}) and were exported without a label"
            f"{'' if labels == 'all' else ' (that is, not at all: only labelled objects are)'}; "
            "name those nodes or put them under a named node")
    return report


def check_options(format: str, labels: str, status: str = "any") -> None:
    """Raise ExportError for a format, labels or status value that is not offered."""
    if format not in FORMATS:
        raise ExportError(f"unknown export format {format!r}; choose one of {', '.join(FORMATS)}")
    if labels not in LABELS:
        raise ExportError(f"labels: {labels!r}, expected one of {', '.join(LABELS)}")
    if status not in STATUSES:
        raise ExportError(f"status: {status!r}, expected one of {', '.join(STATUSES)}")


def _os_message(out: Path, exc: OSError) -> str:
    detail = exc.strerror or str(exc)
    # name the file only when it is not the output or its temporary copy beside it
    if exc.filename and Path(exc.filename).parent != out.parent:
        detail += f": {exc.filename}"
    return f"{out}: cannot write the export ({detail})"
