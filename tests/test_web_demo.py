"""`morphocluster demo --no-serve`: the bundled sample becomes a clustered project with a user."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from morphocluster.cli import main


@pytest.mark.slow
def test_demo_builds_a_served_project(tmp_path):
    from morphocluster.project import Project
    from morphocluster.store import Node, Object
    from morphocluster.users import authenticate
    from morphocluster.web import create_app

    root = tmp_path / "demo"
    res = CliRunner().invoke(main, ["demo", "--no-serve", "--project", str(root)])
    assert res.exit_code == 0, res.output
    password = re.search(r"with password '([^']+)'", res.output).group(1)
    p = Project.open(root)
    with p.session() as s:
        assert s.scalar(select(func.count(Object.id))) == 300
        assert s.scalar(select(func.count(Node.id)).where(Node.status == "candidate")) > 0
    assert authenticate(p, "demo", password)["role"] == "admin"
    # a second call re-uses everything and only makes a new password
    res = CliRunner().invoke(main, ["demo", "--no-serve", "--project", str(root)])
    assert res.exit_code == 0 and "Importing" not in res.output
    new_password = re.search(r"with password '([^']+)'", res.output).group(1)
    assert authenticate(p, "demo", new_password) and not authenticate(p, "demo", password)
    c = create_app({"PROJECT": p}).test_client()
    token = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").get_data(as_text=True)).group(1)
    c.post("/login", data={"username": "demo", "password": new_password, "csrf_token": token})
    assert c.get("/validate/").status_code == 302
    svg = c.get("/map", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert "<svg" in svg and svg.count("<circle") == 300
    node_links = set(re.findall(r'href="/node/(\d+)"', svg))
    with p.session() as s:
        candidates = {str(i) for i in s.scalars(select(Node.id).where(Node.status == "candidate"))}
    assert node_links == candidates  # every cluster can be opened from the map
    p.close()


def test_demo_refuses_a_foreign_folder(tmp_path):
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    res = CliRunner().invoke(main, ["demo", "--no-serve", "--project", str(tmp_path / "x")])
    assert res.exit_code != 0 and "not empty" in res.output
