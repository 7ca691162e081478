"""`morphocluster user add|passwd|role|list` and `serve`'s app on a real project."""

from __future__ import annotations

from click.testing import CliRunner

from morphocluster.cli import main


def test_user_commands(project):
    root = str(project.root)
    r = CliRunner()
    res = r.invoke(main, ["user", "add", root, "ann", "--role", "admin", "--password", "pw-123456"])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["user", "add", root, "bob", "--generate"])
    assert res.exit_code == 0 and "with password" in res.output
    res = r.invoke(main, ["user", "add", root, "ann", "--password", "pw-123456"])
    assert res.exit_code != 0 and "already exists" in res.output
    res = r.invoke(main, ["user", "add", root, "cy", "--role", "viewer"], input="pw-abcdef\npw-abcdef\n")
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["user", "passwd", root, "bob", "--password", "other-pw"])
    assert res.exit_code == 0
    res = r.invoke(main, ["user", "passwd", root, "nobody", "--password", "other-pw"])
    assert res.exit_code != 0 and "no user named" in res.output
    res = r.invoke(main, ["user", "role", root, "bob", "viewer"])
    assert res.exit_code == 0
    res = r.invoke(main, ["user", "list", root])
    lines = res.output.split("\n")
    assert [ln.split()[:2] for ln in lines if ln] == [["ann", "admin"], ["bob", "viewer"], ["cy", "viewer"]]
    from morphocluster.users import authenticate

    assert authenticate(project, "bob", "other-pw")["role"] == "viewer"


def test_serve_needs_a_project(tmp_path):
    res = CliRunner().invoke(main, ["serve", str(tmp_path)])
    assert res.exit_code != 0 and "not a morphocluster project" in res.output
