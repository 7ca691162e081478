"""Unpack ZIP sources safely into the import's work folder (no zip-slip, no links)."""

from __future__ import annotations

import posixpath
import shutil
import stat
import zipfile
from pathlib import Path

from .report import ImportFailed, ImportReport


def safe_member_name(name: str) -> str | None:
    """Return the normalised member path, or None if it would escape the target folder."""
    name = name.replace("\\", "/")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        return None
    norm = posixpath.normpath(name)
    if norm == ".." or norm.startswith("../") or norm.startswith("/"):
        return None
    return norm


def unpack_zip(path: Path, dest: Path, report: ImportReport) -> Path:
    """Extract `path` into `dest` and return `dest`; bad entries are reported and left out."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportFailed(f"{path}: not a readable ZIP file ({exc})") from exc
    dest.mkdir(parents=True, exist_ok=True)
    with zf:
        for info in zf.infolist():
            if info.is_dir():
                continue
            where = f"{path.name}:{info.filename}"
            rel = safe_member_name(info.filename)
            if rel is None:
                report.fail(where, "ZIP entry path escapes the target folder (zip-slip); entry skipped")
                continue
            if stat.S_ISLNK(info.external_attr >> 16):
                report.fail(where, "ZIP entry is a symbolic link; entry skipped")
                continue
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                with zf.open(info) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out, 1 << 20)
            except (zipfile.BadZipFile, OSError, EOFError) as exc:
                target.unlink(missing_ok=True)
                report.fail(where, f"cannot extract ZIP entry ({exc}); entry skipped")
    return dest


def zip_names(path: Path) -> list[str]:
    """Member names of a ZIP file (for format detection)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return [i.filename for i in zf.infolist() if not i.is_dir()]
    except (zipfile.BadZipFile, OSError) as exc:
        raise ImportFailed(f"{path}: not a readable ZIP file ({exc})") from exc
