"""Every route of the app, walked from its URL map, answers with the security headers: pages,
htmx fragments, redirects, static files, images, and 304/400/403/404/405/500 answers too.

A new route is walked without a change here; one with an argument this file has no value for
fails with a message saying so.
"""

from __future__ import annotations

import pytest

from morphocluster.store import Job
from test_web_fixtures import CLASSES, app, client_as, login, web_project, web_template  # noqa: F401

pytestmark = pytest.mark.usefixtures("shared_data")


def directives(csp: str) -> dict[str, str]:
    return {d.split()[0]: " ".join(d.split()[1:]) for d in (x.strip() for x in csp.split(";")) if d}


def check(resp, what: str) -> None:
    """Assert the security headers of one response."""
    h = resp.headers
    assert h.get("X-Content-Type-Options") == "nosniff", what
    assert h.get("X-Frame-Options") == "DENY", what
    assert h.get("Referrer-Policy") in ("same-origin", "no-referrer"), what
    csp = h.get("Content-Security-Policy", "")
    d = directives(csp)
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp, (what, csp)
    assert d.get("frame-ancestors") == "'none'", (what, csp)
    if what.split()[1].startswith(("/image/", "/thumb/")) and resp.status_code in (200, 304):
        assert d.get("default-src") == "'none'" and "sandbox" in d, (what, csp)
        assert resp.status_code == 304 or resp.mimetype.startswith("image/"), what
        return
    assert d.get("default-src") == "'self'" and d.get("script-src") == "'self'", (what, csp)
    assert d.get("style-src") == "'self'" and d.get("object-src") == "'none'", (what, csp)
    assert d.get("base-uri") == "'none'" and d.get("form-action") == "'self'", (what, csp)


def values(p, info) -> dict[str, object]:
    """A plausible value for each URL argument name of the app."""
    with p.transaction() as s:
        job = Job(kind="index", state="failed", error="ValueError: no\n\nTraceback ...")
        s.add(job)
        s.flush()
        job_id = job.id
    return {"node_id": info["nodes"][CLASSES[0]], "pk": info["by_class"][CLASSES[0]][0], "rank": 0,
            "job_id": job_id, "kind": "index", "filename": "style.css", "token": "A" * 32}


def test_every_route_sends_the_security_headers(app, web_project):
    p, info = web_project
    admin = app.test_client()
    login(admin, "ada")
    args = values(p, info)
    seen, statuses = set(), set()
    for rule in app.url_map.iter_rules():
        missing = [a for a in rule.arguments if a not in args]
        assert not missing, f"{rule.rule}: add a plausible value for {missing} in values()"
        url = rule.build({a: args[a] for a in rule.arguments}, append_unknown=False)[1]
        method = "GET" if "GET" in rule.methods else sorted(rule.methods - {"OPTIONS", "HEAD"})[0]
        for headers in ({}, {"HX-Request": "true"}):  # a page, and the fragment htmx asks for
            # POSTs go without their CSRF token: each is refused (400), nothing changes
            resp = admin.open(url, method=method, headers=headers)
            check(resp, f"{method} {url} {headers} -> {resp.status_code}")
            statuses.add(resp.status_code)
        seen.add(rule.rule)
    assert len(seen) == len({r.rule for r in app.url_map.iter_rules()}) > 40
    assert {200, 400}.issubset(statuses), statuses

    # the other answers: not logged in, a viewer refused, no such page, wrong method, not modified
    anon = app.test_client()
    viewer = app.test_client()
    login(viewer, "vic")
    pk = args["pk"]
    img = admin.get(f"/image/{pk}")
    cases = [(anon, "GET", "/", 302), (anon, "GET", "/login", 200), (anon, "GET", "/static/app.js", 200),
             (anon, "GET", f"/image/{pk}", 302),
             (viewer, "GET", "/users/", 403), (viewer, "GET", f"/jobs/{args['job_id']}/details", 403),
             (admin, "GET", "/no/such/page", 404), (admin, "GET", "/object/999999999", 404),
             (admin, "GET", "/static/no-such.js", 404), (admin, "GET", "/undo", 405),
             (admin, "POST", "/undo", 400), (admin, "GET", f"/image/{pk}", 200)]
    for client, method, url, status in cases:
        resp = client.open(url, method=method)
        assert resp.status_code == status, (method, url, resp.status_code)
        check(resp, f"{method} {url} -> {status}")
    resp = admin.get(f"/image/{pk}", headers={"If-None-Match": img.headers["ETag"]})
    assert resp.status_code == 304
    check(resp, f"GET /image/{pk} (If-None-Match) -> 304")


def test_a_server_error_sends_the_security_headers(web_project):
    from morphocluster.web import create_app

    p, _ = web_project
    app = create_app({"PROJECT": p, "TESTING": False, "PROPAGATE_EXCEPTIONS": False})
    app.add_url_rule("/boom", "boom", lambda: 1 / 0)
    c = app.test_client()
    login(c, "ada")
    resp = c.get("/boom")
    assert resp.status_code == 500
    check(resp, "GET /boom -> 500")



def test_stored_files_are_typed_by_content_not_name(client_as, web_project):
    """A GIF stored under a .jpg name goes out as image/gif; a stored file that is no image (left by an
    older version, or put there by hand) is a download named by the object id only."""
    from morphocluster.store import Object

    p, info = web_project
    gif_pk, other_pk = info["by_class"][CLASSES[0]][:2]
    with p.session() as s:
        gif, other = p.image_path(s.get(Object, gif_pk).path), p.image_path(s.get(Object, other_pk).path)
    from PIL import Image

    Image.new("L", (8, 8)).save(gif, format="GIF", comment=b"<script>alert(1)</script>")
    other.write_bytes(b"<html><script>alert(1)</script></html>")
    admin, _ = client_as("ada")
    resp = admin.get(f"/image/{gif_pk}")
    assert resp.status_code == 200 and resp.mimetype == "image/gif"
    assert resp.headers["Content-Disposition"] == f"inline; filename={gif_pk}.gif"
    check(resp, f"GET /image/{gif_pk}")
    resp = admin.get(f"/image/{other_pk}")
    assert resp.status_code == 200 and resp.mimetype == "application/octet-stream"
    assert resp.headers["Content-Disposition"] == f"attachment; filename={other_pk}"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in resp.headers["Content-Security-Policy"]
