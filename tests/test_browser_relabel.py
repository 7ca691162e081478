"""Headless Chromium: give a member of a cluster, and a grow candidate, its own label by name.

Run alone with `pytest -m browser tests/test_browser_relabel.py`. Needs Debian's chromium.
"""

from __future__ import annotations

from sqlalchemy import select

from morphocluster.store import Membership, Node
from test_browser import CHROMIUM, log_in, page, pytestmark, server, serving  # noqa: F401
from test_web_fixtures import CLASSES, web_project, web_template  # noqa: F401


def type_label(pg, fig, label: str, key: bool = False, new: bool = False) -> None:
    """Click ✎ on the figure (or, with `key`, press l over it), type the label, Enter; a label
    that is `new` is asked about first (a typo must not make a class), one known is not."""
    asked = []

    def answer(dialog):
        asked.append(dialog.message)
        dialog.accept()

    pg.on("dialog", answer)
    fig.hover()
    if key:
        pg.keyboard.press("l")
    else:
        fig.locator("button.relabel").click()
    box = fig.locator("input.relabel-input")
    assert box.input_value() == ""
    box.fill(label)
    box.press("Enter")
    pg.wait_for_function("([el, t]) => el.textContent === t",
                         arg=[fig.locator(".tag").element_handle(), f"→ {label}"])
    pg.wait_for_timeout(400)  # a second question would come now
    pg.remove_listener("dialog", answer)
    assert asked == ([f'"{label}" is not a label yet. Make it a new label?'] if new else [])


def _type_label(pg, pk: int, label: str, key: bool = False, new: bool = False) -> None:
    type_label(pg, pg.locator(f'#grid .obj[data-pk="{pk}"]'), label, key=key, new=new)


def _members_of(p, name: str) -> set:
    with p.session() as s:
        return set(s.scalars(select(Membership.object_pk).join(Node, Node.id == Membership.node_id)
                             .where(Node.name == name)))


def test_type_labels_on_validate_and_grow(server, page):
    base, p, info = server
    pg = page
    log_in(pg, base, "ann")
    node_id = info["nodes"][CLASSES[1]]
    pg.goto(f"{base}/validate/{node_id}")
    pk = int(pg.locator('#grid .obj[data-rank="2"]').get_attribute("data-pk"))
    _type_label(pg, pk, "ostracod", new=True)
    assert pg.locator("#grid .obj.sel").count() == 0
    pg.keyboard.press("r")  # no object selected, but a label typed: Remove selected takes it
    pg.wait_for_selector("#toast:has-text('Gave 1 object the label typed')")
    assert _members_of(p, "ostracod") == {pk}
    pg.keyboard.press("Shift+A")
    pg.wait_for_url(f"{base}/grow/{node_id}")
    cand = int(pg.locator('#grid .obj[data-rank="1"]').get_attribute("data-pk"))
    _type_label(pg, cand, "ostracod", key=True)  # in "click first wrong" mode this clicks nothing
    pg.keyboard.press("a")
    pg.wait_for_selector("#toast:has-text('gave 1 object the label typed')")
    assert _members_of(p, "ostracod") == {pk, cand}


def test_esc_leaves_the_label_field_without_asking_or_applying(server, page):
    base, p, info = server
    pg = page
    log_in(pg, base, "ann")
    pg.goto(f"{base}/validate/{info['nodes'][CLASSES[1]]}")
    asked = []
    pg.on("dialog", lambda d: (asked.append(d.message), d.dismiss()))
    fig = pg.locator('#grid .obj[data-rank="1"]')
    fig.hover()
    fig.locator("button.relabel").click()
    fig.locator("input.relabel-input").fill("bazq")
    fig.locator("input.relabel-input").press("Escape")
    pg.wait_for_timeout(600)
    assert asked == [] and fig.locator(".tag").is_hidden()
    assert pg.locator("input[name=relabel]").input_value() == ""
