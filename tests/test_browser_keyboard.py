"""Headless Chromium, keyboard only: the objects of a grid, and the keys help dialog.

Run alone with `pytest -m browser tests/test_browser_keyboard.py`. Needs Debian's chromium.
"""

from __future__ import annotations

from sqlalchemy import select

from morphocluster.store import Membership, Node
from test_browser import CHROMIUM, log_in, page, pytestmark, server, serving  # noqa: F401
from test_web_fixtures import CLASSES, IN_NODE, web_project, web_template  # noqa: F401


def _members(p, node_id):
    with p.session() as s:
        return set(s.scalars(select(Membership.object_pk).where(Membership.node_id == node_id)))


def _validate_screen(server, pg):
    """Log in as ann and open the validate screen of a seed node; return (project, node id)."""
    base, p, info = server
    log_in(pg, base, "ann")
    node_id = info["nodes"][CLASSES[1]]
    pg.goto(f"{base}/validate/{node_id}")
    pg.wait_for_selector("#grid .obj")
    return p, node_id


def test_no_screen_key_acts_behind_the_keys_help(server, page):
    """`?` then `a` approved the node behind the dialog; Esc then cleared the selection."""
    pg = page
    p, node_id = _validate_screen(server, pg)
    pg.click('#grid .obj[data-rank="2"]')
    pg.mouse.move(5, 5)
    pg.keyboard.press("?")
    pg.wait_for_selector("dialog#keys[open]")
    for key in ("a", "d", "r", "u"):
        pg.keyboard.press(key)
    pg.wait_for_timeout(600)
    with p.session() as s:
        assert s.get(Node, node_id).status == "candidate"
    pg.keyboard.press("Escape")  # closes the dialog, and only that
    pg.wait_for_selector("dialog#keys:not([open])", state="attached")
    assert pg.locator("#grid .obj.sel").count() == 1


def test_select_with_the_keyboard_then_remove_and_grow(server, page):
    base = server[0]
    pg = page
    p, node_id = _validate_screen(server, pg)
    assert pg.locator('#grid .obj[tabindex="0"]').count() == 1  # one tab stop for the grid
    pg.locator('#grid .obj[data-rank="0"]').focus()
    pg.keyboard.press("ArrowRight")
    pg.keyboard.press("Space")
    pg.keyboard.press("ArrowRight")
    pg.keyboard.press("ArrowRight")
    pg.keyboard.press("Space")
    sel = pg.locator("#grid .obj.sel")
    assert sel.count() == 2 and pg.locator('#grid .obj[aria-pressed="true"]').count() == 2
    gone = {int(sel.nth(i).get_attribute("data-pk")) for i in range(2)}
    pg.wait_for_timeout(600)
    pg.keyboard.press("r")
    pg.wait_for_selector("#toast:has-text('Removed 2 objects')")
    assert not gone & _members(p, node_id) and len(_members(p, node_id)) == IN_NODE - 2
    # the new screen's objects have the focus again, and `l` gives the focused one its label
    pg.wait_for_function("() => document.activeElement && document.activeElement.matches('#grid .obj')")
    pg.keyboard.press("l")
    pg.wait_for_selector("#grid .obj input.relabel-input:not([hidden])")
    pg.keyboard.press("Escape")
    # approve, then on the grow screen Enter on an object is "the first wrong one"
    pg.wait_for_timeout(600)  # a decision key right after a new screen would be ignored
    pg.locator('#grid .obj[data-rank="0"]').focus()
    pg.keyboard.press("a")
    pg.wait_for_url(lambda url: f"/validate/{node_id}" not in url)
    pg.goto(f"{base}/grow/{node_id}")
    pg.wait_for_selector("#grid .obj")
    before = _members(p, node_id)
    ranked = [int(x) for x in pg.eval_on_selector_all("#grid .obj", "els => els.map(e => e.dataset.pk)")]
    pg.locator('#grid .obj[data-rank="0"]').focus()
    for _ in range(3):
        pg.keyboard.press("ArrowRight")
    pg.keyboard.press("Enter")
    pg.wait_for_selector("#toast:has-text('Accepted 3')")
    assert _members(p, node_id) == before | set(ranked[:3])


def test_a_refusal_stays_until_read_and_a_click_dismisses_it(server, page):
    pg = page
    _validate_screen(server, pg)
    pg.mouse.move(5, 5)
    pg.wait_for_timeout(600)  # not a key pressed as the screen appeared
    pg.keyboard.press("r")  # nothing selected: refused
    pg.wait_for_selector("#toast:has-text('Select objects first')")
    pg.wait_for_timeout(5500)  # an information fades after about 4.7 s; a refusal stays
    assert "Select objects first" in pg.inner_text("#toast")
    pg.click("#toast")
    assert pg.inner_text("#toast").strip() == ""
