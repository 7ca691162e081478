"""Users page (admins only) and login rate limiting (Flask test client on a real project)."""

from __future__ import annotations

import re

import pytest

from test_web_fixtures import PASSWORD, app, client_as, csrf_of, login, web_project, web_template  # noqa: F401

pytestmark = pytest.mark.usefixtures("shared_data")


def _shown_password(html: str) -> str:
    m = re.search(r'<code class="password">([^<]+)</code>', html)
    assert m, "no new password on the page"
    return m.group(1)


def _try_login(c, username, password, address="127.0.0.1"):
    token = csrf_of(c.get("/login", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True))
    return c.post("/login", data={"username": username, "password": password, "csrf_token": token},
                  environ_base={"REMOTE_ADDR": address})


def test_admin_lists_adds_changes_role_and_resets(client_as, app, web_project):
    from morphocluster.users import authenticate, list_users

    p, _ = web_project
    c, token = client_as("ada")
    assert 'href="/users/"' in c.get("/").get_data(as_text=True)
    page = c.get("/users/")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    for name in ("ada", "ann", "bob", "vic"):
        assert f"<td>{name}" in html

    # typed password: not shown back
    resp = c.post("/users/add", data={"username": "tia", "role": "viewer", "password": "typed-pw",
                                      "csrf_token": token})
    assert resp.status_code == 303 and resp.headers["Location"] == "/users/"  # a reload posts nothing again
    resp = c.get("/users/")
    assert "Added viewer tia" in resp.get_data(as_text=True)
    assert 'class="password"' not in resp.get_data(as_text=True)
    assert authenticate(p, "tia", "typed-pw")["role"] == "viewer"

    # no password: one is made up and shown once
    resp = c.post("/users/add", data={"username": "max", "role": "annotator", "csrf_token": token})
    made = _shown_password(resp.get_data(as_text=True))
    assert authenticate(p, "max", made)["role"] == "annotator"
    assert made not in c.get("/users/").get_data(as_text=True)

    resp = c.post("/users/add", data={"username": "max", "role": "annotator", "csrf_token": token})
    assert resp.status_code == 400 and "already exists" in resp.get_data(as_text=True)
    resp = c.post("/users/add", data={"username": "zed", "role": "boss", "csrf_token": token})
    assert resp.status_code == 400 and "role &#39;boss&#39;" in resp.get_data(as_text=True)
    resp = c.post("/users/add", data={"username": "zed", "password": "short", "csrf_token": token})
    assert resp.status_code == 400 and "at least 6 characters" in resp.get_data(as_text=True)

    resp = c.post("/users/role", data={"username": "bob", "role": "viewer", "csrf_token": token},
                  follow_redirects=True)
    assert resp.status_code == 200 and "bob is now viewer" in resp.get_data(as_text=True)
    assert {u["username"]: u["role"] for u in list_users(p)}["bob"] == "viewer"
    resp = c.post("/users/role", data={"username": "nobody", "role": "viewer", "csrf_token": token})
    assert resp.status_code == 400 and "no user named" in resp.get_data(as_text=True)

    resp = c.post("/users/password", data={"username": "ann", "csrf_token": token})
    new = _shown_password(resp.get_data(as_text=True))
    assert authenticate(p, "ann", new) and authenticate(p, "ann", PASSWORD) is None
    fresh = app.test_client()
    login(fresh, "ann", new)
    assert fresh.get("/").status_code == 200


def test_only_admins_see_the_users_page(client_as):
    for name in ("ann", "vic"):
        c, token = client_as(name)
        assert 'href="/users/"' not in c.get("/").get_data(as_text=True)
        assert c.get("/users/").status_code == 403
        data = {"username": "evil", "role": "admin", "password": "evil-pw", "csrf_token": token}
        assert c.post("/users/add", data=data).status_code == 403
        assert c.post("/users/role", data={"username": name, "role": "admin",
                                           "csrf_token": token}).status_code == 403
        assert c.post("/users/password", data={"username": "ada", "csrf_token": token}).status_code == 403
    anonymous = c.application.test_client()
    assert "/login" in anonymous.get("/users/").headers["Location"]


def test_users_forms_need_the_csrf_token(client_as, web_project):
    from morphocluster.users import list_users

    p, _ = web_project
    c, token = client_as("ada")
    assert 'name="csrf_token" value="%s"' % token in c.get("/users/").get_data(as_text=True)
    assert c.post("/users/add", data={"username": "nox", "role": "admin"}).status_code == 400
    assert c.post("/users/add", data={"username": "nox", "role": "admin",
                                      "csrf_token": "wrong"}).status_code == 400
    assert c.post("/users/role", data={"username": "ann", "role": "admin"}).status_code == 400
    assert c.post("/users/password", data={"username": "ann"}).status_code == 400
    roles = {u["username"]: u["role"] for u in list_users(p)}
    assert "nox" not in roles and roles["ann"] == "annotator"
    # htmx sends the token as a header
    resp = c.post("/users/role", data={"username": "ann", "role": "viewer"}, headers={"X-CSRFToken": token})
    assert resp.status_code == 303


def test_last_admin_cannot_be_demoted(client_as, web_project):
    from morphocluster.users import UserError, list_users, set_role

    p, _ = web_project
    c, token = client_as("ada")
    resp = c.post("/users/role", data={"username": "ada", "role": "annotator", "csrf_token": token})
    assert resp.status_code == 400 and "last admin" in resp.get_data(as_text=True)
    assert {u["username"]: u["role"] for u in list_users(p)}["ada"] == "admin"
    with pytest.raises(UserError, match="last admin"):
        set_role(p, "ada", "viewer")
    # with a second admin, the first may step down; then the page is closed to her
    assert c.post("/users/role", data={"username": "ann", "role": "admin",
                                       "csrf_token": token}).status_code == 303
    resp = c.post("/users/role", data={"username": "ada", "role": "viewer", "csrf_token": token})
    assert resp.status_code == 303 and resp.headers["Location"] == "/"  # not a page closed to her
    assert c.get("/users/").status_code == 403
    with pytest.raises(UserError, match="last admin"):
        set_role(p, "ann", "annotator")


def test_disabled_user_is_locked_out_and_keeps_their_history(client_as, app, web_project):
    from sqlalchemy import func, select

    from morphocluster.store import Event
    from morphocluster.users import UserError, add_user, authenticate, list_users

    p, _ = web_project
    bob, bob_token = client_as("bob")  # an open session, from before the lock
    c, token = client_as("ada")
    with p.session() as s:
        events_before = s.scalar(select(func.count(Event.id)))
    resp = c.post("/users/role", data={"username": "bob", "role": "disabled", "csrf_token": token},
                  follow_redirects=True)
    assert resp.status_code == 200 and "bob is now disabled" in resp.get_data(as_text=True)
    assert authenticate(p, "bob", PASSWORD) is None
    assert _try_login(app.test_client(), "bob", PASSWORD, "10.0.1.1").status_code == 401
    # the open session ends at its next request (its CSRF token with it): nothing passes
    assert bob.post("/users/role", data={"username": "bob", "role": "admin",
                                         "csrf_token": bob_token}).status_code in (400, 401)
    assert "/login" in bob.get("/").headers["Location"]
    # still listed (names stay on what they sorted); a new user cannot start disabled
    assert {u["username"]: u["role"] for u in list_users(p)}["bob"] == "disabled"
    with p.session() as s:
        assert s.scalar(select(func.count(Event.id))) == events_before
    with pytest.raises(UserError, match="cannot start disabled"):
        add_user(p, "dan", "dan-pw-123", "disabled")
    assert 'value="disabled"' not in c.get("/users/").get_data(as_text=True).split("Add a user")[1]
    # enabled again, bob logs in as before
    assert c.post("/users/role", data={"username": "bob", "role": "annotator",
                                       "csrf_token": token}).status_code == 303
    assert _try_login(app.test_client(), "bob", PASSWORD, "10.0.1.2").status_code == 302
    # the last admin cannot lock themselves out either
    resp = c.post("/users/role", data={"username": "ada", "role": "disabled", "csrf_token": token})
    assert resp.status_code == 400 and "last admin" in resp.get_data(as_text=True)


def test_sixth_login_refused_even_with_the_right_password(app):
    c = app.test_client()
    for _ in range(5):
        assert _try_login(c, "ann", "wrong-pw", "10.0.0.1").status_code == 401
    resp = _try_login(c, "ann", PASSWORD, "10.0.0.1")
    assert resp.status_code == 429 and int(resp.headers["Retry-After"]) > 0
    assert "too many failed logins; try again in 10 minutes" in resp.get_data(as_text=True).lower()
    # the name stays locked from another address; other users elsewhere log in as usual
    assert _try_login(app.test_client(), "ann", PASSWORD, "10.0.0.2").status_code == 429
    assert _try_login(app.test_client(), "bob", PASSWORD, "10.0.0.3").status_code == 302
    # the address is locked for every name too
    assert _try_login(app.test_client(), "bob", PASSWORD, "10.0.0.1").status_code == 429


def test_address_limit_and_success_resets_the_name(web_project):
    from morphocluster.web import create_app

    p, _ = web_project
    app = create_app({"PROJECT": p, "TESTING": True, "LOGIN_MAX_FAILURES": 3, "LOGIN_WINDOW_S": 60})
    c = app.test_client()
    assert _try_login(c, "ann", "wrong-pw", "10.0.1.1").status_code == 401
    assert _try_login(c, "ann", "wrong-pw", "10.0.1.2").status_code == 401
    assert _try_login(c, "ann", PASSWORD, "10.0.1.3").status_code == 302  # resets ann's count
    for _ in range(2):
        assert _try_login(app.test_client(), "ann", "wrong-pw", "10.0.1.4").status_code == 401
    assert _try_login(app.test_client(), "ann", PASSWORD, "10.0.1.5").status_code == 302
    # three different names from one address: that address is refused
    for name in ("x1", "x2", "x3"):
        assert _try_login(app.test_client(), name, "wrong-pw", "10.0.2.1").status_code == 401
    resp = _try_login(app.test_client(), "bob", PASSWORD, "10.0.2.1")
    assert resp.status_code == 429 and "try again in 1 minute." in resp.get_data(as_text=True)


def test_throttle_window_passes():
    from morphocluster.web.throttle import LoginThrottle

    now = [1000.0]
    t = LoginThrottle(max_failures=2, window_s=600, clock=lambda: now[0])
    t.failed("ann", "1.2.3.4")
    now[0] += 100
    t.failed("ann", "1.2.3.4")
    assert t.retry_after("ann", None) == pytest.approx(500)
    assert t.retry_after("bob", "1.2.3.4") == pytest.approx(500)
    assert t.retry_after("bob", "5.6.7.8") == 0
    now[0] += 500  # the first failure leaves the window: one more try
    assert t.retry_after("ann", "1.2.3.4") == 0
    t.succeeded("ann")
    assert t.retry_after("ann", None) == 0 and t.retry_after("cy", "1.2.3.4") == 0


def test_behind_a_proxy_the_address_limit_counts_each_client(web_project):
    from morphocluster.web import create_app

    p, _ = web_project

    def attempt(app, name, password, client_addr):
        c = app.test_client()
        env = {"REMOTE_ADDR": "10.9.9.9", "HTTP_X_FORWARDED_FOR": client_addr}  # all via one proxy
        token = csrf_of(c.get("/login", environ_base=env).get_data(as_text=True))
        return c.post("/login", data={"username": name, "password": password, "csrf_token": token},
                      environ_base=env).status_code

    for proxies, bob_status in ((0, 429), (1, 302)):
        app = create_app({"PROJECT": p, "TESTING": True, "LOGIN_MAX_FAILURES": 3,
                          "LOGIN_WINDOW_S": 60, "PROXIES": proxies})
        for name in ("x1", "x2", "x3"):
            assert attempt(app, name, "wrong-pw", "203.0.113.7") == 401
        # without trusting the proxy every client shares its address and is locked out too
        assert attempt(app, "bob", PASSWORD, "198.51.100.2") == bob_status
