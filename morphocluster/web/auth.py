"""Login, logout, session users and CSRF protection for every state-changing request."""

from __future__ import annotations

import hmac
import secrets

from flask import (Blueprint, abort, flash, g, redirect, render_template, request, session,
                   url_for)

from .. import users
from . import project

bp = Blueprint("auth", __name__)

PUBLIC_ENDPOINTS = {"auth.login", "static"}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
READ_ONLY_POSTS = {"auth.login", "auth.logout"}


def init_app(app):
    app.register_blueprint(bp)
    app.before_request(check_csrf)
    app.before_request(load_user)
    app.context_processor(lambda: {"csrf_token": csrf_token(), "user": g.get("user")})


def csrf_token() -> str:
    """Return the session's CSRF token (made on first use)."""
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf():
    """Refuse any state-changing request without the session's token (form field or header)."""
    if request.method not in UNSAFE_METHODS:
        return None
    sent = request.headers.get("X-CSRFToken") or request.form.get("csrf_token") or ""
    expected = session.get("csrf")
    if not expected or not hmac.compare_digest(sent, expected):
        abort(400, description="missing or wrong CSRF token; reload the page")
    return None


def load_user():
    """Put the session's user in g.user; send everyone else to the login page."""
    g.user = None
    uid = session.get("user_id")
    if uid is not None:
        g.user = users.get_user(project(), uid)
        if g.user is None:
            session.clear()
    if g.user is not None:
        # viewers look only: no state-changing request passes, whatever the view
        if (request.method in UNSAFE_METHODS and g.user["role"] == "viewer"
                and request.endpoint not in READ_ONLY_POSTS):
            abort(403, description="viewers cannot change anything")
        return None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    target = url_for("auth.login", next=request.full_path if request.method == "GET" else None)
    if request.headers.get("HX-Request"):
        return "", 401, {"HX-Redirect": target}
    if request.method != "GET":
        abort(401)
    return redirect(target)


def _safe_next(value: str | None) -> str:
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return url_for("home.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        user = users.authenticate(project(), request.form.get("username", ""),
                                  request.form.get("password", ""))
        if user is None:
            error = "Unknown user name or wrong password."
        else:
            session.clear()  # a fresh session (and CSRF token) after login
            session["user_id"] = user["id"]
            session.permanent = True
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error), (401 if error else 200)


@bp.route("/logout", methods=["POST"])
def logout():
    session.clear()
    flash("Logged out.")
    return redirect(url_for("auth.login"))
