"""Finding objects by id, and node names as the pages show them (Flask test client)."""

from __future__ import annotations

import pytest

from morphocluster.store import Object
from test_web_fixtures import app, client_as, web_project, web_template  # noqa: F401
from test_web_workflow import approve, hx

pytestmark = pytest.mark.usefixtures("shared_data")


def test_find_an_object_by_its_id(client_as, web_project):
    p, info = web_project
    c, _ = client_as("ann")
    pk = info["by_class"]["copepod_calanoid"][3]
    with p.session() as s:
        oid = s.get(Object, pk).object_id
    assert 'action="/object/find"' in c.get("/").get_data(as_text=True)  # in the header of every page
    for typed in (oid, f" {oid} ", f"#{pk}", oid.upper() if oid.upper() != oid else oid):
        resp = c.get("/object/find", query_string={"q": typed})
        assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/object/{pk}"), typed
    part = c.get("/object/find", query_string={"q": "COPEPOD_CAL"}).get_data(as_text=True)
    n = len(info["by_class"]["copepod_calanoid"])
    assert f"{min(n, 48)} objects" in part and part.count("/thumb/") == min(n, 48)
    for nothing in ("no such thing", "%", "c_p"):  # % and _ are no wildcards
        html = c.get("/object/find", query_string={"q": nothing}).get_data(as_text=True)
        assert "No object id contains" in html and "/thumb/" not in html, nothing


def test_a_name_used_twice_is_shown_with_its_parent(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    a, b = info["nodes"]["copepod_calanoid"], info["nodes"]["acantharia_protist"]
    approve(c, token, a, name="egg")
    approve(c, token, b, name="egg")
    for node, group in ((a, "Copepoda"), (b, "Fish")):
        c.post("/tree/umbrella", headers=hx(token), data={"nodes": [str(node)], "name": group})
    page = c.get(f"/tree/node/{a}").get_data(as_text=True)
    assert '<span id="node-name">egg&lt;Copepoda</span>' in page and 'value="Copepoda"' in page
    assert "Grow <span" in c.get(f"/grow/{b}").get_data(as_text=True)
    assert "egg&lt;Fish</span>" in c.get(f"/grow/{b}").get_data(as_text=True)


def test_find_ignores_the_case_of_accented_letters_too(client_as, web_project):
    p, info = web_project
    c, _ = client_as("ann")
    with p.transaction() as s:
        some = s.get(Object, info["by_class"]["copepod_calanoid"][0])
        new = Object(object_id="Café_ü/42", path=some.path, width=some.width, height=some.height)
        s.add(new)
        s.flush()
        pk = new.id
    resp = c.get("/object/find", query_string={"q": "CAFÉ_Ü"})  # SQLite's LIKE folds ASCII only
    assert resp.status_code == 302 and resp.headers["Location"].endswith(f"/object/{pk}")
    html = c.get("/object/find", query_string={"q": "#999999"}).get_data(as_text=True)
    assert "No object has the internal id 999999" in html


def test_approving_under_a_name_in_use_says_they_form_one_class(client_as, web_project):
    p, info = web_project
    c, token = client_as("ann")
    a, b = info["nodes"]["copepod_calanoid"], info["nodes"]["acantharia_protist"]
    approve(c, token, a, name="copepod")
    approve(c, token, b, name="Copepod")  # the spelling in use, and the same class
    assert f"&#39;copepod&#39; also names node #{a}: one class" in c.get("/").get_data(as_text=True)
