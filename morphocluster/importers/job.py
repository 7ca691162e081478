"""An import as a background job: options checked, progress and cancel, the report kept as a file.

The web layer stores an upload in `uploads/up-<pid>-<token>/` (deleted when the job ends, done,
failed or cancelled) or names a path below the server's data root (`resolve_under`), then
starts the job "import" with `import_params`. An upload is recorded (ImportRun.source, the
report) by the file name its client gave, never by its server path. A data-root import is
refused whole if a link inside the folder leads out of the root (`links_outside`): the link is
the server's arrangement, not a bad row of the user's data, and one check before anything is
read covers every file the importers may open (images, tables, ZIPs, trees). `run_import`
writes the full report to the job's folder (`report.tsv`), which `read_report` gives back.
"""

from __future__ import annotations

import csv
import os
import re
import secrets
import shutil
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..images import is_image_name
from . import FORMATS, ImportFailed, import_sources
from .zipread import StreamedZip

REPORT_NAME = "report.tsv"
UPLOADS = "uploads"
WRITE_EVERY_S = 0.5  # progress written to the job row at most this often (a cancel is seen at once)
OPTIONS = ("labels_from_folders", "strict", "update", "link")
LIMITS = {"max_file_size": 1024, "max_pixels": 1000, "max_aspect_ratio": None, "max_zip_ratio": None}


@dataclass
class ImportDone:
    """What an import job did (its row shows `summary()`)."""

    added: int
    updated: int
    skipped: int
    problems: int
    import_id: int | None = None

    def summary(self) -> str:
        parts = [f"added {self.added:,}", *([f"updated {self.updated:,}"] if self.updated else []),
                 f"skipped {self.skipped:,} (already here)",
                 f"{self.problems:,} problem{'s' if self.problems != 1 else ''}"]
        run = f" (import #{self.import_id})" if self.import_id else ""
        return ", ".join(parts) + run + ("; listed in the report" if self.problems else "")


class BadPath(ValueError):
    """A data-root path that names nothing, or something outside the root."""


def resolve_under(root: str | Path, rel: str) -> Path:
    """Return the file or folder `rel` names below `root`; BadPath if it is absolute, climbs
    with '..', leads out of the root through a link, or does not exist."""
    rel = (rel or "").strip()
    if not rel:
        raise BadPath("name a folder or file below the data root")
    if os.path.isabs(rel) or rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        raise BadPath(f"{rel!r}: give a path relative to the data root, not an absolute one")
    if ".." in rel.replace("\\", "/").split("/"):
        raise BadPath(f"{rel!r}: '..' is not allowed; the path must stay below the data root")
    base = Path(root).resolve()
    path = (base / rel).resolve()
    if not path.is_relative_to(base):
        raise BadPath(f"{rel!r} leads outside the data root (through a symbolic link)")
    if not path.exists():
        raise BadPath(f"{rel!r}: no such folder or file below the data root")
    return path


def links_outside(root: str | Path, source: str | Path, limit: int = 10, progress=None) -> tuple[list[str], int]:
    """Return the first `limit` names (relative to `root`) of the entries below the folder an
    import of `source` reads (a table's own folder) whose real path lies outside `root`, and how
    many there are. Links that stay inside the root are followed, each folder looked into once;
    only links are resolved (the other entries' type comes from the directory listing)."""
    base = os.path.realpath(root)
    start = os.path.realpath(source)
    if os.path.isfile(start):
        if start.lower().endswith(".zip"):
            return [], 0  # its entries are unpacked as plain files (links in it are refused)
        start = os.path.dirname(start)
    rel = os.path.relpath(start, base)
    stack, seen, found, n = [(start, "" if rel == "." else rel.replace(os.sep, "/"))], set(), [], 0
    while stack:
        real, shown = stack.pop()
        if real in seen:
            continue
        seen.add(real)
        if progress is not None:
            progress(len(seen))
        try:
            entries = os.scandir(real)
        except OSError:
            continue  # an unreadable folder: the importer says so if it needs it
        with entries:
            for e in entries:
                name = f"{shown}/{e.name}" if shown else e.name
                if e.is_symlink():
                    target = os.path.realpath(e.path)
                    if not _inside(target, base):
                        n += 1
                        if len(found) < limit:
                            found.append(name)
                    elif os.path.isdir(target):
                        stack.append((target, name))
                elif e.is_dir(follow_symlinks=False):
                    stack.append((e.path, name))
    return found, n


def _inside(path: str, base: str) -> bool:
    return path == base or path.startswith(base.rstrip(os.sep) + os.sep)


def check_links(root: str | Path, source: str | Path, progress=None) -> None:
    """Raise ImportFailed naming the links below `source` that lead outside the data root."""
    found, n = links_outside(root, source, progress=progress)
    if n:
        more = f" and {n - len(found):,} more" if n > len(found) else ""
        raise ImportFailed(
            f"{n:,} entr{'ies' if n > 1 else 'y'} below this folder lead{'' if n > 1 else 's'} outside the "
            f"data root through symbolic links ({', '.join(found)}{more}); nothing was imported. Links "
            "that stay inside the data root are fine: replace these by copies, or move what they point "
            "to below the data root")


def sub_folders(root: str | Path, limit: int = 200) -> list[str]:
    """The names of the folders and ZIP files directly below the data root (for a listing)."""
    base = Path(root)
    try:
        entries = sorted(os.scandir(base), key=lambda e: e.name)
    except OSError:
        return []
    names = [e.name for e in entries if not e.name.startswith(".")
             and (e.is_dir() or e.name.lower().endswith(".zip"))]
    return names[:limit]


def _amount(name: str, text: str, base: int | None) -> float | None:
    """A positive number with an optional k, M or G suffix (`base` 1024 or 1000)."""
    text = (text or "").strip().upper().removesuffix("B").removesuffix("I")
    if not text:
        return None
    mult = {"K": base, "M": base ** 2, "G": base ** 3}.get(text[-1:], 1) if base else 1
    try:
        value = float(text[:-1] if mult > 1 else text) * mult
    except ValueError:
        value = 0
    if not value >= 1 or value == float("inf"):
        raise ValueError(f"{name}: {text[:40]!r} is not a positive number" + (" (e.g. 64M)" if base else ""))
    return int(value) if base else value


def import_params(form, prepare: bool = False, user_id: int | None = None) -> dict:
    """Return the job's import options from a form (or query) mapping; ValueError if one is bad.

    `prepare` chains features, the index and a first clustering round after the import."""
    fmt = (form.get("format") or "auto").strip()
    if fmt != "auto" and fmt not in FORMATS:
        raise ValueError(f"format: {fmt[:40]!r} is not one of auto, {', '.join(FORMATS)}")
    params = {"format": fmt, **{k: form.get(k) in ("1", "on", "true", "yes") for k in OPTIONS}}
    for key, base in LIMITS.items():
        value = _amount(key, form.get(key), base)
        if value is not None:
            params[key] = value
    if prepare:
        params["then"] = ["features", "index", {"kind": "cluster", "params": {"user_id": user_id}}]
    return params


def new_upload(project, filename: str) -> Path:
    """Return the path an upload is to be written to: a new folder below uploads/ (an upload
    left by a process that is gone is removed first) and a safe file name."""
    from ..leftovers import remove_leftovers

    up = project.root / UPLOADS
    up.mkdir(exist_ok=True)
    remove_leftovers(up, r"up-(\d+)-[0-9a-f]+")
    folder = up / f"up-{os.getpid()}-{secrets.token_hex(8)}"
    folder.mkdir()
    stem = re.sub(r"[^A-Za-z0-9_+-]+", "_", Path(filename or "").stem).strip("_")[:80] or "upload"
    return folder / f"{stem}.zip"


def upload_name(name: str | None, default: str = "upload.zip") -> str:
    """Return the upload's file name as its client gave it, fit to be recorded as text: no
    control characters (a newline would split ImportRun.source), at most 200 characters."""
    name = re.sub(r"[\x00-\x1f\x7f]+", " ", name or "").strip()[:200].strip()
    return name or default


def _replace(text: str, aliases: dict[str, str]) -> str:
    for old, new in aliases.items():
        text = text.replace(old, new)
    return text


def remove_upload(project, path: str | Path | None) -> None:
    """Delete an upload's folder (only ever one below the project's uploads/)."""
    if not path:
        return
    folder = Path(path).resolve().parent
    if folder.parent == (project.root / UPLOADS).resolve() and folder.name.startswith("up-"):
        shutil.rmtree(folder, ignore_errors=True)


def run_import(project, params: dict, progress) -> "ImportDone":
    """Run an import job: the source `params["source"]` (an upload when `params["upload"]`)
    with the CLI's options; write the full report to the job's folder; return the counts."""
    from ..jobs import job_dir

    source = Path(params["source"])
    upload = bool(params.get("upload"))
    # an upload is recorded and reported by the name its user gave it, never by its server path
    aliases = ({str(source): upload_name(params.get("name"), source.name), str(source.parent) + os.sep: ""}
               if upload else {})
    try:
        if params.get("data_root"):
            check_links(params["data_root"], source, progress=_Scanned(progress))
        limits = project.image_limits(**{k: params.get(k) for k in LIMITS})
        tell = _Progress(progress, _zip_images(source))
        try:
            report = import_sources(project, [source], format=params.get("format", "auto"),
                                    labels_from_folders=bool(params.get("labels_from_folders")),
                                    strict=bool(params.get("strict")), update=bool(params.get("update")),
                                    link=bool(params.get("link")) and not upload, limits=limits,
                                    progress=tell, aliases=aliases)
        except ImportFailed as exc:
            raise ImportFailed(_replace(str(exc), aliases)) from None
    finally:
        if upload:
            remove_upload(project, source)
    if aliases:
        report.entries = [(k, report.shown(w), report.shown(m)) for k, w, m in report.entries]
    job_id = getattr(progress, "job_id", None)
    if job_id is not None:
        folder = job_dir(project, job_id)
        folder.mkdir(parents=True, exist_ok=True)
        report.write_tsv(folder / REPORT_NAME)
    if report.failed and report.nothing_imported:
        raise ImportFailed(f"nothing was imported: {report.failed} problems (see the report)")
    return ImportDone(report.added, report.updated, report.skipped, report.failed, report.import_id)


def read_report(project, job_id: int, limit: int = 100) -> dict | None:
    """Return the first `limit` entries of a job's report (kind, file, line, message) and how
    many it holds, or None if it wrote none."""
    from ..jobs import job_dir

    path = job_dir(project, job_id) / REPORT_NAME
    if not path.is_file():
        return None
    rows, n, kinds = [], 0, {}
    with open(path, encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            n += 1
            kinds[row["kind"]] = kinds.get(row["kind"], 0) + 1
            if len(rows) < limit:
                rows.append(row)
    return {"rows": rows, "total": n, "kinds": kinds, "path": path}


def _zip_images(path: Path) -> int | None:
    """How many images a ZIP's directory lists (for the progress bar), else None."""
    if not (path.is_file() and path.suffix.lower() == ".zip"):
        return None
    try:
        with StreamedZip(path) as zf:
            return sum(1 for i in zf.members() if is_image_name(i.filename)) or None
    except (zipfile.BadZipFile, OSError):
        return None


class _Scanned:
    """The link check's folder count told to a job's progress (at most every WRITE_EVERY_S)."""

    def __init__(self, job_progress):
        self.job, self.last = job_progress, 0.0

    def __call__(self, n_folders: int) -> None:
        now = time.monotonic()
        if now - self.last >= WRITE_EVERY_S:
            self.last = now
            self.job(0.0, f"checking for links out of the data root: {n_folders:,} folders")


class _Progress:
    """The importer's progress(what, n, total) told to a job's progress(fraction, message)."""

    def __init__(self, job_progress, n_images: int | None):
        self.job, self.n_images, self.last = job_progress, n_images, 0.0

    def __call__(self, what: str, n: int, total: int | None = None) -> None:
        now = time.monotonic()
        if now - self.last < WRITE_EVERY_S:
            self.job(None, None)  # only look for a cancel
            return
        self.last = now
        if what == "unpacked":
            self.job(0.1 * n / max(total or 1, 1), f"unpacking: {n:,} of {total:,} entries")
        elif what == "read":
            self.job(None, f"reading: {n:,} objects found")
        else:
            frac = 0.1 + 0.85 * min(1.0, n / self.n_images) if self.n_images else None
            self.job(frac, f"checking images: {n:,} done")
