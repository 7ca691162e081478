"""A hostile image in an imported EcoTaxa table must not run script in an admin's browser.

`cell.html` is a valid GIF whose comment holds a <script> that reads the CSRF token from the
home page and adds an admin through /users/add. Served by its file name (text/html) it ran;
served by its content (image/gif, nosniff, a sandbox policy) it is only a picture.
Run alone with `pytest -m browser tests/test_browser_xss.py`.
"""

from __future__ import annotations

import io

import pytest

from test_browser import CHROMIUM, page, serving  # noqa: F401
from test_web_fixtures import PASSWORD

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (apt-get install chromium)"),
]

# under 255 bytes: a GIF comment sub-block, so the script stays in one piece
PAYLOAD = (b'<script>window.pwned=1;fetch("/").then(r=>r.text()).then(t=>fetch("/users/add",'
           b'{method:"POST",body:new URLSearchParams({csrf_token:t.match(/csrf_token" value="([^"]+)/)[1],'
           b'username:"evil",role:"admin",password:"evil-pw-1"})}))</script>')


def hostile_gif() -> bytes:
    from PIL import Image

    assert len(PAYLOAD) < 255
    buf = io.BytesIO()
    Image.new("L", (20, 20), 128).save(buf, format="GIF", comment=PAYLOAD)
    data = buf.getvalue()
    assert PAYLOAD in data  # the script is there, whole
    return data


@pytest.fixture
def hostile_project(tmp_path):
    """A project holding one object imported from an EcoTaxa table: cell.html, the GIF above."""
    from sqlalchemy import select

    from morphocluster.importers import import_sources
    from morphocluster.project import Project
    from morphocluster.store import Object
    from morphocluster.users import add_user

    src = tmp_path / "src"
    src.mkdir()
    (src / "cell.html").write_bytes(hostile_gif())
    (src / "ecotaxa_cells.tsv").write_text(
        "object_id\timg_file_name\tobject_annotation_category\n[t]\t[t]\t[t]\ncell1\tcell.html\tdetritus\n",
        encoding="utf-8")
    p = Project.create(tmp_path / "proj")
    report = import_sources(p, [src], progress=False)
    assert report.added == 1, report
    add_user(p, "ada", PASSWORD, "admin")
    with p.session() as s:
        pk = s.scalar(select(Object.id))
    yield p, pk
    p.close()


def usernames(p) -> set[str]:
    from sqlalchemy import select

    from morphocluster.store import User

    with p.session() as s:
        return set(s.scalars(select(User.username)))


def test_imported_html_image_runs_no_script(hostile_project, page):
    from morphocluster.web import create_app

    p, pk = hostile_project
    pg = page
    with serving(create_app({"PROJECT": p})) as base:
        pg.goto(base + "/login")
        pg.fill("input[name=username]", "ada")
        pg.fill("input[name=password]", PASSWORD)
        pg.click("button:has-text('Log in')")
        pg.wait_for_selector("text=Progress")
        resp = pg.goto(f"{base}/image/{pk}")
        pg.wait_for_load_state("load")
        pg.wait_for_timeout(1500)  # time for the script's two requests, had it run
        assert usernames(p) == {"ada"}  # the script would have added "evil", an admin
        assert pg.evaluate("window.pwned") is None
        headers = resp.headers
        assert headers["content-type"] == "image/gif"
        assert headers["x-content-type-options"] == "nosniff"
        assert "sandbox" in headers["content-security-policy"]
        # still an image the admin can look at
        assert pg.evaluate("document.images.length && document.images[0].naturalWidth") == 20
