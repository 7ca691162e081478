"""Shared fixtures: paths to the real data in ../shared/data and fresh projects."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MORPHOCLUSTER_SHARED_DATA", REPO.parent / "shared" / "data"))


def pytest_collection_modifyitems(config, items):
    if not SHARED.is_dir():
        skip = pytest.mark.skip(reason=f"real data not found at {SHARED}")
        for item in items:
            if "shared_data" in getattr(item, "fixturenames", ()):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The read-only real plankton data (../shared/data)."""
    return SHARED


@pytest.fixture
def copy_shared(shared_data, tmp_path):
    """Copy a sub-folder or file of the shared data to a writable temporary place."""

    def _copy(rel: str) -> Path:
        src = shared_data / rel
        dst = tmp_path / "src" / Path(rel).name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst)
        else:
            shutil.copy2(src, dst)
        return dst

    return _copy


@pytest.fixture
def project(tmp_path):
    """A fresh, empty project backed by a real SQLite file."""
    from morphocluster.project import Project

    p = Project.create(tmp_path / "proj")
    yield p
    p.close()
