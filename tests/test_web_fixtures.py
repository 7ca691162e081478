"""A small real project for the web tests (imported by tests/test_web_*.py and test_browser.py).

Four PlanktonSet classes imported with the real importer, real EfficientNet features, and one
candidate node per class built as a clustering round would leave it: most of a class, plus two
look-alike outliers from another class in the first node. The rest stays unlabelled for growing.
"""

from __future__ import annotations

import shutil

import pytest

CLASSES = ("chaetognath_sagitta", "copepod_calanoid", "acantharia_protist", "hydromedusae_solmaris")
PER_CLASS = 24
IN_NODE = 16
PASSWORD = "secret-pw"
USERS = {"ada": "admin", "ann": "annotator", "bob": "annotator", "vic": "viewer"}


def build_web_project(root, shared_data):
    """Build the project at `root`; return a dict naming its nodes and outliers."""
    from sqlalchemy import select

    from morphocluster.features.extract import extract_features
    from morphocluster.importers import import_sources
    from morphocluster.project import Project
    from morphocluster.store import Membership, Node, Object
    from morphocluster.users import add_user

    src = root.parent / "web-src"
    for c in CLASSES:
        (src / c).mkdir(parents=True, exist_ok=True)
        for f in sorted((shared_data / "planktonset-dev" / c).iterdir())[:PER_CLASS]:
            shutil.copy2(f, src / c / f.name)
    p = Project.create(root)
    import_sources(p, [src], labels_from_folders=True, progress=False)
    extract_features(p, "efficientnet-lite0", progress=False, num_workers=0)
    info = {"nodes": {}, "outliers": []}
    with p.transaction() as s:
        by_class = {}
        for pk, label in s.execute(select(Object.id, Object.imported_label).order_by(Object.id)):
            by_class.setdefault(label, []).append(pk)
        for i, c in enumerate(CLASSES):
            pks = by_class[c][:IN_NODE]
            if i == 0:  # two objects of the next class hide in the first seed cluster
                extra = by_class[CLASSES[1]][-2:]
                info["outliers"] = extra
                pks = pks + extra
            node = Node(status="candidate", round=1, n_members=len(pks), members_version=1)
            s.add(node)
            s.flush()
            s.add_all(Membership(object_pk=pk, node_id=node.id, status="cluster") for pk in pks)
            info["nodes"][c] = node.id
        s.execute(Object.__table__.update().values(imported_label=None))  # the UI must not see them
    for name, role in USERS.items():
        add_user(p, name, PASSWORD, role)
    info["by_class"] = by_class
    p.close()
    return info


_BUILT: dict = {}  # one template per test session, whichever module imports the fixture


@pytest.fixture(scope="session")
def web_template(tmp_path_factory, shared_data):
    if "template" not in _BUILT:
        root = tmp_path_factory.mktemp("webtpl") / "proj"
        _BUILT["template"] = (root, build_web_project(root, shared_data))
    return _BUILT["template"]


@pytest.fixture
def web_project(web_template, tmp_path):
    from morphocluster.project import Project

    src, info = web_template
    dst = tmp_path / "proj"
    shutil.copytree(src, dst)
    p = Project.open(dst)
    yield p, info
    p.close()


@pytest.fixture
def app(web_project):
    from morphocluster.web import create_app

    p, _ = web_project
    return create_app({"PROJECT": p, "TESTING": True})


def login(client, username, password=PASSWORD):
    """Log in through the login form; return the session's CSRF token."""
    page = client.get("/login")
    token = csrf_of(page.get_data(as_text=True))
    resp = client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return csrf_of(client.get("/").get_data(as_text=True))


def csrf_of(html: str) -> str:
    import re

    m = re.search(r'name="csrf_token" value="([^"]+)"', html) or re.search(r'"X-CSRFToken": "([^"]+)"', html)
    assert m, "no CSRF token in the page"
    return m.group(1)


@pytest.fixture
def client_as(app):
    """Return a function: log in a fresh test client as a user; returns (client, csrf token)."""

    def _make(username):
        c = app.test_client()
        token = login(c, username)
        return c, token

    return _make


def test_fixture_project_is_as_described(web_project):
    from sqlalchemy import func, select

    from morphocluster.store import Membership, Node

    p, info = web_project
    with p.session() as s:
        assert s.scalar(select(func.count(Node.id))) == len(CLASSES)
        first = info["nodes"][CLASSES[0]]
        assert s.scalar(select(func.count()).select_from(Membership)
                        .where(Membership.node_id == first)) == IN_NODE + 2
