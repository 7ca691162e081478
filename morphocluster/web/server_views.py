"""The root app's pages: the project list, a new project, the server's users and their roles."""

from __future__ import annotations

from functools import wraps

from flask import Blueprint, abort, current_app, flash, g, redirect, request, session, url_for

from .. import users
from ..server import PROJECT_ROLES, ServerError
from .common import render

# named as the project apps' home page, so that shared templates' url_for('home.index')
# (error.html, the brand link) lead to the project list here
bp = Blueprint("home", __name__)


def init_app(app):
    from .common import count

    app.register_blueprint(bp)
    app.add_template_filter(count, "count")


def _server():
    return current_app.extensions["morphocluster_server"]


def server_admin(view):
    """Allow the view only to server admins."""
    @wraps(view)
    def wrapped(*args, **kwargs):
        if not g.user["is_admin"]:
            abort(403, description="this needs a server admin")
        return view(*args, **kwargs)
    return wrapped


@bp.route("/")
def index():
    server = _server()
    rows = [server.stats(n) for n in server.visible_projects(g.user)]
    for r in rows:
        r["role"] = server.role_of(g.user, r["name"])
    notes = server.notes() if g.user["is_admin"] else {}
    return render("projects.html", projects=rows, notes=notes)


@bp.route("/new", methods=["GET", "POST"])
@server_admin
def new():
    if request.method == "GET":
        return render("server_new.html", error=None, form={})
    title = request.form.get("name", "").strip()
    url = request.form.get("database_url", "").strip()
    try:
        name = _server().create_project(title, url or None)
    except ServerError as exc:
        return render("server_new.html", error=str(exc), form={"name": title, "database_url": url}), 400
    flash(f"Created project {name}.")
    return redirect(url_for("home.index"), 303)


def _users_page(notice=None, error=None, password=None):
    server = _server()
    html = render("server_users.html", users=server.list_users(), projects=server.project_names(),
                  roles=PROJECT_ROLES, notice=notice, error=error, password=password)
    return html, (400 if error else 200), {"Cache-Control": "no-store"}


def _keep_own_session(name: str) -> None:
    """A change to a user ends their sessions; the admin who changed themselves stays in this one."""
    if name == g.user["username"]:
        me = _server().get_user(g.user["id"])
        if me is not None:
            session["gen"] = me["session_gen"]


@bp.route("/users/")
@server_admin
def users_page():
    return _users_page()


@bp.route("/users/add", methods=["POST"])
@server_admin
def add_user():
    name = request.form.get("username", "").strip()
    typed = request.form.get("password", "")
    password = typed or users.generate_password()
    admin = request.form.get("server_admin") == "1"
    try:
        _server().add_user(name, password, admin=admin)
    except users.UserError as exc:
        return _users_page(error=str(exc))
    what = "server admin" if admin else "user"
    if typed:
        flash(f"Added {what} {name}; give them a role on a project below.")
        return redirect(url_for("home.users_page"), 303)
    return _users_page(notice=f"Added {what} {name}.", password={"username": name, "password": password})


@bp.route("/users/role", methods=["POST"])
@server_admin
def set_role():
    name, project = request.form.get("username", ""), request.form.get("project", "")
    role = request.form.get("role", "") or None  # empty: no role, the project is hidden from them
    try:
        _server().set_role(name, project, role)
    except (users.UserError, ServerError) as exc:
        return _users_page(error=str(exc))
    _keep_own_session(name)
    flash(f"{name}: {role or 'no role'} on {project}.")
    return redirect(url_for("home.users_page"), 303)


@bp.route("/users/flags", methods=["POST"])
@server_admin
def set_flags():
    name, what = request.form.get("username", ""), request.form.get("set", "")
    flags = {"admin": {"admin": True}, "not-admin": {"admin": False},
             "disable": {"disabled": True}, "enable": {"disabled": False}}.get(what)
    if flags is None:
        abort(400, description=f"set: {what[:40]!r} is not one of admin, not-admin, disable, enable")
    try:
        _server().set_flags(name, **flags)
    except users.UserError as exc:
        return _users_page(error=str(exc))
    _keep_own_session(name)
    flash(f"{name}: {what.replace('-', ' ')}.")
    you = name == g.user["username"] and what == "not-admin"
    return redirect(url_for("home.index" if you else "home.users_page"), 303)


@bp.route("/users/password", methods=["POST"])
@server_admin
def reset_password():
    name = request.form.get("username", "")
    try:
        password = _server().reset_password(name)
    except users.UserError as exc:
        return _users_page(error=str(exc))
    _keep_own_session(name)
    return _users_page(notice=f"Reset the password of {name}.", password={"username": name, "password": password})
