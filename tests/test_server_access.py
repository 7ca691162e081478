"""A user without a role on project B gets 404 on every route of B: the walk goes through B's own
URL map, each rule's arguments filled with real ids of B's objects, nodes and jobs, GET and POST
(real project with real images, werkzeug's test client against the server's dispatcher)."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import select
from werkzeug.test import Client

from test_server import PASSWORD, log_in
from test_web_fixtures import web_template  # noqa: F401

from morphocluster.project import Project
from morphocluster.server import Server
from morphocluster.store import Job, Node, Object
from morphocluster.web.server import create_server_app

pytestmark = pytest.mark.usefixtures("shared_data")


@pytest.fixture
def site(web_template, tmp_path):
    """A server root with an empty project a and b, a copy of the web tests' real project."""
    src, _ = web_template
    root = tmp_path / "root"
    server = Server.create(root)
    Project.create(root / "a").close()
    shutil.copytree(src, root / "b")
    server.project_names()  # b's own users (ada, ann, bob, vic) are copied in with their roles
    server.add_user("eve", PASSWORD)  # a role on a only
    server.set_role("eve", "a", "admin")
    server.add_user("nobody", PASSWORD)  # no role at all
    with server.project("b").transaction() as s:
        s.add(Job(kind="features", state="done", progress=1.0))
    app = create_server_app(server, {"TESTING": True}, {"TESTING": True})
    yield server, app
    server.close()


def _ids(project) -> dict:
    with project.session() as s:
        return {"pk": s.scalar(select(Object.id).order_by(Object.id)),
                "node_id": s.scalar(select(Node.id).order_by(Node.id)),
                "job_id": s.scalar(select(Job.id).order_by(Job.id))}


def b_routes(server, app) -> list[tuple[str, str, str]]:
    """Return (method, path under /p/b, endpoint) for every rule of B's app, filled with real ids."""
    ids = {**_ids(server.project("b")), "rank": 0, "filename": "style.css", "kind": "features"}
    out = []
    for rule in app.project_app("b").url_map.iter_rules():
        values = {a: ids.get(a, 1) for a in rule.arguments}  # a route added later: 1 fits any converter
        _, path = rule.build(values)
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            out.append((method, path, rule.endpoint))
    return out


def _send(client, method, path, token):
    data = {"csrf_token": token} if method != "GET" else None
    return client.open("/p/b" + path, method=method, data=data)


def test_no_role_on_b_is_404_on_every_route_of_b(site):
    server, app = site
    routes = b_routes(server, app)
    endpoints = {e for _, _, e in routes}
    assert {"images.thumb", "images.image", "static", "home.index", "validate.approve",
            "jobs_views.details", "users_views.add", "auth.logout"} <= endpoints
    assert len(routes) >= 50 and {m for m, _, _ in routes} == {"GET", "POST"}

    for name in ("eve", "nobody"):  # admin of a / no role anywhere
        c, token = log_in(app, name)
        for method, path, endpoint in routes:
            resp = _send(c, method, path, token)
            assert resp.status_code == 404, (name, method, path, endpoint, resp.status_code)
            # the same answer as for a project that does not exist: nothing says that b does
            same = c.open("/p/zz" + path, method=method, data={"csrf_token": token} if method != "GET" else None)
            assert (same.status_code, same.get_data()) == (404, resp.get_data()), (method, path)
        assert "b" not in server.visible_projects(server.get_user(_user_id(server, name)))
    with server.project("b").session() as s:  # nothing was done to b
        assert s.scalar(select(Job.id).where(Job.id > _ids(server.project("b"))["job_id"])) is None
        assert {n.status for n in s.scalars(select(Node))} == {"candidate"}


def _user_id(server, name):
    return next(u["id"] for u in server.list_users() if u["username"] == name)


def test_logged_out_every_route_of_b_leads_to_the_login_as_for_no_project(site):
    server, app = site
    c = Client(app)
    for method, path, endpoint in b_routes(server, app):
        resp = c.open("/p/b" + path, method=method)
        other = c.open("/p/zz" + path, method=method)
        # a POST without a session has no CSRF token either: 400, as for any other path
        assert resp.status_code == (302 if method == "GET" else 400), (method, path)
        assert (resp.status_code, resp.get_data()) == (
            other.status_code, other.get_data().replace(b"/p/zz", b"/p/b")), (method, path)
        if method == "GET":
            assert resp.headers["Location"] == other.headers["Location"].replace("/p/zz", "/p/b")
            assert resp.headers["Location"].startswith("/login?next=/p/b")


def test_the_walk_reaches_real_pages_for_a_user_with_a_role(site):
    """The same filled URLs are real ones: b's own annotator (copied in) gets b's pages."""
    server, app = site
    ids = _ids(server.project("b"))
    c, _ = log_in(app, "ann")  # b's own user, her own password, annotator there
    for path in ("/", f"/thumb/{ids['pk']}", f"/image/{ids['pk']}", f"/object/{ids['pk']}",
                 f"/node/{ids['node_id']}", f"/validate/{ids['node_id']}", "/static/style.css",
                 f"/jobs/{ids['job_id']}"):
        resp = c.get("/p/b" + path)
        moved = resp.headers.get("Location", "")  # a candidate's node page is its validate screen
        assert resp.status_code == 200 or (resp.status_code == 302 and moved.startswith("/p/b/")), (
            path, resp.status_code, moved)
    assert c.get(f"/p/b/thumb/{ids['pk']}").headers["Content-Type"] == "image/png"
    assert c.get("/p/a/").status_code == 404  # no role on a


def test_b_app_itself_refuses_a_session_without_a_role(site):
    """Defence in depth: were a request of eve's to reach b's app, it answers 404 first."""
    server, app = site
    c, token = log_in(app, "eve")
    direct = Client(app.project_app("b"))
    direct.set_cookie("morphocluster_server_session", c.get_cookie("morphocluster_server_session").value)
    ids = _ids(server.project("b"))
    for method, path in (("GET", "/"), ("GET", f"/thumb/{ids['pk']}"), ("GET", "/static/style.css"),
                         ("POST", f"/validate/{ids['node_id']}/approve")):
        assert direct.open(path, method=method, data={"csrf_token": token}).status_code == 404, path
