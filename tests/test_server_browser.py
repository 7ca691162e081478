"""A server root in headless Chromium against waitress: log in at the root, create a project from
the form, give a role, open a project and come back, all under the Content-Security-Policy.
Run alone with `pytest -m browser tests/test_server_browser.py`."""

from __future__ import annotations

import pytest

from test_browser import CHROMIUM, page, serving  # noqa: F401
from test_browser_csp import RECORD
from test_server import PASSWORD, make_server

from morphocluster.web.server import create_server_app

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)"),
]


def _log_in(pg, base, name):
    pg.goto(base + "/p/a/")
    assert "/login?next=" in pg.url
    pg.fill("input[name=username]", name)
    pg.fill("input[name=password]", PASSWORD)
    pg.click("button:has-text('Log in')")


def test_server_root_in_the_browser(tmp_path, page):
    server = make_server(tmp_path / "root", names=("a",))
    server.add_user("ann", PASSWORD)
    pg = page
    pg.add_init_script(RECORD)
    with serving(create_server_app(server)) as base:
        _log_in(pg, base, "boss")
        pg.wait_for_selector("text=Progress")  # sent on to the project asked for
        assert pg.url == base + "/p/a/"
        assert pg.inner_text(".project-name") == "Projects / a"
        pg.click(".project-name a")
        pg.wait_for_selector("h1:has-text('Projects')")

        pg.click("nav a:has-text('New project')")
        pg.fill("input[name=name]", "Station B")
        pg.click("button:has-text('Create')")
        pg.wait_for_selector("text=Created project station-b")
        assert pg.locator("table.projects a").all_inner_texts() == ["a", "station-b"]

        pg.click("nav a:has-text('Users')")
        pg.select_option("select[aria-label='role of ann on station-b']", "viewer")
        pg.locator("form:has(select[aria-label='role of ann on station-b']) button").click()
        pg.wait_for_selector("text=ann: viewer on station-b")
        assert pg.evaluate("window.__csp") == []
        pg.click("button:has-text('Log out')")
        pg.wait_for_selector("input[name=username]")

        _log_in(pg, base, "ann")  # no role on a: the login leads to a 404, as for no project
        pg.wait_for_selector("text=404")
        pg.goto(base + "/")
        assert pg.locator("table.projects a").all_inner_texts() == ["station-b"]
        pg.click("table.projects a")
        pg.wait_for_selector("text=Progress")
        assert pg.url == base + "/p/station-b/" and "viewer" in pg.inner_text(".who")
        assert pg.evaluate("window.__csp") == []
    server.close()
