"""Import images into a project from folders, class folders, index.csv ZIPs or EcoTaxa exports.

`import_sources(project, sources)` is the library entry point; `detect(path)` names a source's
format. See `batch` for the all-or-nothing policy for the good rows.
"""

from __future__ import annotations

import fnmatch
import os
import tempfile
import zipfile
from pathlib import Path, PurePosixPath

from ..images import is_image_name
from ..leftovers import remove_leftovers, remove_orphan_image_folders
from .batch import SHARD_SIZE, Batch, Candidate  # noqa: F401  (re-exported)
from .report import ImportFailed, ImportReport
from .zipread import StreamedZip

__all__ = ["Batch", "Candidate", "FORMATS", "ImportFailed", "ImportReport", "detect", "import_sources"]

FORMATS = ("folder", "class-folders", "index-csv", "ecotaxa", "morphocluster-tree")


def is_ecotaxa_tsv(name: str) -> bool:
    """True for EcoTaxa table names: ecotaxa*.tsv or ecotaxa*.txt (case-insensitive)."""
    base = PurePosixPath(name.replace("\\", "/")).name.lower()
    return fnmatch.fnmatch(base, "ecotaxa*.tsv") or fnmatch.fnmatch(base, "ecotaxa*.txt")


def _detect_names(names, nested=None) -> str | None:
    """Return the format that file names show (read once: `names` may be a stream)."""
    bases: set[str] = set()
    zips, table, image = [], False, False
    for n in names:
        base = PurePosixPath(n).name.lower()
        if base in ("nodes.csv", "objects.csv", "index.csv"):
            bases.add(base)
        table = table or is_ecotaxa_tsv(n)
        image = image or is_image_name(n)
        if base.endswith(".zip"):
            zips.append(n)
    if {"nodes.csv", "objects.csv"} <= bases:
        return "morphocluster-tree"
    if "index.csv" in bases:
        return "index-csv"
    if table:
        return "ecotaxa"
    if nested is not None and any(nested(n) == "ecotaxa" for n in zips):
        return "ecotaxa"
    return "folder" if image else None


def _walk_files(root: Path):
    """Yield the relative POSIX names of the files below `root` (not hidden ones), streamed."""
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        rel = os.path.relpath(dirpath, root).replace(os.sep, "/")
        for fn in sorted(filenames):
            if not fn.startswith("."):
                yield fn if rel == "." else f"{rel}/{fn}"


def _detect_zip(zf: zipfile.ZipFile, depth: int = 0) -> str | None:
    infos = zf.members() if isinstance(zf, StreamedZip) else zf.infolist()
    inner_zips: dict[str, zipfile.ZipInfo] = {}  # a streamed ZIP cannot look a name up

    def names():
        for i in infos:
            if not i.is_dir():
                if i.filename.lower().endswith(".zip"):
                    inner_zips[i.filename] = i
                yield i.filename

    def nested(member):
        if depth >= 2:
            return None
        try:  # streamed, not read into memory: the entry may be large
            with zf.open(inner_zips[member]) as fh, zipfile.ZipFile(fh) as inner:
                return _detect_zip(inner, depth + 1)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError):
            return None

    return _detect_names(names(), nested)


def detect(path: str | Path, labels_from_folders: bool = False) -> str:
    """Return the format of a source (one of FORMATS); raise ImportFailed if none fits."""
    path = Path(path)
    fmt = None
    if not path.exists():
        raise ImportFailed(f"{path}: no such file or folder")
    if path.is_file():
        if path.suffix.lower() == ".zip":
            try:
                with StreamedZip(path) as zf:
                    fmt = _detect_zip(zf)
            except (zipfile.BadZipFile, OSError) as exc:
                raise ImportFailed(f"{path}: not a readable ZIP file ({exc})") from exc
        elif is_ecotaxa_tsv(path.name) or path.suffix.lower() == ".tsv":
            fmt = "ecotaxa"
        elif path.name.lower() == "index.csv":
            fmt = "index-csv"
    else:
        top = {p.name.lower() for p in path.iterdir()}
        if {"nodes.csv", "objects.csv"} <= top:
            fmt = "morphocluster-tree"
        elif "index.csv" in top:
            fmt = "index-csv"
        else:
            def nested(member):
                try:
                    with zipfile.ZipFile(path / member) as zf:
                        return _detect_zip(zf, 1)
                except (zipfile.BadZipFile, OSError):
                    return None

            fmt = _detect_names(_walk_files(path), nested)
    if fmt is None:
        raise ImportFailed(f"{path}: found no images, index.csv, EcoTaxa table (ecotaxa*.tsv) or "
                           "saved tree (nodes.csv + objects.csv) to import")
    if fmt == "folder" and labels_from_folders:
        fmt = "class-folders"
    return fmt


def _prefix(path: Path, used: set[str]) -> str:
    base = (path.stem if path.is_file() else path.name) or "source"
    base = base.replace("/", "_").strip(".") or "source"
    name, i = base, 1
    while name in used:
        i += 1
        name = f"{base}-{i}"
    used.add(name)
    return name


def import_sources(project, sources, format: str = "auto", labels_from_folders: bool = False,
                   strict: bool = False, progress: bool = True, update: bool = False,
                   limits=None, shard_size: int = SHARD_SIZE, link: bool = False,
                   aliases: dict[str, str] | None = None) -> ImportReport:
    """Import every source into `project` and return what was added, skipped and failed.

    Bad rows are reported (file and row) and skipped; the good objects of all sources are
    committed in one transaction. With `strict`, the first problem raises ImportFailed and
    nothing is written. Re-importing the same objects (same id, same image bytes) skips them;
    with `update` they take this source's imported labels, statuses and metadata instead (where
    the source gives them; also for sources without the images, e.g. an EcoTaxa table alone).
    `limits` (images.ImageLimits; default: the project's) refuses images and ZIP entries that are
    too large, too many pixels or too long, and entries that expand like ZIP bombs; where it is
    above the project's and objects were added, the project's limits are raised to it.
    Images are copied into `images/<import>/<shard>/`, `shard_size` per shard; with `link`
    they are hard-linked where the file system allows (the sources must then never be edited).
    `progress`: True for a bar on the terminal, or a callable(what, n, total) told how many
    entries were "unpacked", objects "read" and "checked" (it may raise to stop the import).
    `aliases` (text -> text) are replaced in what is stored of the report (ImportRun.source and
    .report): an upload's server path by the name its user gave it.
    """
    if isinstance(sources, (str, Path)):
        sources = [sources]
    if format != "auto" and format not in FORMATS:
        raise ImportFailed(f"unknown format {format!r}; choose one of auto, {', '.join(FORMATS)}")
    report = ImportReport(strict=strict, aliases=dict(aliases or {}))
    project.cache_dir.mkdir(parents=True, exist_ok=True)
    remove_leftovers(project.cache_dir, r"import-(\d+)-.*")  # of imports that were killed
    remove_orphan_image_folders(project)
    trees: list[Path] = []
    with tempfile.TemporaryDirectory(dir=project.cache_dir, prefix=f"import-{os.getpid()}-") as work:
        batch = Batch(project, report, Path(work), update=update, limits=limits or project.image_limits(),
                      shard_size=shard_size, link=link, progress=progress)
        try:
            _collect_all(sources, format, batch, labels_from_folders, strict, trees)
            if batch.n_found or report.failed or not trees:
                batch.commit()
        finally:
            batch.close()
    if report.added and limits is not None:
        raised = project.raise_limits(limits)  # thumbnails and features must take what came in
        if raised:
            report.note("the project's limits are raised to what this import allowed ("
                        + ", ".join(f"{k} {v:g}" for k, v in raised.items()) + ") in morphocluster.json")
    for src in trees:
        try:
            from ..export.tree import import_tree
        except ModuleNotFoundError as exc:
            raise ImportFailed(f"{src}: the morphocluster-tree format is not available in this build") from exc
        import_tree(project, src, report)
    return report


def _collect_all(sources, format, batch, labels_from_folders, strict, trees) -> None:
    """Stream the objects of every source into the batch; note the saved trees in `trees`."""
    report, used = batch.report, set()
    for src in sources:
        src = Path(src)
        try:
            fmt = _collect_source(src, format, batch, used, labels_from_folders)
        except ImportFailed as exc:
            if strict or len(sources) == 1:
                raise
            # one bad source among several: report it and import the others
            report.formats.pop(str(src), None)
            if str(src) in report.sources:
                report.sources.remove(str(src))
            text = str(exc).removeprefix(f"{src}: ")
            report.fail(str(src), f"{text}; source skipped")
            continue
        if fmt == "morphocluster-tree":
            trees.append(src)


def _collect_source(src: Path, format, batch, used, labels_from_folders) -> str:
    """Detect the format of `src` and add its objects to the batch; return the format."""
    report = batch.report
    fmt = detect(src, labels_from_folders) if format == "auto" else format
    if not src.exists():
        raise ImportFailed(f"{src}: no such file or folder")
    report.sources.append(str(src))
    report.formats[str(src)] = fmt
    if fmt == "morphocluster-tree":
        return fmt
    root = src
    if src.is_file() and src.suffix.lower() == ".zip":
        from .unpack import unpack_zip

        root = unpack_zip(src, batch.scratch("unpacked"), report)
    failed_before = report.failed
    found = _collect(fmt, root, batch, _prefix(src, used), str(src), labels_from_folders)
    if found == 0 and report.failed == failed_before:
        raise ImportFailed(f"{src}: found no objects to import as {fmt}")
    return fmt


def _collect(fmt, root, batch, prefix, where_root, labels_from_folders) -> int:
    if fmt in ("folder", "class-folders"):
        from . import folders

        if root.is_file():
            raise ImportFailed(f"{where_root}: a {fmt} source must be a folder or a ZIP")
        return folders.collect(root, batch, prefix, labels_from_folders or fmt == "class-folders",
                               where_root)
    if fmt == "index-csv":
        from . import index_csv

        return index_csv.collect(root, batch, prefix, where_root)
    if fmt == "ecotaxa":
        from . import ecotaxa

        return ecotaxa.collect(root, batch, prefix, where_root)
    raise ImportFailed(f"unknown format {fmt!r}")
