"""What a killed import or export left behind is removed by the next one, and only that."""

from __future__ import annotations

import os
import subprocess
import sys

from morphocluster.export import export
from morphocluster.importers import import_sources
from test_export import labelled  # noqa: F401


def _dead_pid() -> int:
    return int(subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True).stdout)


def test_an_import_removes_the_staging_folders_of_killed_imports(project, copy_shared):
    src = copy_shared("ifcb-sample/training_data")
    dead, live = _dead_pid(), os.getppid()  # the test runner's parent: alive
    project.cache_dir.mkdir(parents=True, exist_ok=True)
    (project.cache_dir / f"import-{dead}-abc123" / "x").mkdir(parents=True)
    (project.cache_dir / f"import-{dead}-abc123" / "x" / "img.png").write_bytes(b"28 MB of copies")
    (project.cache_dir / f"import-{live}-def456").mkdir()  # an import running right now
    (project.cache_dir / "thumbs").mkdir()
    r = import_sources(project, [src], progress=False)
    assert r.added == 30
    assert sorted(p.name for p in project.cache_dir.iterdir()) == sorted([f"import-{live}-def456", "thumbs"])


def test_an_export_removes_the_temporary_files_of_killed_exports(labelled, tmp_path):  # noqa: F811
    dead, out = _dead_pid(), tmp_path / "out"
    out.mkdir()
    (out / f".e.zip.tmp{dead}").write_bytes(b"20 MB of half a ZIP")
    (out / f".e.zip.tmp{dead}.d").mkdir()
    (out / f".other.zip.tmp{dead}").write_bytes(b"another output's: left alone")
    export(labelled, "ecotaxa", out / "e.zip")
    assert sorted(p.name for p in out.iterdir()) == sorted(["e.zip", f".other.zip.tmp{dead}"])


def test_image_folders_of_killed_imports_are_removed_and_committed_ones_kept(project, copy_shared):
    from sqlalchemy import select

    from morphocluster.store import Object

    src = copy_shared("ifcb-sample/training_data")
    import_sources(project, [src / "Mesodinium_major"], progress=False)
    with project.session() as s:
        kept = {p.split("/")[0] for p in s.scalars(select(Object.path))}
    dead, live = _dead_pid(), os.getppid()
    orphan = project.images_dir / f"20260101-000000-{dead}-abcdef"  # moved in, never committed
    (orphan / "x").mkdir(parents=True)
    (orphan / "x" / "a.png").write_bytes(b"400 images that no object names")
    running = project.images_dir / f"20260101-000000-{live}-fedcba"  # an import committing now
    running.mkdir()
    old = project.images_dir / "20250101-000000-abcdef"  # an earlier version's folder
    old.mkdir()
    r = import_sources(project, [src / "Strombidium-like"], progress=False)
    assert r.added > 0
    names = {p.name for p in project.images_dir.iterdir()}
    assert orphan.name not in names and {running.name, old.name} <= names and kept <= names
    with project.session() as s:  # every object's image is still there
        assert all(project.image_path(p).is_file() for p in s.scalars(select(Object.path)))
