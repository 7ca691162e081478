"""A throw-away copy of a project to simulate on, so the real annotations are never touched."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path

from ..project import CONFIG_NAME, Project, ProjectError


def work_copy(project, dest: Path) -> Project:
    """Copy the database (consistently, with SQLite's backup) and config; link the features
    and the images (read only: the learn job reads them)."""
    if project.config.get("database_url"):
        raise ProjectError(f"{project.root}: simulating on a copy needs an SQLite project; "
                           "use --in-place on a project you can spare")
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    src = sqlite3.connect(str(project.root / "project.sqlite"))
    dst = sqlite3.connect(str(dest / "project.sqlite"))
    with dst:
        src.backup(dst)
    src.close()
    dst.close()
    for sub in ("index", "cache"):
        (dest / sub).mkdir()
    try:
        os.symlink(project.images_dir.resolve(), dest / "images", target_is_directory=True)
    except OSError:
        (dest / "images").mkdir()
    (dest / "features").mkdir()
    for f in project.features_dir.iterdir():
        target = dest / "features" / f.name
        try:
            os.symlink(f.resolve(), target)
        except OSError:
            shutil.copy2(f, target)
    (dest / CONFIG_NAME).write_text(json.dumps(project.config, indent=2), encoding="utf-8")
    return Project.open(dest)
