"""Users page (admins only): list users, add one, change a role, reset a password."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, request, session, url_for

from .. import users
from . import project
from .common import render, role_required

bp = Blueprint("users_views", __name__, url_prefix="/users")


def init_app(app):
    app.register_blueprint(bp)


@bp.before_request
def _server_users():
    """A project of a server has no users of its own: its roles are given on the server's page."""
    from flask import abort, current_app

    if current_app.config.get("PROJECT_NAME"):
        if not g.user.get("server_admin"):
            abort(403, description="users and roles belong to the server: ask a server admin")
        from .auth import root_url

        return redirect(root_url() + "/users/", 303)
    return None


def _page(notice: str | None = None, error: str | None = None, password: dict | None = None):
    """Render the users page; a new password is shown once and the page is never cached."""
    html = render("users.html", users=users.list_users(project()), roles=users.ROLES,
                  notice=notice, error=error, password=password)
    return html, (400 if error else 200), {"Cache-Control": "no-store"}


def _keep_own_session(name: str) -> None:
    """A change to a user ends their sessions; the admin who changed themselves stays in this one."""
    if name == g.user["username"]:
        me = users.get_user(project(), g.user["id"])
        if me is not None:
            session["gen"] = me["session_gen"]


@bp.route("/")
@role_required("admin")
def index():
    return _page()


@bp.route("/add", methods=["POST"])
@role_required("admin")
def add():
    name = request.form.get("username", "").strip()
    role = request.form.get("role", "annotator")
    typed = request.form.get("password", "")
    password = typed or users.generate_password()
    try:
        users.add_user(project(), name, password, role)
    except users.UserError as exc:
        return _page(error=str(exc))
    if typed:  # nothing to show once: back to the list (a reload does not post again)
        flash(f"Added {role} {name}.")
        return redirect(url_for("users_views.index"), 303)
    return _page(notice=f"Added {role} {name}.", password={"username": name, "password": password})


@bp.route("/role", methods=["POST"])
@role_required("admin")
def role():
    name, new = request.form.get("username", ""), request.form.get("role", "")
    try:
        users.set_role(project(), name, new)
    except users.UserError as exc:
        return _page(error=str(exc))
    _keep_own_session(name)
    you = name == g.user["username"] and new != "admin"
    flash(f"{name} is now {new}" + (" (you: the admin pages are closed to you from now on)." if you else "."))
    return redirect(url_for("home.index" if you else "users_views.index"), 303)


@bp.route("/password", methods=["POST"])
@role_required("admin")
def reset_password():
    name = request.form.get("username", "")
    try:
        password = users.reset_password(project(), name)
    except users.UserError as exc:
        return _page(error=str(exc))
    _keep_own_session(name)
    return _page(notice=f"Reset the password of {name}.", password={"username": name, "password": password})
