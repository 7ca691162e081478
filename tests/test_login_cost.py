"""A login costs the same whether the user name exists or not: one key derivation with the same
parameters (counted on hashlib's real functions, not timed), and throttled names answer alike."""

from __future__ import annotations

import hashlib
import re

import pytest
from sqlalchemy import select

from morphocluster.project import Project
from morphocluster.store import User
from morphocluster.users import HASH_METHOD, add_user, authenticate, hash_password, set_role, stand_in_hash

PASSWORD = "secret-pw"


@pytest.fixture
def derivations(monkeypatch):
    """Record each key derivation (function, cost parameters, salt length); run the real one."""
    calls = []
    scrypt, pbkdf2 = hashlib.scrypt, hashlib.pbkdf2_hmac

    def counted_scrypt(password, *, salt, n, r, p, **kw):
        calls.append(("scrypt", n, r, p, len(salt)))
        return scrypt(password, salt=salt, n=n, r=r, p=p, **kw)

    def counted_pbkdf2(name, password, salt, iterations, *args):
        calls.append(("pbkdf2", name, iterations, len(salt)))
        return pbkdf2(name, password, salt, iterations, *args)

    monkeypatch.setattr(hashlib, "scrypt", counted_scrypt)
    monkeypatch.setattr(hashlib, "pbkdf2_hmac", counted_pbkdf2)
    return calls


@pytest.fixture
def web(tmp_path):
    from morphocluster.web import create_app

    p = Project.create(tmp_path / "proj")
    for name, role in (("ada", "admin"), ("ann", "annotator"), ("dan", "annotator")):
        add_user(p, name, PASSWORD, role)
    set_role(p, "dan", "disabled")
    yield p, create_app({"PROJECT": p, "TESTING": True, "LOGIN_MAX_FAILURES": 2})
    p.close()


def _post_login(app, name, password, address):
    c = app.test_client()
    page = c.get("/login", environ_base={"REMOTE_ADDR": address}).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    resp = c.post("/login", data={"username": name, "password": password, "csrf_token": token},
                  environ_base={"REMOTE_ADDR": address})
    resp.page = resp.get_data(as_text=True).replace(token, "TOKEN")  # the one part that differs
    return resp


def test_known_and_unknown_names_cost_one_equal_derivation(web, derivations):
    _, app = web
    seen = {}
    for i, (name, password) in enumerate([("ann", "wrong-pw"), ("nobody", "wrong-pw"),
                                          ("dan", PASSWORD), ("ann", PASSWORD)]):
        before = len(derivations)
        resp = _post_login(app, name, password, f"10.0.0.{i}")
        seen[name, password] = (resp.status_code, derivations[before:])
    assert [status for status, _ in seen.values()] == [401, 401, 401, 302]
    costs = [calls for _, calls in seen.values()]
    assert all(len(calls) == 1 for calls in costs), costs
    assert len({calls[0] for calls in costs}) == 1, costs  # the same function and parameters
    assert costs[0][0][:4] == ("scrypt", *map(int, HASH_METHOD.split(":")[1:]))


def test_throttled_names_answer_alike(web, derivations):
    _, app = web
    answers = []
    for name, address in (("ann", "10.0.1.1"), ("ghost", "10.0.1.2")):
        failed = [_post_login(app, name, "wrong-pw", address) for _ in range(2)]
        assert [r.status_code for r in failed] == [401, 401]
        before = len(derivations)
        resp = _post_login(app, name, PASSWORD, address)
        assert derivations[before:] == []  # refused before any password check
        answers.append((resp.status_code, resp.headers["Retry-After"], resp.page, failed[0].page))
    assert answers[0] == answers[1] and answers[0][0] == 429


def test_every_hash_uses_the_stand_in_parameters(web):
    p, _ = web
    assert stand_in_hash().startswith(HASH_METHOD + "$")
    assert hash_password("x" * 8).startswith(HASH_METHOD + "$")
    with p.session() as s:
        assert all(h.startswith(HASH_METHOD + "$") for h in s.scalars(select(User.password_hash)))


def test_a_hash_of_other_parameters_is_made_again_at_login(web):
    from werkzeug.security import generate_password_hash

    p, _ = web
    with p.transaction() as s:  # as an older werkzeug would have stored it
        s.scalars(select(User).where(User.username == "ann")).one().password_hash = \
            generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")
    assert authenticate(p, "ann", "wrong-pw") is None
    with p.session() as s:
        assert s.scalar(select(User.password_hash).where(User.username == "ann")).startswith("pbkdf2")
    assert authenticate(p, "ann", PASSWORD)["username"] == "ann"
    with p.session() as s:
        assert s.scalar(select(User.password_hash).where(User.username == "ann")).startswith(HASH_METHOD)
    assert authenticate(p, "ann", PASSWORD) is not None
