"""App factory, login, sessions, CSRF, roles, thumbnails (Flask test client on a real project)."""

from __future__ import annotations

import pytest

from test_web_fixtures import PASSWORD, app, client_as, csrf_of, login, web_project, web_template  # noqa: F401

pytestmark = pytest.mark.usefixtures("shared_data")


def test_nothing_but_login_and_static_without_session(app):
    c = app.test_client()
    for url in ("/", "/validate/", "/grow/", "/tree/", "/jobs/", "/events", "/thumb/1", "/image/1",
                "/object/1", "/map", "/node/1", "/tree/names?name=a"):
        resp = c.get(url)
        assert resp.status_code == 302 and "/login" in resp.headers["Location"], url
    assert c.get("/login").status_code == 200
    assert c.get("/static/htmx-2.0.4.min.js").status_code == 200
    assert c.get("/", headers={"HX-Request": "true"}).status_code == 401


def test_login_wrong_password_and_logout(app):
    c = app.test_client()
    token = csrf_of(c.get("/login").get_data(as_text=True))
    bad = c.post("/login", data={"username": "ann", "password": "nope", "csrf_token": token})
    assert bad.status_code == 401 and "wrong password" in bad.get_data(as_text=True)
    token = login(c, "ann")
    assert c.get("/").status_code == 200
    assert c.post("/logout", data={"csrf_token": token}).status_code == 302
    assert c.get("/").status_code == 302


def test_session_cookie_flags(app):
    c = app.test_client()
    token = csrf_of(c.get("/login").get_data(as_text=True))
    resp = c.post("/login", data={"username": "ann", "password": PASSWORD, "csrf_token": token})
    cookie = resp.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_secret_key_is_kept_in_the_project(web_project):
    from morphocluster.web import create_app

    p, _ = web_project
    assert create_app({"PROJECT": p}).secret_key == create_app({"PROJECT": p}).secret_key


def test_csrf_rejected(client_as):
    c, token = client_as("ann")
    assert c.post("/undo").status_code == 400
    assert c.post("/undo", headers={"X-CSRFToken": "wrong"}).status_code == 400
    assert c.post("/undo", headers={"X-CSRFToken": token}).status_code == 200
    # the login form itself needs the token too
    assert app_login_without_token(c) == 400


def app_login_without_token(c):
    return c.post("/login", data={"username": "ann", "password": PASSWORD}).status_code


def test_thumbnails_cached_with_etag(client_as, web_project):
    p, info = web_project
    c, _ = client_as("vic")
    pk = info["by_class"]["copepod_calanoid"][0]
    r1 = c.get(f"/thumb/{pk}")
    assert r1.status_code == 200 and r1.mimetype == "image/png"
    assert "max-age" in r1.headers["Cache-Control"] and r1.headers["ETag"]
    assert any(p.cache_dir.rglob(f"{pk}.png"))
    r2 = c.get(f"/thumb/{pk}", headers={"If-None-Match": r1.headers["ETag"]})
    assert r2.status_code == 304
    assert c.get(f"/image/{pk}").status_code == 200
    assert c.get("/thumb/999999").status_code == 404
    assert c.get(f"/thumb/{pk}?s=7").status_code == 404


def test_thumbnails_of_a_project_given_by_a_relative_path(web_project, monkeypatch):
    """`morphocluster serve myproject`: Flask resolves files against its own folder, not the cwd."""
    from morphocluster.web import create_app

    p, info = web_project
    monkeypatch.chdir(p.root.parent)
    c = create_app({"PROJECT": p.root.name, "TESTING": True}).test_client()
    login(c, "vic")
    pk = info["by_class"]["copepod_calanoid"][1]
    resp = c.get(f"/thumb/{pk}")
    assert resp.status_code == 200 and resp.mimetype == "image/png"
    assert c.get(f"/image/{pk}").status_code == 200


def test_image_paths_cannot_escape_the_project(client_as, web_project):
    from morphocluster.store import Object

    p, info = web_project
    pk = info["by_class"]["copepod_calanoid"][1]
    with p.transaction() as s:
        s.get(Object, pk).path = "../../../../etc/passwd"
    c, _ = client_as("ann")
    assert c.get(f"/image/{pk}").status_code == 404
    assert c.get(f"/thumb/{pk}").status_code == 404


def test_viewer_cannot_change_anything(client_as, web_project):
    p, info = web_project
    c, token = client_as("vic")
    node = info["nodes"]["chaetognath_sagitta"]
    h = {"X-CSRFToken": token}
    for url in (f"/validate/{node}/approve", f"/validate/{node}/remove", f"/validate/{node}/dissolve",
                f"/validate/{node}/split", f"/validate/{node}/merge", f"/grow/{node}/until",
                f"/grow/{node}/accept", f"/grow/{node}/reject", "/undo", f"/tree/node/{node}/name",
                f"/tree/node/{node}/move", "/tree/umbrella", "/jobs/start/cluster",
                "/tree/from-object/1"):
        assert c.post(url, headers=h, data={"pks": "1"}).status_code == 403, url
    assert c.get(f"/validate/{node}").status_code == 200  # but may look
    assert c.get("/validate/").headers["Location"] == f"/validate/{node}"  # without claiming
    with p.session() as s:
        from morphocluster.store import Node
        assert s.get(Node, node).claimed_by is None
    assert c.get("/events").status_code == 403  # the log is for admins


def test_full_page_versus_fragment(client_as, web_project):
    _, info = web_project
    c, _ = client_as("ann")
    node = info["nodes"]["copepod_calanoid"]
    for url in ("/", f"/validate/{node}", "/tree/", f"/tree/node/{node}", "/jobs/",
                f"/object/{info['by_class']['copepod_calanoid'][0]}", f"/grow/{node}/search"):
        full = c.get(url).get_data(as_text=True)
        frag = c.get(url, headers={"HX-Request": "true"}).get_data(as_text=True)
        assert "<html" in full and "<html" not in frag, url
        assert "<header" not in frag


def test_user_library(web_project):
    from morphocluster import users

    p, _ = web_project
    with pytest.raises(users.UserError, match="already exists"):
        users.add_user(p, "ann", "whatever1")
    with pytest.raises(users.UserError, match="role"):
        users.add_user(p, "zed", "whatever1", role="boss")
    with pytest.raises(users.UserError, match="6 characters"):
        users.add_user(p, "zed", "abc")
    users.set_password(p, "ann", "new-password")
    assert users.authenticate(p, "ann", "new-password")["role"] == "annotator"
    assert users.authenticate(p, "ann", PASSWORD) is None
    assert users.authenticate(p, "nobody", PASSWORD) is None
    assert [u["username"] for u in users.list_users(p)] == ["ada", "ann", "bob", "vic"]


def test_suggestions_screen_is_linked_when_present(client_as, app):
    c, _ = client_as("ann")
    html = c.get("/").get_data(as_text=True)
    if app.config["SUGGEST_URL"] is None:
        assert "Suggestions" not in html
    else:
        assert f'href="{app.config["SUGGEST_URL"]}"' in html


def test_unknown_nodes_and_objects_are_404(client_as):
    c, token = client_as("ann")
    for url in ("/validate/9999", "/grow/9999", "/tree/node/9999", "/object/9999", "/validate/9999/members"):
        assert c.get(url).status_code == 404, url
    resp = c.post("/validate/9999/dissolve", headers={"X-CSRFToken": token, "HX-Request": "true"})
    assert resp.status_code == 404 and "not found" in resp.get_data(as_text=True)


def test_object_page_shows_every_image_of_an_object(client_as, web_project):
    from morphocluster.store import Object

    p, info = web_project
    pk, other, bad = info["by_class"]["copepod_calanoid"][2:5]
    with p.transaction() as s:  # what an EcoTaxa import of an object with two images stores
        o, second = s.get(Object, pk), s.get(Object, other).path
        o.meta = {**(o.meta or {}), "_extra_images": [{"rank": 1, "path": second, "file": "x_1.jpg"}]}
        b = s.get(Object, bad)
        b.meta = {"_extra_images": [{"rank": 1, "path": "../../../../etc/passwd", "file": "y"}]}
    c, _ = client_as("vic")
    html = c.get(f"/object/{pk}").get_data(as_text=True)
    assert f'src="/image/{pk}"' in html and f'src="/image/{pk}/1"' in html and "x_1.jpg" in html
    assert "_extra_images" not in html  # not shown as a metadata row
    with p.session() as s:
        w, h = s.get(Object, pk).width, s.get(Object, pk).height
    z = min(6, max(1, int(400 / max(w, h))))  # small images enlarged by a whole factor
    assert f'width="{w * z}"' in html and (z == 1 or f"shown {z}× enlarged" in html)
    one = c.get(f"/image/{pk}/1")
    assert one.status_code == 200 and one.get_data() == p.image_path(second).read_bytes()
    assert c.get(f"/image/{pk}/2").status_code == 404
    assert c.get(f"/image/{bad}/1").status_code == 404
