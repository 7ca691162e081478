"""Several projects on one server: the project list, new projects from the browser, a role per
project, single-project folders whose users are copied in, the CLI (real SQLite files, werkzeug's
test client against the server's dispatcher)."""

from __future__ import annotations

import logging
import re

import pytest
from click.testing import CliRunner
from werkzeug.test import Client

from morphocluster.cli import main
from morphocluster.project import Project
from morphocluster.server import Server
from morphocluster.users import SERVER_HASH, add_user, authenticate, list_users
from morphocluster.web.server import COOKIE, create_server_app

PASSWORD = "secret-pw"


def token_of(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(r'"X-CSRFToken": "([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


def log_in(app, name: str, password: str = PASSWORD) -> tuple[Client, str]:
    """Return a client logged in at the server's root as `name`, and its CSRF token."""
    c = Client(app)
    resp = c.post("/login", data={"username": name, "password": password,
                                  "csrf_token": token_of(c.get("/login").get_data(as_text=True))})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return c, token_of(c.get("/").get_data(as_text=True))


def make_server(root, names=("a", "b", "c")) -> Server:
    server = Server.create(root)
    for n in names:
        Project.create(root / n).close()
    server.add_user("boss", PASSWORD, admin=True)
    return server


@pytest.fixture
def server(tmp_path):
    s = make_server(tmp_path / "root")
    for name in ("ann", "nobody"):
        s.add_user(name, PASSWORD)
    s.set_role("ann", "a", "viewer")
    s.set_role("ann", "b", "admin")
    yield s
    s.close()


@pytest.fixture
def app(server):
    return create_server_app(server, {"TESTING": True}, {"TESTING": True, "DATA_ROOT": "/srv/data"})


def _listed(html: str) -> list[str]:
    return re.findall(r'<a href="/p/([^/"]+)/">', html)


def test_project_list_shows_only_projects_with_a_role(server, app, shared_data):
    from morphocluster.importers import import_sources

    src = shared_data / "planktonset-dev" / "copepod_calanoid"
    import_sources(server.project("a"), [src], progress=False)
    n = len(list(src.iterdir()))

    c, _ = log_in(app, "ann")
    html = c.get("/").get_data(as_text=True)
    assert _listed(html) == ["a", "b"]
    row = html[html.index('href="/p/a/"'):].split("</tr>")[0]
    assert f"<td>viewer</td>" in row and f">{n:,}</td>" in row and "0.0 %" in row
    assert c.get("/p/a/").status_code == 200 and c.get("/p/c/").status_code == 404

    boss, _ = log_in(app, "boss")
    assert _listed(boss.get("/").get_data(as_text=True)) == ["a", "b", "c"]
    nobody, _ = log_in(app, "nobody")
    html = nobody.get("/").get_data(as_text=True)
    assert _listed(html) == [] and "No project has given you a role yet" in html


def test_create_a_project_from_the_browser(server, app):
    boss, token = log_in(app, "boss")
    form = boss.get("/new").get_data(as_text=True)
    assert 'name="database_url"' in form
    resp = boss.post("/new", data={"name": "Tara Oceans 2024!", "csrf_token": token})
    assert resp.status_code == 303 and resp.headers["Location"] == "/"
    assert (server.root / "tara-oceans-2024" / "morphocluster.json").is_file()
    html = boss.get("/").get_data(as_text=True)
    assert "Created project tara-oceans-2024" in html and "tara-oceans-2024" in _listed(html)
    assert boss.get("/p/tara-oceans-2024/").status_code == 200  # a server admin is admin there

    for data, says in (({"name": "tara oceans 2024"}, "already exists"),
                       ({"name": "../.."}, "needs letters or digits"),
                       ({"name": "x", "database_url": "mysql://h/db"}, "postgresql://")):
        resp = boss.post("/new", data={**data, "csrf_token": token})
        assert resp.status_code == 400 and says in resp.get_data(as_text=True)
    assert not (server.root / "x").exists()
    assert boss.post("/new", data={"name": "no-token"}).status_code == 400
    assert not (server.root / "no-token").exists()

    ann, token = log_in(app, "ann")
    assert ann.get("/new").status_code == 403
    assert ann.post("/new", data={"name": "mine", "csrf_token": token}).status_code == 403
    assert not (server.root / "mine").exists()
    assert "tara-oceans-2024" not in _listed(ann.get("/").get_data(as_text=True))


def test_a_role_per_project(server, app):
    ann, token = log_in(app, "ann")
    assert ann.get("/p/a/").status_code == 200
    assert ann.post("/p/a/undo", data={"csrf_token": token}).status_code == 403  # viewer on a
    assert ann.get("/p/a/events").status_code == 403
    assert ann.get("/p/b/events").status_code == 200  # admin on b
    page = ann.get("/p/b/").get_data(as_text=True)
    assert '<strong>b</strong>' in page and 'href="/" title="all projects"' in page
    assert 'href="/p/b/validate/"' in page and 'href="/p/b/static/style.css"' in page

    # the project keeps a row standing in for her (its decisions reference it), no password
    rows = {u["username"]: u for u in list_users(server.project("b"))}
    assert rows["ann"]["role"] == "admin"
    assert {u["username"]: u["role"] for u in list_users(server.project("a"))}["ann"] == "viewer"
    assert authenticate(server.project("b"), "ann", SERVER_HASH) is None

    # a project's users page is the server's; only server admins manage users
    assert ann.get("/p/b/users/").status_code == 403 and ann.get("/users/").status_code == 403
    boss, btoken = log_in(app, "boss")
    resp = boss.get("/p/b/users/")
    assert resp.status_code == 303 and resp.headers["Location"] == "/users/"
    html = boss.get("/users/").get_data(as_text=True)
    assert 'aria-label="role of ann on a"' in html

    # a new role ends her sessions; without one the project is gone for her
    resp = boss.post("/users/role", data={"username": "ann", "project": "a", "role": "",
                                          "csrf_token": btoken})
    assert resp.status_code == 303
    assert ann.get("/p/b/").status_code == 302  # logged out: to the login page
    ann, _ = log_in(app, "ann")
    assert _listed(ann.get("/").get_data(as_text=True)) == ["b"]
    assert ann.get("/p/a/").status_code == 404


def test_logout_in_a_project_ends_the_server_session(server, app):
    ann, token = log_in(app, "ann")
    thief = Client(app)
    thief.set_cookie(COOKIE, ann.get_cookie(COOKIE).value)
    assert thief.get("/p/b/").status_code == 200
    resp = ann.post("/p/b/logout", data={"csrf_token": token})
    assert resp.status_code == 302 and resp.headers["Location"] == "/login"
    assert thief.get("/p/b/").status_code == 302 and thief.get("/").status_code == 302
    resp = ann.get("/p/b/validate/")
    assert resp.status_code == 302 and resp.headers["Location"] == "/login?next=/p/b/validate/?"
    ann, _ = log_in(app, "ann")
    assert ann.get("/p/b/login").headers["Location"] == "/login"  # logins happen at the root


def test_project_apps_get_the_data_root(server, app):
    assert app.project_app("a").config["DATA_ROOT"] == "/srv/data"
    assert app.project_app("a") is app.project_app("a")  # made once


def _single_project(root, users: dict) -> None:
    p = Project.create(root)
    for name, (password, role) in users.items():
        add_user(p, name, password, role if role != "disabled" else "annotator")
        if role == "disabled":
            from morphocluster.users import set_role

            set_role(p, name, "disabled")
    p.close()


def test_a_single_project_folder_put_under_a_root(tmp_path, caplog):
    root = tmp_path / "root"
    _single_project(root / "old", {"ada": ("ada-old-pw", "admin"), "ann": ("ann-old-pw", "annotator"),
                                   "dan": ("dan-old-pw", "disabled")})
    server = Server.create(root)
    server.add_user("ann", "ann-server-pw")  # another ann, already on the server
    server.add_user("boss", PASSWORD, admin=True)
    app = create_server_app(server, {"TESTING": True}, {"TESTING": True})
    with caplog.at_level(logging.WARNING, logger="morphocluster.server"):
        ada, _ = log_in(app, "ada", "ada-old-pw")  # her own password, at the root
    assert _listed(ada.get("/").get_data(as_text=True)) == ["old"]
    assert ada.get("/p/old/users/").status_code == 403  # admin of old, not of the server
    assert ada.get("/p/old/events").status_code == 200
    assert "ann: the server already has a user of that name" in caplog.text

    ann, _ = log_in(app, "ann", "ann-server-pw")  # the server's ann kept, no role on old
    assert _listed(ann.get("/").get_data(as_text=True)) == []
    assert ann.get("/p/old/").status_code == 404
    dan = Client(app)
    token = token_of(dan.get("/login").get_data(as_text=True))
    resp = dan.post("/login", data={"username": "dan", "password": "dan-old-pw", "csrf_token": token})
    assert resp.status_code == 401  # disabled there: not copied, cannot log in
    names = {u["username"] for u in server.list_users()}
    assert names == {"ada", "ann", "boss"}  # dan was disabled there: not copied
    boss, _ = log_in(app, "boss")
    assert "kept the server&#39;s, with no role on old" in boss.get("/").get_data(as_text=True)
    server.close()

    # `serve PROJECT` is unchanged: the folder's own users, their own passwords
    p = Project.open(root / "old")
    assert authenticate(p, "ada", "ada-old-pw")["role"] == "admin"
    assert authenticate(p, "ann", "ann-old-pw")["role"] == "annotator"
    p.close()


def test_cli_init_server_and_users(tmp_path):
    r = CliRunner()
    root = tmp_path / "root"
    _single_project(root / "old", {"ada": ("ada-old-pw", "admin")})
    res = r.invoke(main, ["init-server", str(root)])
    assert res.exit_code == 0 and "1 project (old)" in res.output and "user add" in res.output
    res = r.invoke(main, ["user", "add", str(root), "boss", "--role", "admin", "--password", PASSWORD])
    assert res.exit_code == 0 and "server admin boss" in res.output
    res = r.invoke(main, ["user", "add", str(root), "vic", "--project", "old", "--role", "viewer",
                          "--password", PASSWORD])
    assert res.exit_code == 0, res.output
    res = r.invoke(main, ["user", "list", str(root)])
    lines = {ln.split()[0]: ln.split() for ln in res.output.splitlines()}
    assert lines["ada"][1] == "user" and lines["ada"][-1] == "old:admin"
    assert lines["boss"][1] == "server-admin" and lines["vic"][-1] == "old:viewer"
    assert r.invoke(main, ["user", "role", str(root), "vic", "none", "--project", "old"]).exit_code == 0
    res = r.invoke(main, ["user", "role", str(root), "boss", "annotator"])
    assert res.exit_code != 0 and "last server admin" in res.output
    res = r.invoke(main, ["user", "role", str(root), "vic", "admin", "--project", "nope"])
    assert res.exit_code != 0 and "no project named 'nope'" in res.output
    server = Server.open(root)
    assert server.list_users()[-1]["roles"] == {} and server.authenticate("vic", PASSWORD)
    server.close()
    res = r.invoke(main, ["user", "add", str(root / "old"), "x", "--project", "old", "--password", PASSWORD])
    assert res.exit_code != 0 and "--project is for a server root" in res.output

    res = r.invoke(main, ["serve", "--help"])
    assert "server root" in res.output and "--data-root" in res.output
    res = r.invoke(main, ["serve", str(tmp_path / "nothing")])
    assert res.exit_code != 0 and "not a morphocluster project" in res.output
    assert "init-server" in res.output
    res = r.invoke(main, ["init-server", str(root / "old")])
    assert res.exit_code != 0 and "is a project" in res.output


def test_a_cookie_of_one_server_does_not_open_another(tmp_path):
    """Each server root has its own session secret (in server.sqlite), kept across restarts."""
    a, b = make_server(tmp_path / "one", names=("a",)), make_server(tmp_path / "two", names=("a",))
    app_a, app_b = create_server_app(a, {"TESTING": True}), create_server_app(b, {"TESTING": True})
    c, _ = log_in(app_a, "boss")
    other = Client(app_b)
    other.set_cookie(COOKIE, c.get_cookie(COOKIE).value)
    assert other.get("/p/a/").status_code == 302 and other.get("/").status_code == 302
    again = Server.open(tmp_path / "one")
    assert again.secret_key == a.secret_key != b.secret_key
    restarted = Client(create_server_app(again, {"TESTING": True}))
    restarted.set_cookie(COOKIE, c.get_cookie(COOKIE).value)
    assert restarted.get("/p/a/").status_code == 200
    for s in (a, b, again):
        s.close()
