"""Sessions end: a copied cookie stops working after logout, a new password, a role change or an
admin's reset (Flask test client on a real project)."""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone

import pytest
from click.testing import CliRunner

from morphocluster.cli import main
from morphocluster.project import Project
from morphocluster.users import add_user, set_password

PASSWORD = "secret-pw"
COOKIE = "morphocluster_session"


@pytest.fixture
def web(tmp_path):
    from morphocluster.web import create_app

    p = Project.create(tmp_path / "proj")
    for name, role in (("ada", "admin"), ("eve", "admin"), ("ann", "annotator"), ("vic", "viewer")):
        add_user(p, name, PASSWORD, role)
    yield p, create_app({"PROJECT": p, "TESTING": True})
    p.close()


def _token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(app, name, password=PASSWORD):
    """Return a client logged in as `name` and its CSRF token."""
    c = app.test_client()
    resp = c.post("/login", data={"username": name, "password": password,
                                  "csrf_token": _token(c.get("/login").get_data(as_text=True))})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return c, _token(c.get("/").get_data(as_text=True))


def copy_of(app, client):
    """Return a second client holding the same session cookie (as a thief would)."""
    other = app.test_client()
    other.set_cookie(COOKIE, client.get_cookie(COOKIE).value)
    assert other.get("/").status_code == 200
    return other


def sent_to_login(client) -> bool:
    resp = client.get("/")
    return resp.status_code == 302 and resp.headers["Location"].startswith("/login")


def test_logout_ends_copies_of_the_cookie(web):
    _, app = web
    c, token = login(app, "ann")
    stolen = copy_of(app, c)
    elsewhere, _ = login(app, "ann")  # another browser of hers
    viewer, vtoken = login(app, "vic")
    assert c.post("/logout", data={"csrf_token": token}).status_code == 302
    assert sent_to_login(c) and sent_to_login(stolen) and sent_to_login(elsewhere)
    assert stolen.post("/logout", data={"csrf_token": token}).status_code in (400, 401)
    assert viewer.get("/").status_code == 200  # others stay logged in
    viewer_copy = copy_of(app, viewer)
    assert viewer.post("/logout", data={"csrf_token": vtoken}).status_code == 302  # viewers too
    assert sent_to_login(viewer_copy)
    again, _ = login(app, "ann")
    assert again.get("/").status_code == 200


def test_new_password_ends_sessions(web):
    p, app = web
    c, _ = login(app, "ann")
    stolen = copy_of(app, c)
    set_password(p, "ann", "new-password")
    assert sent_to_login(c) and sent_to_login(stolen)
    cli, _ = login(app, "ann", "new-password")
    res = CliRunner().invoke(main, ["user", "passwd", str(p.root), "ann", "--password", "newer-pw"])
    assert res.exit_code == 0, res.output
    assert sent_to_login(cli)


def test_admin_reset_and_role_change_end_sessions(web):
    p, app = web
    admin, token = login(app, "ada")
    ann, _ = login(app, "ann")
    ann_copy = copy_of(app, ann)
    assert admin.post("/users/password", data={"username": "ann", "csrf_token": token}).status_code == 200
    assert sent_to_login(ann) and sent_to_login(ann_copy)

    vic, _ = login(app, "vic")
    vic_copy = copy_of(app, vic)
    resp = admin.post("/users/role", data={"username": "vic", "role": "annotator", "csrf_token": token})
    assert resp.status_code == 303
    assert sent_to_login(vic) and sent_to_login(vic_copy)
    res = CliRunner().invoke(main, ["user", "role", str(p.root), "eve", "annotator"])
    assert res.exit_code == 0, res.output
    assert admin.get("/").status_code == 200  # a change to eve leaves ada logged in


def test_admin_changing_themselves_stays_in_this_session_only(web):
    _, app = web
    admin, token = login(app, "ada")
    copy = copy_of(app, admin)
    resp = admin.post("/users/password", data={"username": "ada", "csrf_token": token})
    assert resp.status_code == 200 and 'class="password"' in resp.get_data(as_text=True)
    assert admin.get("/users/").status_code == 200
    assert sent_to_login(copy)

    copy = copy_of(app, admin)
    resp = admin.post("/users/role", data={"username": "ada", "role": "viewer", "csrf_token": token})
    assert resp.status_code == 303 and resp.headers["Location"] == "/"
    assert admin.get("/").status_code == 200 and admin.get("/users/").status_code == 403
    assert sent_to_login(copy)


def test_cli_logout_ends_a_users_sessions(web):
    p, app = web
    ann, _ = login(app, "ann")
    vic, _ = login(app, "vic")
    res = CliRunner().invoke(main, ["user", "logout", str(p.root), "ann"])
    assert res.exit_code == 0 and "Ended the sessions of ann" in res.output
    assert sent_to_login(ann) and vic.get("/").status_code == 200
    res = CliRunner().invoke(main, ["user", "logout", str(p.root), "nobody"])
    assert res.exit_code != 0 and "no user named 'nobody'" in res.output


def test_cookie_lasts_hours_and_a_login_at_most_days(web):
    _, app = web
    c, _ = login(app, "ann")
    left = c.get_cookie(COOKIE).expires - datetime.now(timezone.utc)
    assert timedelta(hours=11) < left <= timedelta(hours=12, minutes=1)  # not Flask's 31 days
    assert app.permanent_session_lifetime == timedelta(hours=12)  # also what the server accepts
    with c.session_transaction() as s:
        s["since"] = int(time.time()) - 6 * 86400
    assert c.get("/").status_code == 200
    with c.session_transaction() as s:
        s["since"] = int(time.time()) - 8 * 86400
    assert sent_to_login(c)


def test_cookie_without_a_generation_is_refused(web):
    # a cookie made before sessions had generations (or a forged one without it)
    _, app = web
    c, _ = login(app, "ann")
    with c.session_transaction() as s:
        del s["gen"]
    assert sent_to_login(c)


def test_session_hours_are_configurable(web, monkeypatch):
    from morphocluster.web import create_app

    p, _ = web
    app = create_app({"PROJECT": p, "SESSION_IDLE_HOURS": 2})
    assert app.permanent_session_lifetime == timedelta(hours=2)
    monkeypatch.setenv("MORPHOCLUSTER_SESSION_HOURS", "0.5")
    assert create_app({"PROJECT": p}).permanent_session_lifetime == timedelta(minutes=30)
    monkeypatch.setenv("MORPHOCLUSTER_SESSION_HOURS", "soon")
    with pytest.raises(RuntimeError, match="MORPHOCLUSTER_SESSION_HOURS='soon'"):
        create_app({"PROJECT": p})
