"""Login (rate-limited), logout, session users and CSRF protection for every state-changing request.

Three kinds of app use it: a project's (`serve PROJECT`: the project's users), a server's root app
(config SERVER: the server's users) and a project app of a server (SERVER and PROJECT_NAME: the
server's session and users, the user's role on this project, a project row standing in for them;
no role: 404 for every route; login and logout happen at the root).
"""

from __future__ import annotations

import hmac
import os
import secrets
import time
from datetime import timedelta
from urllib.parse import urlencode, urlsplit

from flask import (Blueprint, abort, current_app, flash, g, redirect, render_template, request,
                   session, url_for)

from .. import users
from . import project
from .throttle import LoginThrottle, minutes

bp = Blueprint("auth", __name__)

PUBLIC_ENDPOINTS = {"auth.login", "static"}
UNSAFE_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
READ_ONLY_POSTS = {"auth.login", "auth.logout"}


def init_app(app):
    # failed logins per user name or client address allowed within the window (per server process)
    app.config.setdefault("LOGIN_MAX_FAILURES", 5)
    app.config.setdefault("LOGIN_WINDOW_S", 600)
    # a session ends after this many hours without a request (MORPHOCLUSTER_SESSION_HOURS), and
    # SESSION_MAX_DAYS after its login however busy; logout and a new password end it at once
    app.config.setdefault("SESSION_IDLE_HOURS", _hours(os.environ.get("MORPHOCLUSTER_SESSION_HOURS") or "12"))
    app.config.setdefault("SESSION_MAX_DAYS", 7)
    app.permanent_session_lifetime = timedelta(hours=app.config["SESSION_IDLE_HOURS"])
    app.extensions["login_throttle"] = LoginThrottle(app.config["LOGIN_MAX_FAILURES"],
                                                     app.config["LOGIN_WINDOW_S"])
    users.stand_in_hash()  # made now, so that the first unknown name costs what later ones do
    app.register_blueprint(bp)
    if app.config.get("PROJECT_NAME"):
        app.before_request(check_role)  # first: nothing of the project before the role
    app.before_request(check_csrf)
    app.before_request(load_user)
    app.context_processor(lambda: {"csrf_token": csrf_token(), "user": g.get("user"),
                                   "projects_url": root_url() + "/"})


def _server():
    return current_app.config.get("SERVER")


def root_url() -> str:
    """The path of the server's root app ('' at the top of the site; a project's prefix
    under `serve PROJECT` where the app itself is the root)."""
    return request.environ.get("morphocluster.root", request.script_root)


def check_role():
    """In a project app of a server: 404 for everything unless the session's user has a role
    here (the dispatcher sends no such request; this holds if another route did)."""
    checked = request.environ.get("morphocluster.role")  # by the dispatcher, for this request
    if checked is not None:
        user, role = checked
    else:
        user = session_user()
        role = _server().role_of(user, current_app.config["PROJECT_NAME"]) if user else None
    if role is None and user is not None:
        abort(404)
    g.server_user, g.role = user, role


def _hours(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise RuntimeError(f"MORPHOCLUSTER_SESSION_HOURS={value!r}: give a number of hours") from None


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


def session_user() -> dict | None:
    """Return the session's user (of the server, where there is one), or None where the
    session has ended: the user is gone or disabled, their session generation moved on
    (logout, new password or role), or the login is older than SESSION_MAX_DAYS."""
    uid = session.get("user_id")
    if uid is None:
        return None
    user = _server().get_user(uid) if _server() else users.get_user(project(), uid)
    since = session.get("since")
    if (user is None or session.get("gen") != user["session_gen"] or not isinstance(since, int)
            or time.time() - since > current_app.config["SESSION_MAX_DAYS"] * 86400):
        session.clear()
        return None
    return user


def load_user():
    """Put the session's user in g.user; send everyone else to the login page."""
    g.user = _app_user()
    if g.user is not None:
        # viewers look only: no state-changing request passes, whatever the view
        if (request.method in UNSAFE_METHODS and g.user["role"] == "viewer"
                and request.endpoint not in READ_ONLY_POSTS):
            abort(403, description="viewers cannot change anything")
        return None
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    here = request.script_root + request.full_path if request.method == "GET" else None
    target = (root_url() + "/login" + (f"?{urlencode({'next': here})}" if here else "")
              if current_app.config.get("PROJECT_NAME") else url_for("auth.login", next=here))
    if request.headers.get("HX-Request"):
        return "", 401, {"HX-Redirect": target}
    if request.method != "GET":
        abort(401)
    return redirect(target)


def _app_user() -> dict | None:
    """The user as this app sees them: the project's user; the server's (role "server admin" or
    "user"); in a server's project app, the project row standing in for the server's user, with
    their role here."""
    if not _server():
        return session_user()
    if not current_app.config.get("PROJECT_NAME"):
        user = session_user()
        return user and {**user, "role": "server admin" if user["is_admin"] else "user"}
    user = g.get("server_user")
    if user is None:
        return None
    return {**users.stand_in(project(), user["username"], g.role), "server_admin": user["is_admin"]}


def _safe_next(value: str | None) -> str:
    """Return `value` if it is a path on this site, else the home page. Browsers drop tabs and
    newlines from URLs and read a backslash as a slash, so `/<tab>/evil` means `//evil`."""
    if (value and value.startswith("/") and "\\" not in value
            and not any(ch.isspace() or not ch.isprintable() for ch in value)):
        parts = urlsplit(value)
        if not parts.scheme and not parts.netloc and not value.startswith("//"):
            return value
    return url_for("home.index")


@bp.route("/login", methods=["GET", "POST"])
def login():
    if current_app.config.get("PROJECT_NAME"):  # a project of a server: log in at the root
        return redirect(root_url() + "/login")
    error, status = None, 200
    if request.method == "POST":
        throttle = current_app.extensions["login_throttle"]
        name, address = request.form.get("username", ""), request.remote_addr
        wait = throttle.retry_after(name, address)
        if wait > 0:
            n = minutes(wait)
            error = f"Too many failed logins; try again in {n} minute{'s' if n != 1 else ''}."
            return render_template("login.html", error=error), 429, {"Retry-After": str(int(wait) + 1)}
        password = request.form.get("password", "")
        user = (_server().authenticate(name, password) if _server()
                else users.authenticate(project(), name, password))
        if user is None:
            throttle.failed(name, address)
            error, status = "Unknown user name or wrong password.", 401
        else:
            throttle.succeeded(name)
            session.clear()  # a fresh session (and CSRF token) after login
            session["user_id"] = user["id"]
            session["gen"] = user["session_gen"]
            session["since"] = int(time.time())
            session.permanent = True  # the cookie lasts SESSION_IDLE_HOURS after each request
            return redirect(_safe_next(request.args.get("next")))
    return render_template("login.html", error=error), status


@bp.route("/logout", methods=["POST"])
def logout():
    if _server():  # copies of the cookie end with it
        _server().end_sessions(session.get("user_id"))
    else:
        users.end_sessions(project(), g.user["id"])
    session.clear()
    flash("Logged out.")
    return redirect(root_url() + "/login" if current_app.config.get("PROJECT_NAME") else url_for("auth.login"))
