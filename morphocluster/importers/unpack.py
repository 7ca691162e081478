"""Unpack ZIP sources safely into the import's work folder (no zip-slip, no links, no bombs).

Only images (by extension or by their first bytes) and the tables an importer reads
(.tsv, .txt, .csv, nested .zip) are extracted; anything else is counted and left in the ZIP.
Sizes are checked from the ZIP directory (an image above `max_file_size`, an entry expanding
more than `max_zip_ratio`) and again while copying, since a directory can lie.
"""

from __future__ import annotations

import posixpath
import stat
import zipfile
from pathlib import Path

from ..images import ImageLimits, has_image_signature, is_image_name, mib
from .report import ImportFailed, ImportReport
from .zipread import StreamedZip

TABLE_SUFFIXES = (".tsv", ".txt", ".csv", ".zip")
RATIO_FLOOR = 1 << 20  # entries smaller than this are never taken for bombs
CHUNK = 1 << 20


def safe_member_name(name: str) -> str | None:
    """Return the normalised member path, or None if it would escape the target folder."""
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    norm = posixpath.normpath(name)
    if norm == ".." or norm.startswith("../") or norm.startswith("/"):
        return None
    return norm


def _kind(zf: zipfile.ZipFile, info: zipfile.ZipInfo) -> str | None:
    """Return "image", "table" or None (not needed: left in the ZIP)."""
    if is_image_name(info.filename):
        return "image"
    if info.filename.lower().endswith(TABLE_SUFFIXES):
        return "table"
    try:
        with zf.open(info) as fh:
            head = fh.read(16)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError):
        return None
    return "image" if has_image_signature(head) else None


def _directory_problem(info: zipfile.ZipInfo, kind: str, limits: ImageLimits) -> str | None:
    """Return why the ZIP directory's sizes refuse this entry, or None."""
    if kind == "image" and info.file_size > limits.max_file_size:
        return (f"image entry is {mib(info.file_size)} uncompressed, above the file size limit of "
                f"{mib(limits.max_file_size)} (raise it with `import --max-file-size`)")
    ratio = info.file_size / max(info.compress_size, 1)
    if info.file_size > RATIO_FLOOR and ratio > limits.max_zip_ratio:
        return (f"entry expands {ratio:.0f}:1 ({mib(info.compress_size)} to {mib(info.file_size)}), more "
                f"than the limit of {limits.max_zip_ratio:g}:1 (a ZIP bomb? raise it with "
                "`import --max-zip-ratio`)")
    return None


def _copy(zf, info, target: Path, cap: int) -> str | None:
    """Copy one entry to `target`, at most `cap` bytes; return a problem (target removed) or None."""
    n = 0
    try:
        with zf.open(info) as src, open(target, "wb") as out:
            while chunk := src.read(CHUNK):
                n += len(chunk)
                if n > cap:
                    break
                out.write(chunk)
    except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        target.unlink(missing_ok=True)
        return f"cannot extract ZIP entry ({exc})"
    if n > cap:
        target.unlink(missing_ok=True)
        return (f"entry holds more than {mib(cap)}, more than its ZIP directory says or the limit "
                "allows (raise it with `import --max-file-size`)")
    return None


def unpack_zip(path: Path, dest: Path, report: ImportReport, limits: ImageLimits | None = None) -> Path:
    """Extract the images and tables of `path` into `dest` and return `dest`.

    Bad entries are reported and left out. An import's batch puts its limits and a `refused`
    dict on the report: refused entries are then recorded there (target path -> (where,
    message)) and reported by the batch, once, on the row that names them or on their own.
    """
    limits = limits or getattr(report, "limits", None) or ImageLimits()
    refused = getattr(report, "refused", None)
    try:
        zf = StreamedZip(path)  # a million entries: their directory is not held in memory
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportFailed(f"{path}: not a readable ZIP file ({exc})") from exc
    dest.mkdir(parents=True, exist_ok=True)
    n_left = 0
    tell = getattr(report, "progress", None)  # an import job's: it may raise to cancel
    with zf:
        for i, info in enumerate(_members(zf, path)):
            if tell is not None and i % 100 == 0:
                tell("unpacked", i, zf.n_entries)
            if info.is_dir() or info.filename.startswith("__MACOSX/"):
                continue
            where = f"{path.name}:{info.filename}"
            rel = safe_member_name(info.filename)
            if rel is None:
                report.fail(where, "ZIP entry path escapes the target folder (zip-slip); entry skipped")
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                report.fail(where, "ZIP entry is a symbolic link; entry skipped")
                continue
            kind = _kind(zf, info)
            if kind is None:
                n_left += 1
                continue
            target = dest / rel
            problem = _directory_problem(info, kind, limits)
            if problem is None:
                target.parent.mkdir(parents=True, exist_ok=True)
                cap = min(limits.max_file_size, info.file_size) if kind == "image" else info.file_size
                problem = _copy(zf, info, target, cap)
            if problem is None:
                continue
            if refused is not None:
                refused[str(target)] = (where, problem)
            else:
                report.fail(where, f"{problem}; entry skipped")
    if n_left:
        report.note(f"{path}: {n_left} {'entry that is' if n_left == 1 else 'entries that are'} neither "
                    f"{'an image nor a table was' if n_left == 1 else 'images nor tables were'} not extracted")
    return dest


def _members(zf: StreamedZip, path: Path):
    try:
        yield from zf.members()
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportFailed(f"{path}: the ZIP directory cannot be read ({exc})") from exc
