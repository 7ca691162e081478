"""Every page works under the Content-Security-Policy: no inline script, handler or style is
refused, and what the inline handlers did (the keys dialog, the question before a password
reset) still happens. Run alone with `pytest -m browser tests/test_browser_csp.py`.
"""

from __future__ import annotations

import pytest

from test_browser import CHROMIUM, log_in, page, server  # noqa: F401
from test_web_fixtures import CLASSES, web_project, web_template  # noqa: F401

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("shared_data"),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)"),
]

# Playwright's init scripts run outside the page's policy: this one records what it refuses
RECORD = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) =>
  window.__csp.push(e.violatedDirective + " " + (e.blockedURI || "") + " " + (e.sample || "")));
// htmx refuses what would need eval (hx-vals "js:", trigger filters) without a violation
document.addEventListener("htmx:evalDisallowedError", (e) => window.__csp.push("htmx eval: " + e.target.outerHTML.slice(0, 120)));
"""


def test_pages_run_under_the_policy_without_violations(server, page):
    base, p, info = server
    pg = page
    console = []
    pg.on("console", lambda m: console.append(m.text) if "Content Security Policy" in m.text else None)
    pg.add_init_script(RECORD)

    def visit(path):
        resp = pg.goto(base + path)
        assert resp.ok, (path, resp.status)
        assert "frame-ancestors 'none'" in resp.headers["content-security-policy"]
        pg.wait_for_load_state("load")
        pg.wait_for_timeout(400)  # htmx's load/revealed requests and their swaps
        assert pg.evaluate("window.__csp") == [], path

    visit("/login")
    log_in(pg, base, "ada")
    node = info["nodes"][CLASSES[1]]
    pk = info["by_class"][CLASSES[1]][0]
    for path in ("/", f"/validate/{node}", f"/grow/{node}", "/tree/", f"/tree/node/{node}",
                 f"/object/{pk}", "/jobs/", "/events", "/users/", "/suggest/"):
        visit(path)

    # the keys help opens from its button (was an inline onclick)
    pg.goto(base + "/")
    assert float(pg.get_attribute("progress.bar.big", "value")) == 0.0
    pg.click("button[data-opens=keys]")
    assert pg.evaluate("document.getElementById('keys').open")
    pg.keyboard.press("Escape")
    assert not pg.evaluate("document.getElementById('keys').open")
    pg.keyboard.press("?")
    assert pg.evaluate("document.getElementById('keys').open")
    pg.keyboard.press("Escape")

    # a password reset asks first (was an inline onsubmit): "no" keeps the page, "yes" resets
    pg.goto(base + "/users/")
    asked = []
    pg.once("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    pg.click("form[data-confirm*=vic] button")
    pg.wait_for_timeout(300)
    assert asked == ["Give vic a new random password?"] and "New password" not in pg.content()
    pg.once("dialog", lambda d: d.accept())
    pg.click("form[data-confirm*=vic] button")
    pg.wait_for_selector("text=New password of")
    assert pg.evaluate("window.__csp") == [], "password reset"

    # a validate screen still takes decisions: select two objects, remove them
    pg.goto(f"{base}/validate/{node}")
    figs = pg.locator("#grid .obj")
    n = figs.count()
    figs.nth(0).click()
    figs.nth(1).click()
    pg.keyboard.press("r")
    pg.wait_for_selector("#toast:has-text('Removed 2 objects')")
    assert pg.locator("#grid .obj").count() == n - 2
    assert pg.evaluate("window.__csp") == [], "validate: remove"
    assert console == []
