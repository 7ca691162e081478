"""Headless Chromium against a real waitress server on a small real project.

Log in, validate a cluster while removing two outliers, grow it by clicking the first wrong
object, name it, undo, and check the counts on the home page. Run alone with
`pytest -m browser tests/test_browser.py`. Needs Debian's chromium (`.ci/run` installs it).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from morphocluster.web.threaded import serving  # noqa: F401 (the other browser tests import it from here)
from test_web_fixtures import CLASSES, IN_NODE, PASSWORD, web_project, web_template  # noqa: F401

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.usefixtures("shared_data"),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)"),
]


@pytest.fixture
def server(web_project):
    from morphocluster.web import create_app

    p, info = web_project
    with serving(create_app({"PROJECT": p})) as base:
        yield base, p, info


@pytest.fixture
def page():
    playwright = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1400, "height": 900})
        pg.set_default_timeout(20_000)
        yield pg
        browser.close()


def log_in(pg, base, user):
    pg.goto(base + "/")
    assert "/login" in pg.url
    pg.fill("input[name=username]", user)
    pg.fill("input[name=password]", PASSWORD)
    pg.click("button:has-text('Log in')")
    pg.wait_for_selector("text=Progress")


def test_validate_grow_name_undo(server, page):
    base, p, info = server
    pg = page
    log_in(pg, base, "ann")
    pg.keyboard.press("v")
    pg.wait_for_url(re.compile(r"/validate/\d+$"))
    node_id = int(pg.url.rsplit("/", 1)[1])
    assert node_id == info["nodes"][CLASSES[0]]
    figs = pg.locator("#grid .obj")
    assert figs.count() == IN_NODE + 2
    a, b = info["outliers"]
    pg.click(f'#grid .obj[data-pk="{a}"]')
    pg.click(f'#grid .obj[data-pk="{b}"]')
    assert pg.inner_text("#sel-count") == "2"
    assert pg.locator("#grid .obj.sel").count() == 2
    pg.keyboard.press("r")
    pg.wait_for_selector("#toast:has-text('Removed 2 objects')")
    assert pg.locator("#grid .obj").count() == IN_NODE
    pg.keyboard.press("Shift+A")  # approve & grow
    pg.wait_for_url(re.compile(rf"/grow/{node_id}$"))
    ranked = [int(x) for x in pg.locator("#grid .obj").evaluate_all("fs => fs.map(f => f.dataset.pk)")]
    mine = set(info["by_class"][CLASSES[0]])
    wrong = next(i for i, pk in enumerate(ranked) if pk not in mine)
    pg.click(f'#grid .obj[data-rank="{wrong}"]')
    pg.wait_for_selector(f"#toast:has-text('Accepted {wrong}, rejected 1')")
    grown = IN_NODE + wrong
    pg.fill("input.name-input", "chaetognath")
    pg.press("input.name-input", "Enter")
    pg.wait_for_selector("#toast:has-text('now called')")
    pg.goto(base + "/")
    assert pg.inner_text("#n-labelled") == str(grown)
    assert "chaetognath" in pg.inner_text(".labels")
    pg.keyboard.press("u")  # undo the naming
    pg.wait_for_load_state("load")
    pg.wait_for_selector("text=(unnamed)")
    assert pg.inner_text("#n-labelled") == str(grown)
    assert pg.inner_text("#n-approved") == "1"
    pg.click("#undo-btn")  # undo the growth
    pg.wait_for_selector(f"#n-labelled:text-is('{IN_NODE}')")


def test_shift_click_range_and_remove_from_here_on(server, page):
    base, p, info = server
    pg = page
    log_in(pg, base, "bob")
    node_id = info["nodes"][CLASSES[1]]
    pg.goto(f"{base}/validate/{node_id}")
    pg.click('#grid .obj[data-rank="3"]')
    pg.click('#grid .obj[data-rank="7"]', modifiers=["Shift"])
    assert pg.locator("#grid .obj.sel").count() == 5
    pg.keyboard.press("Escape")
    assert pg.locator("#grid .obj.sel").count() == 0
    pg.click('#grid .obj[data-rank="10"]')
    pg.keyboard.press("x")
    pg.wait_for_selector("#toast:has-text('Removed')")
    assert pg.locator("#grid .obj").count() == 10
    pg.keyboard.press("Shift+A")
    pg.wait_for_url(re.compile(rf"/grow/{node_id}$"))
    target = pg.locator('#grid .obj[data-rank="2"]').get_attribute("data-pk")
    pg.click('#grid .obj[data-rank="2"]', modifiers=["Control"])  # select, do not accept
    assert pg.locator("#grid .obj.sel").count() == 1
    pg.keyboard.press("r")
    pg.wait_for_selector("#toast:has-text('Rejected 1')")
    assert pg.locator(f'#grid .obj[data-pk="{target}"]').count() == 0


def test_viewer_sees_no_actions(server, page):
    base, p, info = server
    log_in(page, base, "vic")
    page.goto(f"{base}/validate/{info['nodes'][CLASSES[0]]}")
    assert page.locator("button:has-text('Approve')").count() == 0
    assert page.locator("#undo-btn").count() == 0
    page.keyboard.press("?")
    assert page.locator("dialog#keys").is_visible()
    page.keyboard.press("Escape")
    width = page.locator("#grid .obj").first.bounding_box()["width"]
    page.keyboard.press("+")
    page.keyboard.press("+")
    assert page.locator("#grid .obj").first.bounding_box()["width"] > width


def load_all(pg, timeout_s: float = 60) -> None:
    """Scroll down until the grid has loaded every page of members."""
    import time

    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        if not pg.evaluate("() => { const m = document.querySelector('#grid .more');"
                           " if (m) m.scrollIntoView(); return !!m; }"):
            return
        pg.wait_for_timeout(200)
    raise AssertionError("the grid did not finish loading")


def test_members_load_page_by_page_on_scroll(web_project, page):
    from morphocluster.web import create_app

    p, info = web_project
    with serving(create_app({"PROJECT": p, "PAGE_SIZE": 5})) as base:
        log_in(page, base, "ann")
        fetched = []
        page.on("request", lambda r: fetched.append(r.url) if "/members?" in r.url else None)
        page.goto(f"{base}/validate/{info['nodes'][CLASSES[0]]}")
        load_all(page)
        assert len(fetched) == 3  # 18 members in pages of 5: the first comes with the page
        pks = page.locator("#grid .obj").evaluate_all("fs => fs.map(f => f.dataset.pk)")
        assert len(pks) == len(set(pks)) == IN_NODE + 2


def take_screenshots(base: str, user: str, password: str, out: Path) -> None:
    """Save validate.png and grow.png of a running server (used for docs/img)."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        pg = browser.new_page(viewport={"width": 1280, "height": 760})
        pg.goto(base + "/login")
        pg.fill("input[name=username]", user)
        pg.fill("input[name=password]", password)
        pg.click("button:has-text('Log in')")
        pg.goto(base + "/validate/")
        pg.wait_for_selector("#grid .obj")
        load_all(pg)
        figs = pg.locator("#grid .obj")
        n = figs.count()
        for i in (n - 3, n - 1):
            if i > 0:
                figs.nth(i).click()
        pg.mouse.move(5, 5)
        pg.wait_for_timeout(500)
        pg.screenshot(path=str(out / "validate.png"))
        pg.keyboard.press("Shift+A")
        pg.wait_for_url(re.compile(r"/grow/\d+$"))
        pg.wait_for_selector("#grid .obj")
        pg.wait_for_timeout(500)
        pg.locator("#grid .obj").nth(14).hover()
        pg.screenshot(path=str(out / "grow.png"))
        browser.close()


if __name__ == "__main__":
    import sys

    take_screenshots(sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4]))


def test_enter_in_the_merge_box_merges_and_messages_do_not_come_back(server, page):
    """Enter in a toolbar field presses the button beside it, not the form's first (Approve)."""
    from morphocluster.store import Node

    base, p, info = server
    pg = page
    log_in(pg, base, "ann")
    node_id, into = info["nodes"][CLASSES[1]], info["nodes"][CLASSES[2]]
    pg.goto(f"{base}/validate/{node_id}")
    asked = []

    def record(d):
        asked.append(d.message)
        d.dismiss()

    pg.on("dialog", record)
    pg.click("button:has-text('Merge')")  # no node typed: it says so instead of asking
    pg.wait_for_selector("#toast:has-text('Type the name or id of the node to merge into first')")
    assert asked == []
    pg.remove_listener("dialog", record)
    pg.fill("input[name=into]", str(into))
    pg.once("dialog", lambda d: d.accept())  # merging asks first
    pg.press("input[name=into]", "Enter")
    pg.wait_for_selector(f"#toast:has-text('Node {node_id} merged into node {into}')")
    with p.session() as s:
        assert s.get(Node, node_id).status != "approved" and s.get(Node, node_id).n_members == 0
    # a message fades and is gone: later requests do not bring it back
    pg.goto(f"{base}/validate/{into}")
    pg.click('#grid .obj[data-rank="0"]')
    pg.keyboard.press("r")
    pg.wait_for_selector("#toast:has-text('Removed 1 object')")
    pg.wait_for_function("() => document.getElementById('toast').textContent.trim() === ''", timeout=8000)
    pg.fill("input.name-input", "x")  # the names datalist asks the server (an htmx request)
    pg.wait_for_timeout(700)
    assert pg.inner_text("#toast").strip() == ""


def test_a_key_pressed_twice_does_not_approve_the_next_node_unseen(server, page):
    from morphocluster.store import Node

    base, p, info = server
    pg = page
    log_in(pg, base, "ann")
    first = info["nodes"][CLASSES[0]]
    pg.goto(f"{base}/validate/{first}")
    pg.wait_for_timeout(600)
    pg.keyboard.press("a")
    pg.wait_for_url(lambda url: re.search(r"/validate/\d+$", url) and not url.endswith(f"/{first}"))
    following = int(pg.url.rsplit("/", 1)[1])
    pg.keyboard.press("a")  # at once, as a double press or a held key would
    pg.wait_for_selector("#toast:has-text('it was ignored')")
    with p.session() as s:
        assert s.get(Node, first).status == "approved"
        assert s.get(Node, following).status == "candidate"
    pg.wait_for_timeout(600)
    pg.keyboard.press("a")  # once the screen has been there a moment, the key works
    pg.wait_for_url(lambda url: not url.endswith(f"/{following}"))
    with p.session() as s:
        assert s.get(Node, following).status == "approved"
