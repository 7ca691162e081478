"""The wheel: frontend/ ships inside it, and an installed copy finds its templates."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    pytest.importorskip("hatchling")  # the build backend, from the test extras
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(REPO)], check=True, capture_output=True, text=True)
    [whl] = out.glob("morphocluster-*.whl")
    return whl


def test_wheel_holds_the_frontend_and_the_licence_but_no_shared_data(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    front = {n for n in names if n.startswith("morphocluster/frontend/")}
    templates = {p.relative_to(REPO / "frontend").as_posix() for p in (REPO / "frontend").rglob("*")
                 if p.is_file()}
    assert {f"morphocluster/frontend/{t}" for t in templates} == front
    assert any(n.startswith("morphocluster/frontend/static/htmx") for n in front)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not [n for n in names if "shared" in n.split("/") or n.startswith(("tests/", "data/"))]


def test_an_unpacked_wheel_serves_its_own_templates(wheel, tmp_path):
    zipfile.ZipFile(wheel).extractall(tmp_path / "site")
    code = ("import morphocluster, sys; from morphocluster.web import create_app; "
            "from morphocluster.project import Project; "
            f"p = Project.create({str(tmp_path / 'proj')!r}); "
            "app = create_app({'PROJECT': p, 'TESTING': True}); "
            "c = app.test_client(); r = c.get('/login'); "
            "print(morphocluster.__file__, morphocluster.frontend_dir(), r.status_code, "
            "c.get('/static/htmx-2.0.4.min.js').status_code)")
    env = {"PYTHONPATH": str(tmp_path / "site"), "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, check=True,
                         capture_output=True, text=True).stdout.split()
    site = str(tmp_path / "site")
    assert out[0].startswith(site) and out[1] == f"{site}/morphocluster/frontend"
    assert out[2:] == ["200", "200"]
