"""Remove what a killed run left behind: temporary files and folders named with its process id.

Imports stage their files in `cache/import-<pid>-*`, exports write `.<name>.tmp<pid>` beside
their output. A run removes them itself when it ends, even on an error; only a kill (SIGKILL,
power loss) leaves them. The next run removes those whose process is gone.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_leftovers(folder: Path, pattern: str) -> list[Path]:
    """Delete the entries of `folder` whose whole name matches `pattern` (its first group: the
    id of the process that made them) when that process is gone; return what was removed."""
    removed = []
    if not folder.is_dir():
        return removed
    for p in folder.iterdir():
        m = re.fullmatch(pattern, p.name)
        if m is None or int(m.group(1)) == os.getpid() or pid_alive(int(m.group(1))):
            continue
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
        removed.append(p)
    return removed


def remove_orphan_image_folders(project) -> list[Path]:
    """Delete image folders that a killed import moved in but never committed: named with the
    id of a process that is gone, and named by no import run (each committed run records its
    folder). Folders of earlier versions, without a process id, are left alone."""
    from sqlalchemy import select

    from .store import ImportRun

    folders = [p for p in project.images_dir.iterdir() if p.is_dir()] if project.images_dir.is_dir() else []
    gone = [p for p in folders if (m := re.fullmatch(r"\d{8}-\d{6}-(\d+)-[0-9a-f]{6}", p.name))
            and int(m.group(1)) != os.getpid() and not pid_alive(int(m.group(1)))]
    if not gone:
        return []
    with project.session() as s:
        recorded = {(r or {}).get("images_folder") for r in s.scalars(select(ImportRun.report))}
    removed = [p for p in gone if p.name not in recorded]
    for p in removed:
        shutil.rmtree(p, ignore_errors=True)
    return removed
