"""After login, `next` leads only to a path on this site (Flask test client on a real project)."""

from __future__ import annotations

import re

import pytest

from morphocluster.project import Project
from morphocluster.users import add_user

PASSWORD = "secret-pw"


@pytest.fixture
def app(tmp_path):
    from morphocluster.web import create_app

    p = Project.create(tmp_path / "proj")
    add_user(p, "ann", PASSWORD, "annotator")
    yield create_app({"PROJECT": p, "TESTING": True})
    p.close()


def _login(client, url: str = "/login", **kwargs):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return client.post(url, data={"username": "ann", "password": PASSWORD, "csrf_token": token}, **kwargs)


HOSTILE = [
    "/\t/evil.example",   # browsers drop the tab: //evil.example
    "/\n/evil.example",   # was a 500 (a newline in the Location header)
    "/\r\n/evil.example",
    "\t//evil.example",
    "//evil.example",
    "///evil.example",
    "/\\evil.example",    # browsers read \ as /
    "\\\\evil.example",
    "/path\\..\\..\\/evil.example",
    "https://evil.example/",
    "javascript:alert(1)",
    "/ /evil.example",
    "/\x00/evil.example",
    "/\u2028/evil.example",
    "%2F%2Fevil.example",  # encoded once more: not a path at all
    "evil.example",
    "",
]


@pytest.mark.parametrize("nxt", HOSTILE, ids=ascii)
def test_hostile_next_goes_home(app, nxt):
    resp = _login(app.test_client(), query_string={"next": nxt})
    assert resp.status_code == 302
    assert resp.headers["Location"] == "/"


@pytest.mark.parametrize("raw", ["%2F%09%2Fevil.example", "%2F%0A%2Fevil.example", "%2F%0D%2Fevil.example",
                                 "%2F%5Cevil.example", "%2F%2F%65vil.example", "%09%2F%2Fevil.example"])
def test_hostile_next_as_the_issue_sent_it(app, raw):
    resp = _login(app.test_client(), f"/login?next={raw}")
    assert (resp.status_code, resp.headers["Location"]) == (302, "/")


@pytest.mark.parametrize("nxt", ["/", "/node/5", "/validate/3?page=2&x=%2F%2F", "/%2F/evil.example",
                                 "/grow/2/search?q=a%09b"])
def test_own_paths_are_kept(app, nxt):
    # percent-escapes stay escaped in the header: `/%2F/x` is a path on this site for a browser
    resp = _login(app.test_client(), query_string={"next": nxt})
    assert (resp.status_code, resp.headers["Location"]) == (302, nxt)


def test_login_returns_to_the_page_asked_for(app):
    c = app.test_client()
    to_login = c.get("/node/1?page=2")
    assert to_login.status_code == 302 and to_login.headers["Location"].startswith("/login?next=")
    resp = _login(c, to_login.headers["Location"])
    assert resp.headers["Location"] == "/node/1?page=2"
